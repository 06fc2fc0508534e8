//! An Echo in a child process (`target/release/echo`), configured through `ECHO_*` variables
//! only, so its memory and file descriptors are its own and /proc reads them apart from the
//! load's. On the real backends the child gets an [`Isolation`] of its own, which goes with
//! it however the child ends: stopped, or dropped unstopped (an error, a panic, a signal).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};

use super::ServerSpec;
use super::isolation::Isolation;
use crate::cli::BackendKind;

/// What `echo` prints on stderr once its ports are bound.
const UP_LINE: &str = "echo is up: gRPC + grpc-web on ";

/// The child's `public.max_connections`: room for `connections`' 15,000 (default: 10,000).
const CHILD_MAX_CONNECTIONS: usize = 19_000;

/// The one `ECHO_*` variable of the bench's environment the child inherits.
const POOL_SIZE: &str = "ECHO_DATABASE_MAX_CONNECTIONS";

/// A running child Echo; stopped (SIGTERM, then SIGKILL) by [`ChildEcho::stop`], killed when
/// dropped; its isolation dropped either way.
pub struct ChildEcho {
    process: Process,
    /// Its public address.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    /// Its admin port (`/metrics`).
    pub admin: SocketAddr,
}

/// The child process and what it owns outside itself. Dropped without [`Process::stop`], it
/// kills the process, waits for it, and drops the isolation before returning: slow for a
/// `Drop` (a second or so), but the one place every way out of a run passes.
struct Process {
    child: Child,
    isolation: Option<Isolation>,
    _data_dir: tempfile::TempDir,
}

impl Process {
    /// SIGTERM, then SIGKILL if it has not exited within `grace` (at once without one); then
    /// drop the isolation, whatever the stop gave.
    async fn stop(&mut self, grace: Option<Duration>) -> anyhow::Result<()> {
        // No id once it has been waited for: nothing left to stop (and `kill 0` would signal
        // the bench's whole process group).
        let exited = match (grace, self.child.id()) {
            (_, None) => Ok(()),
            (Some(grace), Some(pid)) => {
                // `kill` rather than a signal crate: the workspace forbids unsafe code.
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
                match tokio::time::timeout(grace, self.child.wait()).await {
                    Ok(status) => status.map(drop),
                    Err(_) => self.child.kill().await,
                }
            }
            (None, Some(_)) => self.child.kill().await,
        };
        if let Some(isolation) = self.isolation.take() {
            isolation.drop_all().await;
        }
        Ok(exited?)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let Some(isolation) = self.isolation.take() else {
            return;
        };
        // Dropping the schemas under a live child would race its writes: gone first.
        let _ = self.child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        isolation.drop_all_blocking();
    }
}

impl ChildEcho {
    /// Start `spec.echo_bin` on free ports, its codes posted to `otp_webhook`, its tokens signed
    /// with `signing_key_pem`.
    pub async fn start(
        spec: &ServerSpec,
        otp_webhook: &str,
        signing_key_pem: &str,
    ) -> anyhow::Result<Self> {
        if !spec.echo_bin.exists() {
            bail!(
                "{} does not exist: build it with `cargo build --release` (or pass --echo-bin, \
                 or --server in-process)",
                spec.echo_bin.display()
            );
        }
        let isolation = match spec.backend {
            BackendKind::Real => Some(Isolation::create().await?),
            BackendKind::Embedded => None,
        };
        let data_dir = tempfile::Builder::new().prefix("echo-bench").tempdir()?;
        let log_path = data_dir.path().join("echo.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(&spec.echo_bin);
        // Only what the bench sets: an ECHO_* variable of the caller's shell would change what
        // is measured. One exception, said aloud: the pool size, which a run on a shared
        // PostgreSQL must be able to cap (the default pools take most of its 100 connections).
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ECHO_") {
                command.env_remove(name);
            }
        }
        if let Ok(pools) = std::env::var(POOL_SIZE) {
            crate::report::note(&format!("the child's database pools: {POOL_SIZE}={pools}"));
            command.env(POOL_SIZE, pools);
        }
        command
            .envs(environment(
                isolation.as_ref(),
                data_dir.path(),
                otp_webhook,
                signing_key_pem,
            ))
            .envs(spec.tuning.env())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("start {}", spec.echo_bin.display()))?;
        let mut process = Process {
            child,
            isolation,
            _data_dir: data_dir,
        };
        let pid = process.child.id().context("the child exited at once")?;
        let stderr = process.child.stderr.take().context("the child's stderr")?;
        let (addr, admin) = match tokio::time::timeout(
            Duration::from_secs(90),
            read_address(stderr, log_path.clone()),
        )
        .await
        {
            Ok(Ok(addresses)) => addresses,
            outcome => {
                let _ = process.stop(None).await;
                let tail = log_tail(&log_path);
                bail!("the child echo did not come up ({outcome:?}); its log ends:\n{tail}");
            }
        };
        Ok(Self {
            process,
            addr,
            pid,
            admin,
        })
    }

    /// SIGTERM, then SIGKILL if it has not drained within 15 s; then drop its isolation.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.process.stop(Some(Duration::from_secs(15))).await
    }
}

