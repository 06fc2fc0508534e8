//! The public port defends itself: TLS (ALPN h2 for gRPC, http/1.1 for grpc-web) with a
//! certificate reloaded from its files, caps on connections, streams and headers, and the
//! handshake, idle and request timeouts. Every refusal is seen through a real client (tonic
//! over tokio-rustls, hyper's HTTP/1.1 and HTTP/2 clients) or a raw socket, and after each the
//! port still serves.
//!
//! One piece: each test sets at most one `PublicPortSettings` field on the same `Port` harness (a
//! throwaway CA and its leaves, TLS or plaintext, `serves` after each refusal), which is nearly
//! half the file; split, the harness would be copied or made shared support, and a copy could drop
//! the check that the port serves on.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use echo_config::PublicPortSettings;
use echo_runtime::{Readiness, Running, ServeOptions, Services};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// The slow test service: `/echo.test.v1.Slow/<millis>` answers ABORTED after that long.
const SLOW: &str = "echo.test.v1.Slow";

/// A throwaway CA and the leaf certificates it signs for `localhost`.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "echo test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let der = params.self_signed(&key).unwrap().der().clone();
        Self {
            issuer: Issuer::new(params, key),
            der,
        }
    }

    /// Write a leaf named `common_name` to `dir`'s cert.pem and key.pem; its DER.
    fn write_leaf(&self, dir: &Path, common_name: &str) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        // Key first, then certificate, like a renewal tool writing one file after the other.
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        cert.der().clone()
    }

    /// A client config trusting this CA and offering `alpn`.
    fn client(&self, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }
}

/// A running public port and what its tests need.
struct Port {
    addr: SocketAddr,
    shutdown: CancellationToken,
    running: Option<Running>,
    readiness: Readiness,
    ca: Ca,
    dir: tempfile::TempDir,
}

impl Port {
    /// A TLS port with `edit` applied to test-sized settings.
    async fn tls(edit: impl FnOnce(&mut PublicPortSettings)) -> Self {
        let ca = Ca::new();
        let dir = tempfile::tempdir().unwrap();
        ca.write_leaf(dir.path(), "first");
        let mut settings = PublicPortSettings {
            tls_cert_file: Some(dir.path().join("cert.pem")),
            tls_key_file: Some(dir.path().join("key.pem")),
            ..PublicPortSettings::default()
        };
        edit(&mut settings);
        Self::start(settings, ca, dir).await
    }

    /// A plaintext port (TLS at an ingress) with `edit` applied.
    async fn plaintext(edit: impl FnOnce(&mut PublicPortSettings)) -> Self {
        let mut settings = PublicPortSettings::default();
        edit(&mut settings);
        Self::start(settings, Ca::new(), tempfile::tempdir().unwrap()).await
    }

    async fn start(settings: PublicPortSettings, ca: Ca, dir: tempfile::TempDir) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("debug")
                .try_init();
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let options = ServeOptions {
            keepalive_interval: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(2),
            cors_allowed_origins: vec!["*".into()],
            public: settings,
        };
        let mut services = Services::new();
        services.forward(SLOW, tower::service_fn(slow));
        let shutdown = CancellationToken::new();
        let (running, readiness) =
            echo_runtime::serve(listener, services, &options, shutdown.clone())
                .await
                .unwrap();
        Self {
            addr: running.addr,
            shutdown,
            running: Some(running),
            readiness,
            ca,
            dir,
        }
    }

    fn cert_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// A TLS connection offering `alpn` (fails when the server closes it).
    async fn connect_tls(&self, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        TlsConnector::from(self.ca.client(alpn))
            .connect(name, tcp)
            .await
    }

    /// A tonic channel over TLS with ALPN h2 (asserted on every connection it makes).
    async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        let (addr, config) = (self.addr, self.ca.client(b"h2"));
        Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let config = config.clone();
                async move {
                    let tcp = TcpStream::connect(addr).await?;
                    let name = ServerName::try_from("localhost").unwrap();
                    let tls = TlsConnector::from(config).connect(name, tcp).await?;
                    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
                    Ok::<_, std::io::Error>(TokioIo::new(tls))
                }
            }))
            .await
    }

    /// A plaintext tonic channel.
    async fn plain_channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Health answers a fresh TLS connection: the port serves.
    async fn serves(&self) {
        let channel = self.channel().await.expect("a new connection");
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .expect("health answers");
    }

    /// The common name of the certificate a new handshake gets.
    async fn served_common_name(&self) -> String {
        let tls = self.connect_tls(b"h2").await.unwrap();
        let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        common_name(&der)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.shutdown.cancel();
        drop(self.running.take());
    }
}

/// The CN in a DER certificate (test certificates: a printable CN right after its OID).
fn common_name(der: &[u8]) -> String {
    let oid = [0x55, 0x04, 0x03];
    let at = der.windows(3).rposition(|w| w == oid).unwrap() + 3;
    let len = der[at + 1] as usize;
    String::from_utf8_lossy(&der[at + 2..at + 2 + len]).into_owned()
}

