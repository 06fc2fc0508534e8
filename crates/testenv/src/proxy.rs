//! A TCP proxy a test owns, to cut its own path to a shared server (Redis, NATS, PostgreSQL)
//! without stopping the server other tests use (DESIGN §12).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Forwards 127.0.0.1:<port> to an upstream until cut; stops when dropped.
pub struct TcpProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    connections: Mutex<Vec<AbortHandle>>,
}

impl TcpProxy {
    /// Start forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if accepting.cut.load(Ordering::Acquire) {
                    drop(client); // refused: connected, then closed at once
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut connections = accepting.connections.lock().expect("proxy lock");
                connections.retain(|c| !c.is_finished());
                connections.push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            port,
            shared,
            accept,
        }
    }

    /// A proxy to the server of `url` (e.g. the shared Redis), and `url` pointed at it.
    pub async fn in_front_of(url: &str) -> (Self, String) {
        use std::net::ToSocketAddrs as _;
        let upstream = crate::host_port(url)
            .and_then(|hp| hp.to_socket_addrs().ok()?.next())
            .expect("a reachable host:port in the URL");
        let proxy = Self::start(upstream).await;
        let proxied = proxy.url_for(url);
        (proxy, proxied)
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `upstream_url` with its host and port replaced by the proxy's (e.g. a redis:// URL).
    pub fn url_for(&self, upstream_url: &str) -> String {
        let (scheme, rest) = upstream_url.split_once("://").expect("a URL with a scheme");
        let (userinfo, after) = match rest.rsplit_once('@') {
            Some((userinfo, after)) => (format!("{userinfo}@"), after),
            None => (String::new(), rest),
        };
        let path = after.find('/').map(|i| &after[i..]).unwrap_or("");
        format!("{scheme}://{userinfo}127.0.0.1:{}{path}", self.port)
    }

    /// Cut: every open connection is dropped and new ones are closed at once.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::Release);
        for connection in self
            .shared
            .connections
            .lock()
            .expect("proxy lock")
            .drain(..)
        {
            connection.abort();
        }
    }

    /// Forward again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::Release);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
