//! A PostgreSQL cluster a test owns: initdb'd into a directory the test gives, started on a
//! port of its own, and killed outright or stopped when the test says (or when dropped, panics
//! included). The shared server other tests use is never touched.
//!
//! initdb and postgres refuse to run as root, so as root both run as the `postgres` user (its
//! uid and gid set on the child, as `runuser -u postgres` would), and the directory is given to
//! that user.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start (crash recovery included) may take before the test fails.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A PostgreSQL cluster in `<dir>/data`, listening on 127.0.0.1:`port` while started.
pub struct PrivatePostgres {
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivatePostgres {
    /// initdb a cluster into `dir`/data (trust authentication for `postgres`, UTF8) set to
    /// listen on 127.0.0.1:`port`, with `settings` appended to postgresql.conf and `hba` as
    /// pg_hba.conf; not started yet. `None` after a loud notice when PostgreSQL's binaries are
    /// not installed (a panic under `ECHO_REQUIRE_SERVICES=1`).
    pub fn init(dir: &Path, port: u16, settings: &str, hba: &str) -> Option<Self> {
        let Some(bin) = bin_dir() else {
            let message = "PostgreSQL (initdb, postgres) is not installed";
            assert!(
                !crate::services_required(),
                "{message}; ECHO_REQUIRE_SERVICES=1 makes this a failure"
            );
            eprintln!("\n!!! SKIPPING: {message}\n");
            return None;
        };
        let server = Self {
            bin,
            owner: server_owner(),
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        server.give(dir);
        let data = server.data();
        let init = server
            .command("initdb")
            .args(["--no-sync", "-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .arg("-D")
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let base = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             max_connections = 100\n",
            dir.display()
        );
        OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut conf| conf.write_all(format!("{base}{settings}").as_bytes()))
            .expect("append to postgresql.conf");
        fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        Some(server)
    }

    /// Give `path` to the user the server runs as (files it must read, such as a TLS key).
    pub fn give(&self, path: &Path) {
        if let Some((uid, gid)) = self.owner {
            chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
        }
    }

    /// Start the server (again, after [`Self::kill`]: on the same port and data, through
    /// crash recovery) and wait until it accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "private postgres is already running");
        let log_path = self.dir.join("postgres.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("postgres log");
        self.give(&log_path);
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        self.wait_until_ready();
    }

    /// SIGKILL the postmaster and every backend it forked, as a crash of the machine's
    /// database would end them: no goodbye to clients, no checkpoint. Backends are their own
    /// process groups (postgres makes each one a session leader), so they are found by parent
    /// before the postmaster dies and killed with it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("private postgres is running");
        let postmaster = child.id();
        let mut pids = children_of(postmaster);
        pids.push(postmaster);
        // A backend may have exited by itself meanwhile (kill then fails for it alone).
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status()
            .expect("run kill");
        child.wait().expect("reap postgres");
        // Orphaned backends are reaped by init; wait until none is left holding shared memory,
        // or the restart refuses the data dir.
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids
            .iter()
            .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
        {
            assert!(
                Instant::now() < deadline,
                "postgres backends outlived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A fast shutdown (SIGINT: backends end, clients are told), SIGKILL if it takes over 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres?<query>`.
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }

    /// What the server logged so far (for a failure message).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `program` from the server's bin dir, run as its owner in its directory.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command.current_dir(&self.dir);
        command
    }

    /// Polls `pg_isready` (which answers "accepting" only once recovery is done and
    /// connections are let in, whatever the authentication rules) until it says so.
    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let ready = self
                .command("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .expect("run pg_isready");
            if ready.success() {
                return;
            }
            let child = self.child.as_mut().expect("started");
            let exited = child.try_wait().expect("poll postgres");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "private postgres did not start ({exited:?}):\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The pids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses: split after
            // the last `)`.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// The directory holding `initdb` and `postgres`: the newest `/usr/lib/postgresql/<v>/bin`,
/// else wherever `initdb` is on PATH.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    let packaged = versions.into_iter().map(|(_, bin)| bin).next_back();
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    packaged.into_iter().chain(on_path).find(|dir| {
        ["initdb", "postgres", "pg_isready"]
            .iter()
            .all(|program| dir.join(program).is_file())
    })
}

/// The uid and gid PostgreSQL runs as: `postgres`'s when this process is root (initdb and
/// postgres refuse root), none (ourselves) otherwise.
fn server_owner() -> Option<(u32, u32)> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let uid_line = status.lines().find(|l| l.starts_with("Uid:"))?;
    if uid_line.split_whitespace().nth(2)? != "0" {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let fields: Vec<&str> = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres"))
        .expect("running as root needs a `postgres` user to run PostgreSQL as");
    Some((
        fields[2].parse().expect("postgres uid"),
        fields[3].parse().expect("postgres gid"),
    ))
}
