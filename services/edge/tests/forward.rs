//! The split-mode edge through real clients: an upstream and an edge, each started with the
//! serving kit on 127.0.0.1:0, and generated tonic clients (or grpc-web over HTTP/1.1) talking
//! to the edge only.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Port, within};
use echo_edge::Forwarder;
use echo_proto::echo::user::v1::user_service_client::UserServiceClient;
use echo_proto::echo::user::v1::{GetMeRequest, ListContactsRequest};
use echo_proto::service_names;
use echo_runtime::Services;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::body::Body;
use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_types::StatusExt;
use tower::ServiceExt as _;
use tower::util::MapRequest;

/// Health served under another name, so the edge's own health does not shadow it.
const RELAYED_HEALTH: &str = "relay.v1.Health";

impl Port {
    /// An edge forwarding each `service` to `upstream`.
    async fn edge(services: &[&'static str], upstream: SocketAddr) -> Self {
        let uri: http::Uri = format!("http://{upstream}").parse().unwrap();
        let forwarder = Forwarder::new(services.iter().map(|s| (*s, uri.clone()))).unwrap();
        let mut edge = Services::new();
        forwarder.mount(&mut edge);
        Self::start(edge).await
    }
}

/// A UserService whose RPCs are the generated stubs: UNIMPLEMENTED proves a call arrived.
struct StubUsers;

#[tonic::async_trait]
impl echo_proto::echo::user::v1::user_service_server::UserService for StubUsers {}

/// An upstream running [`StubUsers`].
async fn auth_upstream() -> Port {
    let mut services = Services::new();
    services
        .add(echo_proto::echo::user::v1::user_service_server::UserServiceServer::new(StubUsers));
    Port::start(services).await
}

/// The request with its path prefix `from` replaced by `to`.
fn rename(mut request: Request<Body>, from: &str, to: &str) -> Request<Body> {
    if let Some(rest) = request.uri().path().strip_prefix(from) {
        *request.uri_mut() = format!("{to}{rest}").parse().unwrap();
    }
    request
}

/// Client side: health calls go to [`RELAYED_HEALTH`].
fn to_relay(request: Request<Body>) -> Request<Body> {
    rename(request, "/grpc.health.v1.Health/", "/relay.v1.Health/")
}

/// Upstream side: [`RELAYED_HEALTH`] calls reach the health server.
fn from_relay(request: Request<Body>) -> Request<Body> {
    rename(request, "/relay.v1.Health/", "/grpc.health.v1.Health/")
}

type Rename = fn(Request<Body>) -> Request<Body>;

/// An upstream serving a health service it controls under [`RELAYED_HEALTH`].
async fn health_upstream() -> (Port, tonic_health::server::HealthReporter) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("chat", ServingStatus::Serving)
        .await;
    let mut services = Services::new();
    services.forward(RELAYED_HEALTH, health.map_request(from_relay as Rename));
    (Port::start(services).await, reporter)
}

/// A health client whose calls go to [`RELAYED_HEALTH`] on `port`.
fn relayed_health_client(port: &Port) -> HealthClient<MapRequest<Channel, Rename>> {
    HealthClient::new(port.channel().map_request(to_relay as Rename))
}

#[tokio::test]
async fn a_unary_call_gets_the_upstreams_answer() {
    let upstream = auth_upstream().await;
    let edge = Port::edge(&[service_names::USER], upstream.addr).await;

    let direct = UserServiceClient::new(upstream.channel())
        .list_contacts(ListContactsRequest::default())
        .await
        .unwrap_err();
    let mut request = tonic::Request::new(ListContactsRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "edge-test-1".parse().unwrap());
    let through = within(
        "the forwarded call",
        UserServiceClient::new(edge.channel()).list_contacts(request),
    )
    .await
    .unwrap_err();

    assert_eq!(through.code(), direct.code(), "{through:?}");
    assert_eq!(through.message(), direct.message());
    assert_eq!(
        through.metadata().get("x-request-id").unwrap(),
        "edge-test-1"
    );
    edge.stop().await;
    upstream.stop().await;
}

/// A stand-in upstream method that answers with the request headers it received, as
/// `seen-*` metadata on a FAILED_PRECONDITION status.
async fn header_echo(request: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
    let mut status = tonic::Status::failed_precondition("headers echoed");
    for name in [
        "x-request-id",
        "authorization",
        "grpc-timeout",
        "traceparent",
        "x-forwarded-for",
        "te",
        "connection",
        "host",
    ] {
        if let Some(value) = request.headers().get(name) {
            let key = format!("seen-{name}")
                .parse::<tonic::metadata::MetadataKey<_>>()
                .unwrap();
            status
                .metadata_mut()
                .insert(key, value.to_str().unwrap().parse().unwrap());
        }
    }
    Ok(status.into_http())
}

