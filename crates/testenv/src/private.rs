//! Private servers for outage tests: started on a free port, killed when dropped (even when
//! the test panics), so a test can kill its own dependency without touching the shared one.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process child of this test.
struct Private {
    child: Child,
    port: u16,
    program: &'static str,
}

impl Private {
    /// Start `program` with `args`, listening on `port`, and wait until it accepts
    /// connections. `None` after a loud notice when `program` is not installed (a panic under
    /// `ECHO_REQUIRE_SERVICES=1`).
    fn start(program: &'static str, args: &[&str], port: u16) -> Option<Self> {
        let spawned = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(err) if !crate::services_required() => {
                eprintln!("\n!!! SKIPPING: cannot start {program}: {err}\n");
                return None;
            }
            Err(err) => panic!("cannot start {program}: {err}"),
        };
        let server = Self {
            child,
            port,
            program,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "private {program} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// SIGKILL it now (a crash), waiting until it is gone.
    fn kill(&mut self) {
        self.child
            .kill()
            .unwrap_or_else(|e| panic!("kill {}: {e}", self.program));
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("reap {}: {e}", self.program));
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` child of this test (no persistence).
pub struct PrivateRedis(Private);

impl PrivateRedis {
    /// Start one on `port`; `None` when `redis-server` is not installed (see [`Private`]).
    pub fn start(port: u16) -> Option<Self> {
        let port_arg = port.to_string();
        let args = [
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        Private::start("redis-server", &args, port).map(Self)
    }

    /// Its port (to restart a server on the same one).
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port)
    }

    /// Kill it now (an outage), waiting until it is gone.
    pub fn stop(mut self) {
        self.0.kill();
    }
}

/// A `nats-server` child of this test with JetStream storing in `store` (start another on the
/// same port and store to bring it back with its streams and consumers).
pub struct PrivateNats(Private);

impl PrivateNats {
    /// Start one on `port`; `None` when `nats-server` is not installed (see [`Private`]).
    pub fn start(port: u16, store: &Path) -> Option<Self> {
        let port_arg = port.to_string();
        let store = store.to_str().expect("a UTF-8 store path");
        let args = ["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd", store];
        Private::start("nats-server", &args, port).map(Self)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port)
    }

    /// SIGKILL it now (a crash), waiting until it is gone.
    pub fn kill(mut self) {
        self.0.kill();
    }
}
