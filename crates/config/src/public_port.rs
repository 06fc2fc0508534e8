//! The public port's own defences: TLS, connection and stream caps, header sizes, and the
//! handshake, idle and request timeouts. The internal port stays plaintext (internal network)
//! and keeps its defaults.
//!
//! The defaults are for a production port on the open internet; each says why beside it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::humantime_secs;

/// The smallest header cap HTTP/1 can work with: hyper's read buffer cannot be smaller.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

/// How the public port defends itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicPortSettings {
    /// PEM certificate chain (leaf first) for TLS on the public port; re-read when it changes.
    /// Unset with `tls_key_file`: plaintext (TLS terminates at an ingress in front).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) matching `tls_cert_file`; re-read with it.
    pub tls_key_file: Option<PathBuf>,
    /// Open connections (including ones still handshaking); one more is closed at once and
    /// counted in `echo_public_connections_refused_total{reason="limit"}`.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams (calls) per connection, advertised in SETTINGS; a client
    /// queues calls beyond it until one ends.
    pub max_concurrent_streams: u32,
    /// Largest request header block, in bytes (HTTP/2 header list size, HTTP/1 header
    /// buffer); larger is refused with HTTP 431. At least 8192.
    pub max_header_bytes: usize,
    /// Time for a new connection's TLS handshake (or, in plaintext, its first byte), and for
    /// each HTTP/1.1 request header block to arrive in full; slower is disconnected.
    #[serde(with = "humantime_secs")]
    pub handshake_timeout: Duration,
    /// A connection with no call open for this long is closed (HTTP/2 GOAWAY); keepalive
    /// pings do not count as activity, a long-lived stream does.
    #[serde(with = "humantime_secs")]
    pub idle_timeout: Duration,
    /// Longest a call may take to answer (a unary call's whole run, a stream's start);
    /// slower gets DEADLINE_EXCEEDED. A client's shorter `grpc-timeout` wins. Server streams
    /// (Subscribe, WatchPresence) live on once started.
    #[serde(with = "humantime_secs")]
    pub request_timeout: Duration,
    /// Serve the web chat (`web/dist`, built into the binary) at `/` of this port. Unset: on
    /// in development, off in production (a CDN serves it there; docs/web.md).
    pub web_app: Option<bool>,
}

impl Default for PublicPortSettings {
    fn default() -> Self {
        Self {
            // TLS is opt-in: most deployments terminate it at an ingress (deploy/).
            tls_cert_file: None,
            tls_key_file: None,
            // Each connection costs a socket and tens of KiB of HTTP/2 and TLS buffers: 10 000
            // stays within a default 64 Ki descriptor limit and a few hundred MiB of memory.
            max_connections: 10_000,
            // HTTP/2's recommended minimum; a client holds a Subscribe, a WatchPresence and a
            // few unary calls at once.
            max_concurrent_streams: 100,
            // hyper's HTTP/2 default; a bearer token is about 1 KiB.
            max_header_bytes: 16 * 1024,
            // A TLS handshake is 1–2 round trips; 10 s covers a poor mobile link, and bounds
            // what a slowloris client can hold.
            handshake_timeout: Duration::from_secs(10),
            // Long enough that a client between bursts keeps its connection (and TLS session);
            // short enough that abandoned connections do not fill the cap.
            idle_timeout: Duration::from_secs(300),
            // Unary calls answer in milliseconds; 30 s is far beyond a healthy call and frees
            // what a stuck one holds.
            request_timeout: Duration::from_secs(30),
            web_app: None,
        }
    }
}

impl PublicPortSettings {
    /// Why these settings cannot work, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Some(
                "public.tls_cert_file and public.tls_key_file go together: set both for TLS on \
                 the public port, or neither for plaintext (TLS at an ingress)"
                    .into(),
            );
        }
        if self.max_connections == 0 || self.max_concurrent_streams == 0 {
            return Some(
                "public.max_connections and public.max_concurrent_streams must be at least 1"
                    .into(),
            );
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Some(format!(
                "public.max_header_bytes ({}) must be at least {MIN_HEADER_BYTES}",
                self.max_header_bytes
            ));
        }
        let zero = [
            ("public.handshake_timeout", self.handshake_timeout),
            ("public.idle_timeout", self.idle_timeout),
            ("public.request_timeout", self.request_timeout),
        ]
        .into_iter()
        .find(|(_, value)| value.is_zero());
        if let Some((name, _)) = zero {
            return Some(format!("{name} must be above zero"));
        }
        None
    }

    /// Whether the port serves the web chat: `web_app` when set, else only in development.
    pub fn serves_web_app(&self, production: bool) -> bool {
        self.web_app.unwrap_or(!production)
    }

    /// Whether the public port speaks TLS itself.
    pub fn has_tls(&self) -> bool {
        self.tls_cert_file.is_some()
    }
}