#[tokio::test]
async fn request_headers_reach_the_upstream_and_hop_headers_do_not() {
    let mut services = Services::new();
    services.forward(service_names::USER, tower::service_fn(header_echo));
    let upstream = Port::start(services).await;
    let edge = Port::edge(&[service_names::USER], upstream.addr).await;

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = tonic::Request::new(GetMeRequest::default());
    request.set_timeout(Duration::from_secs(5));
    let metadata = request.metadata_mut();
    metadata.insert("x-request-id", "edge-test-2".parse().unwrap());
    metadata.insert("authorization", "Bearer token".parse().unwrap());
    metadata.insert("traceparent", traceparent.parse().unwrap());
    let status = within(
        "the forwarded call",
        UserServiceClient::new(edge.channel()).get_me(request),
    )
    .await
    .unwrap_err();

    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let seen = |name: &str| {
        status
            .metadata()
            .get(format!("seen-{name}"))
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(seen("x-request-id").as_deref(), Some("edge-test-2"));
    assert_eq!(seen("authorization").as_deref(), Some("Bearer token"));
    assert!(seen("grpc-timeout").is_some(), "grpc-timeout was dropped");
    // Without an OpenTelemetry layer the edge has no span of its own to continue from.
    assert_eq!(seen("traceparent").as_deref(), Some(traceparent));
    assert_eq!(seen("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen("te").as_deref(), Some("trailers"));
    assert_eq!(seen("connection"), None);
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        "edge-test-2"
    );
    edge.stop().await;
    upstream.stop().await;
}

#[tokio::test]
async fn a_server_stream_flows_through_and_ends_with_the_upstreams_trailers() {
    let (upstream, reporter) = health_upstream().await;
    let edge = Port::edge(&[RELAYED_HEALTH], upstream.addr).await;
    let mut client = relayed_health_client(&edge);

    let mut stream = within(
        "the stream to open",
        client.watch(HealthCheckRequest {
            service: "chat".into(),
        }),
    )
    .await
    .unwrap()
    .into_inner();
    let first = within("the first update", stream.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    reporter
        .set_service_status("chat", ServingStatus::NotServing)
        .await;
    let second = within("the second update", stream.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.status, ServingStatus::NotServing as i32);

    // The upstream's shutdown ends its stream with trailers; the edge must pass them on.
    upstream.stop().await;
    let end = within("the stream to end", stream.message())
        .await
        .unwrap_err();
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    let details = end.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "SHUTTING_DOWN");
    edge.stop().await;
}

#[tokio::test]
async fn the_edges_shutdown_ends_forwarded_streams() {
    let (upstream, _reporter) = health_upstream().await;
    let edge = Port::edge(&[RELAYED_HEALTH], upstream.addr).await;
    let mut client = relayed_health_client(&edge);
    let mut stream = within(
        "the stream to open",
        client.watch(HealthCheckRequest {
            service: "chat".into(),
        }),
    )
    .await
    .unwrap()
    .into_inner();
    within("the first update", stream.message())
        .await
        .unwrap()
        .unwrap();

    edge.shutdown.cancel();
    let end = within("the stream to end", stream.message())
        .await
        .unwrap_err();
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert_eq!(
        end.get_error_details().error_info().unwrap().reason,
        "SHUTTING_DOWN"
    );
    // Well inside the 3 s grace: nothing kept the edge from draining.
    tokio::time::timeout(Duration::from_secs(2), edge.running.stopped())
        .await
        .expect("the edge drains promptly")
        .unwrap();
    upstream.stop().await;
}

#[tokio::test]
async fn a_dead_upstream_is_unavailable_with_a_reason_and_a_retry_hint() {
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let edge = Port::edge(&[service_names::USER], dead).await;

    let status = within(
        "the refused call",
        UserServiceClient::new(edge.channel()).list_contacts(ListContactsRequest::default()),
    )
    .await
    .unwrap_err();

    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "DEPENDENCY_UNAVAILABLE");
    assert_eq!(info.domain, "echo");
    assert!(details.retry_info().and_then(|r| r.retry_delay).is_some());
    edge.stop().await;
}

/// An upstream process that dies mid-stream: one connection served by hyper directly, so the
/// test can drop it without the graceful shutdown that the serving kit would do.
#[tokio::test]
async fn a_stream_the_upstream_breaks_off_ends_unavailable_not_reset() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("chat", ServingStatus::Serving)
        .await;
    let connection = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            health.clone().oneshot(from_relay(request.map(Body::new)))
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
    let edge = Port::edge(&[RELAYED_HEALTH], upstream).await;
    let mut client = relayed_health_client(&edge);
    let mut stream = within(
        "the stream to open",
        client.watch(HealthCheckRequest {
            service: "chat".into(),
        }),
    )
    .await
    .unwrap()
    .into_inner();
    within("the first update", stream.message())
        .await
        .unwrap()
        .unwrap();

    connection.abort();
    let end = within("the stream to end", stream.message())
        .await
        .unwrap_err();
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert_eq!(
        end.get_error_details().error_info().unwrap().reason,
        "DEPENDENCY_UNAVAILABLE"
    );
    edge.stop().await;
}

/// A grpc-web frame: flag byte, big-endian length, payload.
fn grpc_web_frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![flag];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn grpc_web_over_http1_reaches_an_http2_upstream_and_gets_trailers_in_the_body() {
    let (upstream, _reporter) = health_upstream().await;
    let edge = Port::edge(&[RELAYED_HEALTH], upstream.addr).await;

    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let request = HealthCheckRequest {
        service: "chat".into(),
    };
    let response = within(
        "the grpc-web call",
        http.post(format!("http://{}/relay.v1.Health/Check", edge.addr))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header("origin", "https://app.example")
            .body(grpc_web_frame(0, &request.encode_to_vec()))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/grpc-web"),
        "{content_type}"
    );
    assert!(
        response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let body = within("the grpc-web body", response.bytes()).await.unwrap();

    // One message frame (flag 0) with SERVING, then the trailers frame (flag 0x80).
    assert_eq!(body[0], 0, "{body:?}");
    let length = usize::try_from(u32::from_be_bytes(body[1..5].try_into().unwrap())).unwrap();
    let answer = HealthCheckResponse::decode(&body[5..5 + length]).unwrap();
    assert_eq!(answer.status, ServingStatus::Serving as i32);
    let trailers = &body[5 + length..];
    assert_eq!(trailers[0], 0x80, "{body:?}");
    let trailers = String::from_utf8_lossy(&trailers[5..]).to_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    edge.stop().await;
    upstream.stop().await;
}