/// `/echo.test.v1.Slow/<millis>`: wait that long, then answer ABORTED (any status will do: it
/// shows the call ran to its end).
async fn slow(
    request: Request<tonic::body::Body>,
) -> Result<Response<tonic::body::Body>, Infallible> {
    let millis: u64 = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok(tonic::Status::aborted("slow call done").into_http())
}

/// Call the slow service for `millis` over `channel`.
async fn call_slow(channel: Channel, millis: u64) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = format!("/{SLOW}/{millis}").parse().unwrap();
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    grpc.unary(
        tonic::Request::new(HealthCheckRequest::default()),
        path,
        codec,
    )
    .await
    .expect_err("the slow service always answers a status")
}

/// Read until the server closes the socket; how long after `since` that was and what it sent.
async fn read_until_closed(socket: &mut TcpStream, since: Instant) -> (Duration, Vec<u8>) {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut received));
    // A reset counts as closed too.
    let _ = read.await.expect("the server closes the connection");
    (since.elapsed(), received)
}

/// Wait for `condition` (polled every 50 ms) for at most `limit`.
async fn eventually<F: Future<Output = bool>>(limit: Duration, mut condition: impl FnMut() -> F) {
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn tls_serves_grpc_over_h2_and_grpc_web_over_http1() {
    let port = Port::tls(|_| {}).await;
    let channel = port.channel().await.unwrap();
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("health over TLS h2");
    let status = call_slow(channel, 0).await;
    assert_eq!(status.code(), Code::Aborted, "{status:?}");

    // grpc-web over HTTP/1.1 TLS, as a browser speaks it.
    let tls = port.connect_tls(b"http/1.1").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post("/grpc.health.v1.Health/Check")
        .header("host", "localhost")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_11);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("grpc-status:0"), "{text:?}");
}

#[tokio::test]
async fn a_renewed_certificate_reaches_new_handshakes_and_a_broken_one_is_ignored() {
    let port = Port::tls(|_| {}).await;
    assert_eq!(port.served_common_name().await, "first");

    // Half-written or broken files keep the previous certificate.
    std::fs::write(port.cert_dir().join("cert.pem"), "not a certificate").unwrap();
    // Nothing to await here: give the reloader (every second) two chances to get it wrong.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(port.served_common_name().await, "first");
    port.serves().await;

    port.ca.write_leaf(&port.cert_dir(), "renewed");
    eventually(Duration::from_secs(10), || async {
        port.served_common_name().await == "renewed"
    })
    .await;
    port.serves().await;
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_is_dropped_and_the_port_serves_on() {
    let port = Port::tls(|_| {}).await;
    let opened = Instant::now();
    let mut socket = TcpStream::connect(port.addr).await.unwrap();
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n\x00\xff junk")
        .await
        .unwrap();
    let (elapsed, received) = read_until_closed(&mut socket, opened).await;
    assert!(
        elapsed < Duration::from_secs(5),
        "closed at once: {elapsed:?}"
    );
    // At most a TLS alert record (content type 21), never an HTTP answer.
    assert!(received.is_empty() || received[0] == 21, "{received:?}");
    port.serves().await;
}

#[tokio::test]
async fn silent_and_half_handshakes_are_cut_after_handshake_timeout() {
    let timeout = Duration::from_millis(400);
    let port = Port::tls(|s| s.handshake_timeout = timeout).await;
    let opened = Instant::now();
    // Nothing at all.
    let mut silent = TcpStream::connect(port.addr).await.unwrap();
    // Half a ClientHello: a handshake record header announcing 512 bytes, then 10 of them.
    let mut half_hello = TcpStream::connect(port.addr).await.unwrap();
    half_hello
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0,
        ])
        .await
        .unwrap();
    for socket in [&mut silent, &mut half_hello] {
        let (elapsed, _) = read_until_closed(socket, opened).await;
        assert!(
            elapsed >= timeout - Duration::from_millis(50),
            "{elapsed:?}"
        );
        assert!(elapsed < timeout * 10, "{elapsed:?}");
    }
    port.serves().await;

    // Plaintext (TLS at an ingress): nothing, or half an HTTP/1.1 header block.
    let plain = Port::plaintext(|s| s.handshake_timeout = timeout).await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(plain.addr).await.unwrap();
    let mut half_header = TcpStream::connect(plain.addr).await.unwrap();
    half_header
        .write_all(b"POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: localhost\r\nx-a: b")
        .await
        .unwrap();
    for socket in [&mut silent, &mut half_header] {
        let (elapsed, _) = read_until_closed(socket, opened).await;
        assert!(
            elapsed >= timeout - Duration::from_millis(50),
            "{elapsed:?}"
        );
        assert!(elapsed < timeout * 10, "{elapsed:?}");
    }
    HealthClient::new(plain.plain_channel().await)
        .check(HealthCheckRequest::default())
        .await
        .expect("the plaintext port serves on");
}

