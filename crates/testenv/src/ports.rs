//! Ports for servers a test starts itself and tells where to listen (private Redis and NATS,
//! `echo` child processes).
//!
//! Binding `127.0.0.1:0`, reading the port and closing the socket is a race: the port comes
//! from the kernel's ephemeral range, the same range `connect()` draws source ports from, so
//! between the close and the child's bind any outgoing connection on the machine (a mesh's
//! pool opening to PostgreSQL, say) may take it, and the child fails with "Address already in
//! use". It did, in CI. A port handed out here lies *below* the ephemeral range, where no
//! outgoing connection goes, and is locked (`flock` on a file named after it) for the life of
//! the process that took it, so no other caller — in this process or any other, including
//! `scripts/ports.py` — is handed it while the first may still use it. Unique by construction,
//! not by luck.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;

/// The lowest port handed out; the highest is just below the ephemeral range.
const LOWEST: u16 = 20_000;

/// Locks held until the process exits (which releases them).
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A TCP port on 127.0.0.1 that nothing listens on, outside the ephemeral range, and reserved
/// for this process while it lives (see the module docs).
pub fn free_port() -> u16 {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).expect("create the port lock directory");
    let (low, high) = (LOWEST, ephemeral_low());
    let span = u32::from(high - low);
    // Processes start their search at different places, so they rarely contend.
    let start = std::process::id().wrapping_mul(7919) % span;
    for step in 0..span {
        let port = low + ((start + step) % span) as u16;
        let Ok(file) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // something else listens there; the lock goes with `file`
        }
        HELD.lock().unwrap_or_else(|e| e.into_inner()).push(file);
        return port;
    }
    panic!("no free port in {low}..{high} on 127.0.0.1");
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("echo-ports")
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&low| low > LOWEST + 1_000)
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_below_the_ephemeral_range_and_locked() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            ports.len(),
            "a port was handed out twice: {ports:?}"
        );
        for port in ports {
            assert!(
                (LOWEST..ephemeral_low()).contains(&port),
                "{port} is not below the ephemeral range"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(lock_dir().join(port.to_string()))
                .unwrap();
            assert!(
                file.try_lock().is_err(),
                "{port} is not locked while this process lives"
            );
        }
    }
}
