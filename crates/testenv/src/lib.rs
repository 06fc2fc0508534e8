//! Where tests find the shared Postgres, NATS and Redis servers, and how each test isolates
//! itself on them (DESIGN §12).
//!
//! A server is looked up at `ECHO_TEST_<NAME>_URL` or at its standard localhost port. When it
//! cannot be reached the test says so loudly on stderr and skips (the caller gets `None`),
//! unless `ECHO_REQUIRE_SERVICES=1` (set by `.ci/run`), which turns absence into a panic.

mod ports;
mod postgres;
mod private;
mod proxy;

use std::net::{TcpStream, ToSocketAddrs};

pub use ports::free_port;
pub use postgres::PrivatePostgres;
pub use private::{PrivateNats, PrivateRedis};
pub use proxy::TcpProxy;
use std::time::Duration;

/// A shared server that integration tests may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// PostgreSQL, default `postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable` (TLS
    /// on loopback would only cost CPU; `tests/backend_tls.rs` tests TLS on servers of its own).
    Postgres,
    /// NATS with JetStream, default `nats://127.0.0.1:4222`.
    Nats,
    /// Redis, default `redis://127.0.0.1:6379`.
    Redis,
}

impl Server {
    fn env_var(self) -> &'static str {
        match self {
            Server::Postgres => "ECHO_TEST_POSTGRES_URL",
            Server::Nats => "ECHO_TEST_NATS_URL",
            Server::Redis => "ECHO_TEST_REDIS_URL",
        }
    }

    fn default_url(self) -> &'static str {
        match self {
            Server::Postgres => "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
            Server::Nats => "nats://127.0.0.1:4222",
            Server::Redis => "redis://127.0.0.1:6379",
        }
    }
}

/// True when `ECHO_REQUIRE_SERVICES=1`: a missing server is a failure, not a skip.
pub fn services_required() -> bool {
    std::env::var("ECHO_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v == "true")
}

/// The URL of `server` if it answers on TCP; `None` (after a loud skip notice) if it does not.
///
/// Panics when the server is absent and [`services_required`] is set.
pub fn url(server: Server) -> Option<String> {
    let url = std::env::var(server.env_var()).unwrap_or_else(|_| server.default_url().to_owned());
    if reachable(&url) {
        return Some(url);
    }
    let message = format!(
        "{server:?} is not reachable at {url} (set {} to point elsewhere)",
        server.env_var()
    );
    if services_required() {
        panic!("{message}; ECHO_REQUIRE_SERVICES=1 makes this a failure");
    }
    eprintln!("\n!!! SKIPPING: {message}\n");
    None
}

/// A name unique to this call, safe as a Postgres schema, a NATS subject token or a Redis key
/// prefix: lowercase letters, digits and underscores, starting with `prefix`.
///
/// Unique by construction, not by a random draw: the time in milliseconds (which also sorts
/// runs together), this process's id (no two live processes share one) and a per-process
/// counter. A process id comes back only after the kernel has cycled through every other, so
/// the same (time, id) pair would need a second process with that id in the same millisecond.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis();
    format!("{prefix}_{millis:012x}_{:x}_{count:x}", std::process::id())
}

fn reachable(url: &str) -> bool {
    let Some(host_port) = host_port(url) else {
        return false;
    };
    let Ok(mut addrs) = host_port.to_socket_addrs() else {
        return false;
    };
    addrs.any(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok())
}

/// `scheme://[user[:pass]@]host:port[/path][?query]` → `host:port`.
fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    Some(host_port.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_strips_credentials_path_and_query() {
        assert_eq!(
            host_port("postgres://postgres:pw@127.0.0.1:5432/db?sslmode=disable").as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(
            host_port("nats://127.0.0.1:4222").as_deref(),
            Some("127.0.0.1:4222")
        );
    }

    #[test]
    fn unique_names_differ_and_are_identifier_safe() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