#[tokio::test]
async fn oversize_headers_are_refused_and_the_port_serves_on() {
    let port = Port::tls(|s| s.max_header_bytes = 8 * 1024).await;
    let channel = port.channel().await.unwrap();
    let mut request = tonic::Request::new(HealthCheckRequest::default());
    request
        .metadata_mut()
        .insert("x-padding", "a".repeat(10 * 1024).parse().unwrap());
    let refused = HealthClient::new(channel.clone())
        .check(request)
        .await
        .expect_err("headers over the cap");
    // HTTP/2: h2 answers the stream 431 (the connection lives on), which a gRPC client reads
    // as UNKNOWN since no grpc-status came with it.
    assert_eq!(refused.code(), Code::Unknown, "{refused:?}");
    assert!(refused.message().contains("431"), "{refused:?}");
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("the same connection serves on");

    // HTTP/1.1 (grpc-web): 431 Request Header Fields Too Large.
    let tls = port.connect_tls(b"http/1.1").await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post("/grpc.health.v1.Health/Check")
        .header("host", "localhost")
        .header("content-type", "application/grpc-web+proto")
        .header("x-padding", "a".repeat(10 * 1024))
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 431);
    port.serves().await;
}

#[tokio::test]
async fn one_connection_over_the_cap_is_closed_while_the_others_work() {
    let port = Port::tls(|s| s.max_connections = 2).await;
    let first = port.channel().await.unwrap();
    let second = port.channel().await.unwrap();
    let metrics = echo_runtime::admin::prometheus();
    let refused = port.connect_tls(b"h2").await;
    assert!(refused.is_err(), "the third connection is closed at once");
    let counted = metrics.render();
    assert!(
        counted.contains(r#"echo_public_connections_refused_total{reason="limit"} 1"#),
        "{counted}"
    );
    for channel in [first.clone(), second] {
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .expect("the connections under the cap work");
    }
    // A slot frees when a connection closes.
    drop(first);
    eventually(Duration::from_secs(5), || async {
        port.connect_tls(b"h2").await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn calls_beyond_the_stream_cap_wait_for_a_free_stream() {
    let port = Port::tls(|s| s.max_concurrent_streams = 2).await;
    let channel = port.channel().await.unwrap();
    let mut health = HealthClient::new(channel.clone());
    let mut first = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let second = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    first.message().await.unwrap();
    let third = tokio::spawn(async move {
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
    });
    // A negative: the third call waits (the client queues it under SETTINGS_MAX_CONCURRENT_
    // STREAMS) rather than failing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "a third stream waits for a free one");
    drop(second);
    let answered = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("runs once a stream frees")
        .unwrap();
    answered.expect("and succeeds");
}

#[tokio::test]
async fn a_slow_unary_call_gets_deadline_exceeded_while_a_stream_outlives_it() {
    let timeout = Duration::from_millis(400);
    let port = Port::tls(|s| s.request_timeout = timeout).await;
    let channel = port.channel().await.unwrap();
    let mut stream = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: SLOW.into(),
        })
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap();

    let started = Instant::now();
    let status = call_slow(channel.clone(), 5_000).await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let status = call_slow(channel.clone(), 10).await;
    assert_eq!(status.code(), Code::Aborted, "a quick call runs to its end");

    // The stream, opened before the slow call, is long past the request timeout and alive.
    assert!(started.elapsed() > timeout);
    port.readiness.set(false).await;
    port.readiness.set(true).await;
    let changed = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the stream still delivers")
        .unwrap();
    assert!(changed.is_some());
}

#[tokio::test]
async fn an_idle_connection_is_closed_though_pings_flow_and_an_open_stream_keeps_it() {
    let idle = Duration::from_millis(600);
    let port = Port::tls(|s| s.idle_timeout = idle).await;
    let h2 = |tls| hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls));
    let check = || {
        Request::post("http://localhost/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap()
    };

    // One call, then nothing but the server's keepalive pings (every 200 ms): closed.
    let (mut sender, connection) = h2(port.connect_tls(b"h2").await.unwrap()).await.unwrap();
    let closed = tokio::spawn(connection);
    let response = sender.send_request(check()).await.unwrap();
    response.into_body().collect().await.unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the idle connection is closed")
        .unwrap()
        .expect("gracefully (GOAWAY)");
    assert!(started.elapsed() >= idle - Duration::from_millis(100));

    // An open stream is a call: the connection stays past the idle timeout.
    let (mut sender, connection) = h2(port.connect_tls(b"h2").await.unwrap()).await.unwrap();
    let closed = tokio::spawn(connection);
    let watch = Request::post("http://localhost/grpc.health.v1.Health/Watch")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap();
    let stream = sender.send_request(watch).await.unwrap();
    // A negative: nothing to await but time passing.
    tokio::time::sleep(idle * 3).await;
    // Not idle: no GOAWAY came (after one, a new call on this connection would fail).
    assert!(!closed.is_finished());
    let response = sender.send_request(check()).await;
    response
        .expect("a connection with an open stream is not idle")
        .into_body()
        .collect()
        .await
        .unwrap();
    drop(stream);
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("idle once the stream ends")
        .unwrap()
        .unwrap();
}
