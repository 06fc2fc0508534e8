//! The public port's own defences (DESIGN §10): TLS with a certificate reloaded from files,
//! a connection cap, per-connection stream and header caps, and the handshake, idle and
//! request timeouts. It serves connections with hyper directly (not tonic's `Server`), since
//! tonic exposes neither HTTP/1's header read timeout and buffer size nor a per-connection idle
//! close; the request timeout is a layer ([`calls::RequestTimeoutLayer`]).
//!
//! One connection's life: accepted (or closed at once over `max_connections`), handshaken in
//! its own task within `handshake_timeout` (TLS, or in plaintext its first byte), then served
//! until the peer leaves, it has no call open for `idle_timeout` (graceful close: GOAWAY on
//! HTTP/2), or shutdown (graceful close, forced after the drain grace).

mod calls;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use echo_config::PublicPortSettings;
use http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::TcpConnectInfo;

pub(crate) use calls::RequestTimeoutLayer;
use calls::{Calls, ConnectionService};

use crate::server::KEEPALIVE_TIMEOUT;

/// Connections refused or dropped before serving, by reason (`limit`, `handshake_timeout`,
/// `tls`, `closed`).
const REFUSED: &str = "echo_public_connections_refused_total";
/// Connections open on the public port (handshaking or served).
const OPEN: &str = "echo_public_connections";

/// What the connection loop needs beyond the service.
pub(crate) struct PortLimits {
    pub settings: PublicPortSettings,
    pub keepalive_interval: Duration,
    pub shutdown_grace: Duration,
}

/// Read the TLS certificate and key when configured (an unreadable or invalid pair refuses
/// to start, saying which file and why) and keep re-reading them until `shutdown`.
pub(crate) fn tls_acceptor(
    settings: &PublicPortSettings,
    shutdown: &CancellationToken,
) -> std::io::Result<Option<TlsAcceptor>> {
    match (&settings.tls_cert_file, &settings.tls_key_file) {
        (Some(cert), Some(key)) => {
            tls::acceptor(cert.clone(), key.clone(), shutdown.clone()).map(Some)
        }
        _ => Ok(None),
    }
}

/// Accept connections on `listener` and serve `service` on each until `shutdown`, then wait
/// for the open ones to drain (each is forced closed `shutdown_grace` after shutdown).
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    tls: Option<TlsAcceptor>,
    limits: PortLimits,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error>
