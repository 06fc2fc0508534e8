//! An Echo in a child process (`target/release/echo`), configured through `ECHO_*` variables
//! only, so its memory and file descriptors are its own and /proc reads them apart from the
//! load's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use echo_testkit::env::{Server, unique_name, url};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};

use super::ServerSpec;
use crate::cli::BackendKind;

/// What `echo` prints on stderr once its ports are bound.
const UP_LINE: &str = "echo is up: gRPC + grpc-web on ";

/// A running child Echo; stopped (SIGTERM, then SIGKILL) by [`ChildEcho::stop`] or on drop.
pub struct ChildEcho {
    child: Child,
    /// Its public address.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    /// Its admin port (`/metrics`).
    pub admin: SocketAddr,
    _data_dir: tempfile::TempDir,
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
        let data_dir = tempfile::Builder::new().prefix("echo-bench").tempdir()?;
        let log_path = data_dir.path().join("echo.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(&spec.echo_bin);
        // Only what the bench sets: an ECHO_* variable of the caller's shell would change what
        // is measured.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ECHO_") {
                command.env_remove(name);
            }
        }
        command
            .envs(environment(
                spec.backend,
                data_dir.path(),
                otp_webhook,
                signing_key_pem,
            )?)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", spec.echo_bin.display()))?;
        let pid = child.id().context("the child exited at once")?;
        let stderr = child.stderr.take().context("the child's stderr")?;
        let (addr, admin) = match tokio::time::timeout(
            Duration::from_secs(90),
            read_address(stderr, log_path.clone()),
        )
        .await
        {
            Ok(Ok(addresses)) => addresses,
            outcome => {
                let _ = child.start_kill();
                let tail = log_tail(&log_path);
                bail!("the child echo did not come up ({outcome:?}); its log ends:\n{tail}");
            }
        };
        Ok(Self {
            child,
            addr,
            pid,
            admin,
            _data_dir: data_dir,
        })
    }

    /// SIGTERM, then SIGKILL if it has not drained within 15 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        // `kill` rather than a signal crate: the workspace forbids unsafe code and this is the
        // only signal the bench sends.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// The child's configuration: free ports, quiet logs, the bench's webhook and key, and for the
/// real backends a schema, subject and key prefix of its own (as the testkit isolates tests).
fn environment(
    backend: BackendKind,
    data_dir: &Path,
    otp_webhook: &str,
    signing_key_pem: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = vec![
        ("ECHO_LISTEN", "127.0.0.1:0".to_owned()),
        ("ECHO_ADMIN_LISTEN", "127.0.0.1:0".to_owned()),
        ("ECHO_INTERNAL_LISTEN", "127.0.0.1:0".to_owned()),
        ("ECHO_DATA_DIR", data_dir.display().to_string()),
        ("ECHO_LOG_FORMAT", "text".to_owned()),
        ("ECHO_LOG_FILTER", "warn".to_owned()),
        ("ECHO_AUTH__OTP_SENDER", otp_webhook.to_owned()),
        ("ECHO_AUTH__JWT_SIGNING_KEY", signing_key_pem.to_owned()),
    ];
    if backend == BackendKind::Real {
        let isolation = unique_name("bench");
        let need = |server: Server| {
            url(server).with_context(|| format!("{server:?} is not reachable (`just services`)"))
        };
        env.extend([
            ("ECHO_DATABASE_URL", need(Server::Postgres)?),
            ("ECHO_DATABASE_SCHEMA_PREFIX", format!("{isolation}_")),
            ("ECHO_BUS_URL", need(Server::Nats)?),
            ("ECHO_BUS_SUBJECT_PREFIX", format!("{isolation}.")),
            ("ECHO_CACHE_URL", need(Server::Redis)?),
            ("ECHO_CACHE_KEY_PREFIX", format!("{isolation}:")),
            (
                "ECHO_AUTH__OTP_HMAC_KEY",
                format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
            ),
            // Production mode (real backends) needs the service credential of internal calls.
            (
                "ECHO_SERVICE_SECRET",
                format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
            ),
        ]);
    }
    Ok(env
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect())
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
