//! `--profile FILE`: `perf record -F 499 -g` of the server's process over a scenario's measured
//! window (this process for an in-process server, the child's for a child), so a figure comes
//! with where its time went. Read it with `perf report -i FILE` (or `perf script -i FILE` for a
//! flame graph's input).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// Samples a second: prime, so the sampling does not beat with periodic work.
const FREQUENCY: &str = "499";

/// Windows recorded so far (the first goes to FILE, later ones to FILE.2, FILE.3, …).
static WINDOWS: AtomicUsize = AtomicUsize::new(0);

/// Fail at once, before any load, if `perf` cannot run here.
pub fn check_available() -> anyhow::Result<()> {
    let version = std::process::Command::new("perf")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match version {
        Ok(status) if status.success() => Ok(()),
        _ => bail!(
            "--profile needs `perf` on PATH (Debian/Ubuntu: apt-get install linux-perf or \
             linux-tools-$(uname -r)); it was not found or did not run"
        ),
    }
}

/// A `perf record` running over one window.
pub struct Recording {
    perf: Child,
    path: PathBuf,
    what: String,
}

/// Start recording process `pid` into the next file of `base`, if profiling was asked for;
/// `what` says which window (for the line naming the file).
pub async fn start(
    base: Option<&Path>,
    pid: Option<u32>,
    what: &str,
) -> anyhow::Result<Option<Recording>> {
    let Some(base) = base else {
        return Ok(None);
    };
    let Some(pid) = pid else {
        bail!("--profile needs the server's process id (with --target, pass --server-pid)");
    };
    let path = next_path(base, WINDOWS.fetch_add(1, Ordering::Relaxed));
    let mut perf = Command::new("perf")
        .args([
            "record",
            "-F",
            FREQUENCY,
            "-g",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("start `perf record` (is perf installed?)")?;
    // perf refuses at once when it may not attach (perf_event_paranoid, a missing pid):
    // better to say so now than to find an empty file after the run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(status) = perf.try_wait()? {
        let mut error = String::new();
        if let Some(mut stderr) = perf.stderr.take() {
            use tokio::io::AsyncReadExt as _;
            let _ = stderr.read_to_string(&mut error).await;
        }
        bail!(
            "`perf record -p {pid}` exited at once ({status}): {}",
            error.trim()
        );
    }
    Ok(Some(Recording {
        perf,
        path,
        what: what.to_owned(),
    }))
}

impl Recording {
    /// Stop recording (SIGINT, as Ctrl-C stops perf, so it writes its file) and say where it is.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(pid) = self.perf.id() else {
            bail!("`perf record` ended before the window did");
        };
        // `kill` rather than a signal crate: the workspace forbids unsafe code.
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await?;
        let status = tokio::time::timeout(Duration::from_secs(60), self.perf.wait())
            .await
            .context("`perf record` did not finish writing within 60 s")??;
        // perf exits with 130 or 0 after SIGINT depending on its version; the file is what counts.
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if size == 0 {
            bail!(
                "`perf record` wrote nothing to {} ({status})",
                self.path.display()
            );
        }
        crate::report::note(&format!(
            "profile of {} ({} KiB): perf report -i {}",
            self.what,
            size / 1024,
            self.path.display()
        ));
        Ok(())
    }
}

/// FILE for the first window, FILE.2, FILE.3, … for the next.
fn next_path(base: &Path, index: usize) -> PathBuf {
    if index == 0 {
        return base.to_path_buf();
    }
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{}", index + 1));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_windows_get_numbered_files() {
        let base = Path::new("/tmp/fanout.perf");
        assert_eq!(next_path(base, 0), PathBuf::from("/tmp/fanout.perf"));
        assert_eq!(next_path(base, 1), PathBuf::from("/tmp/fanout.perf.2"));
        assert_eq!(next_path(base, 2), PathBuf::from("/tmp/fanout.perf.3"));
    }
}