where
    S: tower::Service<Request<tonic::body::Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    let limits = Arc::new(limits);
    let builder = Arc::new(connection_builder(&limits));
    let slots = Arc::new(Semaphore::new(limits.settings.max_connections));
    let connections = TaskTracker::new();
    loop {
        let (tcp, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, mostly: back off instead of spinning on the error.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!(REFUSED, "reason" => "limit").increment(1);
            tracing::debug!(%remote, "connection refused: max_connections reached");
            drop(tcp);
            continue;
        };
        let connection = Connection {
            service: service.clone(),
            builder: builder.clone(),
            limits: limits.clone(),
            shutdown: shutdown.clone(),
            _slot: slot,
        };
        // A task of its own shape per kind: one `run` holding either path kept both the TLS
        // and the plaintext serve future in every task (rustc did not overlap them): 8 KiB per
        // connection; split, 2.7 KiB less each (issue 19, docs/BENCHMARKS.md).
        match &tls {
            Some(acceptor) => connections.spawn(connection.run_tls(tcp, remote, acceptor.clone())),
            None => connections.spawn(connection.run_plaintext(tcp, remote)),
        };
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// HTTP/1.1 and HTTP/2 with the caps: streams and header list per HTTP/2 connection, header
/// buffer and header read timeout per HTTP/1.1 request, keepalive pings.
fn connection_builder(limits: &PortLimits) -> auto::Builder<TokioExecutor> {
    let settings = &limits.settings;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Also bounds the wait for a kept-alive connection's next request.
        .header_read_timeout(settings.handshake_timeout)
        .max_buf_size(settings.max_header_bytes.max(echo_config::MIN_HEADER_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    // Windows, frame size and send buffer stay at hyper's defaults (1 MiB stream and connection
    // windows, 16 KiB frames, 400 KiB send buffer per stream): none allocates up front — a
    // window is a credit, the send buffer a cap on what a stream may queue — so an idle
    // connection costs the same under any of them, while smaller windows would slow a 64 KiB
    // message body. What an idle connection holds is h2's own, fixed by h2 0.4 and not exposed:
    // a 16 KiB write buffer, an 8 KiB read buffer, a 4 KiB HPACK buffer and ~4 KiB of stream
    // and frame slabs, ~32 KiB of the ~37 KiB per connection measured (issue 19,
    // docs/BENCHMARKS.md).
    builder
}

/// One accepted connection, holding its slot under `max_connections` until it closes.
struct Connection<S> {
    service: S,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<PortLimits>,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
}

impl<S, B> Connection<S>
where
    S: tower::Service<Request<tonic::body::Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    /// Handshake TLS within `handshake_timeout`, then serve.
    async fn run_tls(self, tcp: TcpStream, remote: SocketAddr, acceptor: TlsAcceptor) {
        let info = opened(&tcp, remote);
        let deadline = self.limits.settings.handshake_timeout;
        match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => self.serve(stream, info).await,
            Ok(Err(error)) => refused("tls", remote, &error),
            Err(_) => refused("handshake_timeout", remote, &"no handshake in time"),
        }
        metrics::gauge!(OPEN).decrement(1.0);
    }

    /// Wait for the first byte within `handshake_timeout`, then serve.
    async fn run_plaintext(self, tcp: TcpStream, remote: SocketAddr) {
        let info = opened(&tcp, remote);
        let deadline = self.limits.settings.handshake_timeout;
        match tokio::time::timeout(deadline, tcp.peek(&mut [0; 1])).await {
            Ok(Ok(n)) if n > 0 => self.serve(tcp, info).await,
            Ok(Ok(_)) => refused("closed", remote, &"closed before a request"),
            Ok(Err(error)) => refused("closed", remote, &error),
            Err(_) => refused("handshake_timeout", remote, &"no request in time"),
        }
        metrics::gauge!(OPEN).decrement(1.0);
    }

    /// Serve HTTP on `io` until the peer leaves, it idles, or shutdown.
    async fn serve<IO>(self, io: IO, info: TcpConnectInfo)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let calls = Calls::new();
        let service = ConnectionService::new(self.service, info, calls.clone());
        let connection = self
            .builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::pin!(connection);
        let idle = calls.idle_for(self.limits.settings.idle_timeout);
        tokio::pin!(idle);
        let forced = async {
            self.shutdown.cancelled().await;
            tokio::time::sleep(self.limits.shutdown_grace).await;
        };
        tokio::pin!(forced);
        let mut closing = false;
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(error = %error, "connection ended with an error");
                    }
                    return;
                }
                () = &mut idle, if !closing => {
                    tracing::debug!("closing an idle connection");
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = self.shutdown.cancelled(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = &mut forced => return,
            }
        }
    }
}

/// Count an accepted connection as open (the caller counts it closed) and say where it is.
fn opened(tcp: &TcpStream, remote: SocketAddr) -> TcpConnectInfo {
    metrics::gauge!(OPEN).increment(1.0);
    let _ = tcp.set_nodelay(true);
    TcpConnectInfo {
        local_addr: tcp.local_addr().ok(),
        remote_addr: Some(remote),
    }
}

/// Count and log (at debug: every port on the internet sees junk) a connection dropped
/// before it was served.
fn refused(reason: &'static str, remote: SocketAddr, error: &dyn std::fmt::Display) {
    metrics::counter!(REFUSED, "reason" => reason).increment(1);
    tracing::debug!(%remote, reason, error = %error, "connection dropped before serving");
}