/// The child's configuration: free ports, quiet logs, the bench's webhook and key, and for the
/// real backends a schema, subject and key prefix of its own (as the testkit isolates tests).
fn environment(
    isolation: Option<&Isolation>,
    data_dir: &Path,
    otp_webhook: &str,
    signing_key_pem: &str,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("ECHO_LISTEN", "127.0.0.1:0".to_owned()),
        ("ECHO_ADMIN_LISTEN", "127.0.0.1:0".to_owned()),
        ("ECHO_INTERNAL_LISTEN", "127.0.0.1:0".to_owned()),
        ("ECHO_DATA_DIR", data_dir.display().to_string()),
        ("ECHO_LOG_FORMAT", "text".to_owned()),
        ("ECHO_LOG_FILTER", "warn".to_owned()),
        ("ECHO_AUTH__OTP_SENDER", otp_webhook.to_owned()),
        ("ECHO_AUTH__JWT_SIGNING_KEY", signing_key_pem.to_owned()),
        // `connections` holds 15,000 connections at once (one idle stream each); the default
        // cap, 10,000, would close the rest at accept. Below the 20,000 descriptors a process
        // may hold here, with room for the child's databases and logs.
        (
            "ECHO_PUBLIC__MAX_CONNECTIONS",
            CHILD_MAX_CONNECTIONS.to_string(),
        ),
    ];
    if let Some(isolation) = isolation {
        let secret = || {
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
        };
        env.extend(isolation.env());
        env.extend([
            ("ECHO_AUTH__OTP_HMAC_KEY", secret()),
            // Production mode (real backends) needs the service credential of internal calls.
            ("ECHO_SERVICE_SECRET", secret()),
        ]);
    }
    env.into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// Copy the child's stderr to its log until the line naming its addresses (public, admin),
/// which it returns; the rest keeps flowing to the log in the background.
async fn read_address(
    stderr: tokio::process::ChildStderr,
    log_path: PathBuf,
) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let mut log = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .await?;
    let mut lines = BufReader::new(stderr).lines();
    while let Some(line) = lines.next_line().await? {
        log.write_all(line.as_bytes()).await?;
        log.write_all(b"\n").await?;
        if let (Some(addr), Some(admin)) = (up_address(&line), admin_address(&line)) {
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = log.write_all(line.as_bytes()).await;
                    let _ = log.write_all(b"\n").await;
                }
            });
            return Ok((addr, admin));
        }
    }
    bail!("the child closed stderr before saying it was up")
}

/// The address in echo's "up" line.
fn up_address(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(UP_LINE)? + UP_LINE.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The admin address in echo's "up" line.
fn admin_address(line: &str) -> Option<SocketAddr> {
    const ADMIN: &str = "admin on http://";
    line.find(UP_LINE)?;
    let rest = &line[line.find(ADMIN)? + ADMIN.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Resident memory of process `pid` in KiB (VmRSS of /proc/<pid>/status).
pub fn memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_rss_kib(&status)
}

fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_up_line_names_the_address() {
        let line = "echo is up: gRPC + grpc-web on 127.0.0.1:41234 (try: grpcurl -plaintext \
                    127.0.0.1:41234 list), admin on http://127.0.0.1:41235";
        assert_eq!(up_address(line), Some("127.0.0.1:41234".parse().unwrap()));
        assert_eq!(
            admin_address(line),
            Some("127.0.0.1:41235".parse().unwrap())
        );
        assert_eq!(up_address("2026-11-21 WARN something else"), None);
    }

    #[test]
    fn resident_memory_is_read_from_proc_status() {
        let status = "Name:\techo\nVmPeak:\t  999 kB\nVmRSS:\t   52344 kB\nRssAnon:\t 40000 kB\n";
        assert_eq!(vm_rss_kib(status), Some(52_344));
        assert_eq!(vm_rss_kib("Name:\techo\n"), None);
        // This very process has a status file.
        assert!(memory_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
