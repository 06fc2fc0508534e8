//! A TCP proxy a test owns, to cut its own path to a shared server (Redis, NATS, PostgreSQL)
//! without stopping the server other tests use (DESIGN §12).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Forwards 127.0.0.1:<port> to an upstream until cut or blackholed; stops when dropped.
pub struct TcpProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Copies bytes both ways as they come.
    Forward,
    /// Refuses: new connections are closed at once (open ones were dropped when cut).
    Cut,
    /// Swallows: connections are accepted and held, nothing is copied either way, nothing is
    /// closed — packets dropped on the way, as a dead link or a firewall's DROP looks to both
    /// ends. What was held goes through once forwarding resumes (a healed partition).
    Blackhole,
}

struct Shared {
    mode: watch::Sender<Mode>,
    connections: Mutex<Vec<AbortHandle>>,
}

impl TcpProxy {
    /// Start forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            mode: watch::channel(Mode::Forward).0,
            connections: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *accepting.mode.borrow() == Mode::Cut {
                    drop(client); // refused: connected, then closed at once
                    continue;
                }
                let task = tokio::spawn(forward(client, upstream, accepting.mode.subscribe()));
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
        self.shared.mode.send_replace(Mode::Cut);
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

    /// Blackhole: open connections stay open but nothing more is copied either way, and new
    /// ones are accepted and held; no end is told anything (no reset, no close).
    pub fn blackhole(&self) {
        self.shared.mode.send_replace(Mode::Blackhole);
    }

    /// Forward again (held connections and bytes go on where they stopped).
    pub fn restore(&self) {
        self.shared.mode.send_replace(Mode::Forward);
    }
}

/// One client connection: held while blackholed, then connected upstream and copied both
/// ways until either side closes (each direction's end passed on as a half-close).
async fn forward(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    match mode.wait_for(|m| *m != Mode::Blackhole).await {
        Ok(now) if *now == Mode::Forward => {}
        _ => return, // cut while held, or the proxy is gone
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, mode.clone()),
        pump(server_read, client_write, mode),
    );
}

/// Copies `from` to `to`; what is read while blackholed is held until forwarding resumes.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => 0,
            Ok(read) => read,
        };
        if mode.wait_for(|m| *m != Mode::Blackhole).await.is_err() {
            return;
        }
        if read == 0 {
            let _ = to.shutdown().await;
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
