//! Private servers for outage tests: started on a free port, killed when dropped (even when
//! the test panics), so a test can cut its own dependency without touching the shared one.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child of this test.
pub struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    /// Start one on `port` and wait until it accepts connections. `None` after a loud notice
    /// when `redis-server` is not installed (a panic under `ECHO_REQUIRE_SERVICES=1`).
    pub fn start(port: u16) -> Option<Self> {
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(err) if !crate::services_required() => {
                eprintln!("\n!!! SKIPPING: cannot start redis-server: {err}\n");
                return None;
            }
            Err(err) => panic!("cannot start redis-server: {err}"),
        };
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "private redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// Its port (to restart a server on the same one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it now (an outage), waiting until it is gone.
    pub fn stop(mut self) {
        self.child.kill().expect("kill redis-server");
        self.child.wait().expect("reap redis-server");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
