//! The edge's limits through a real tonic client: a bucket per client IP (read from
//! `x-forwarded-for` sent by a trusted proxy), a bucket per user, a cap on each user's open
//! streams, and a cap on request bodies. Each refusal is RESOURCE_EXHAUSTED with its reason,
//! and the rate limits say when to retry.
//!
//! The user is put into the request the way the authentication layer does (a [`Caller`] in
//! the extensions), from a test header, so these tests need no keys; the whole wiring with
//! real tokens runs in the workspace's `edge_scale_out` test.

use std::time::Duration;

use common::{PATIENCE, Port, served_by, within};
use echo_authn::Caller;
use echo_config::EdgeSettings;
use echo_edge::{EdgeLimits, ForwardOptions, Forwarder};
use echo_proto::echo::message::v1::SubscribeRequest;
use echo_proto::echo::message::v1::message_service_client::MessageServiceClient;
use echo_proto::echo::user::v1::user_service_client::UserServiceClient;
use echo_proto::echo::user::v1::{GetMeRequest, SearchUsersRequest};
use echo_proto::service_names::{MESSAGE, USER};
use echo_runtime::Services;
use http::Request;
use tonic::Code;
use tonic::body::Body;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use tower::Layer as _;
use uuid::Uuid;

mod common;

/// The test header naming the caller (what a verified token would say).
const TEST_USER: &str = "x-test-user";

/// Stands in for the authentication layer: the caller from [`TEST_USER`], if any.
fn authenticate(mut request: Request<Body>) -> Request<Body> {
    let user = request
        .headers()
        .get(TEST_USER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Uuid>().ok());
    if let Some(user_id) = user {
        request.extensions_mut().insert(Caller {
            user_id: user_id.into(),
            session_id: Uuid::now_v7().into(),
            device_id: Uuid::now_v7().into(),
        });
    }
    request
}

/// A stand-in upstream for UserService and MessageService, and an edge before it with
/// `settings`, a body cap of `max_body` bytes and 127.0.0.1 as the trusted proxy.
async fn edge(settings: EdgeSettings, max_body: usize) -> (Port, Upstreams) {
    let users = Port::stand_in(USER, "upstream").await;
    let messages = Port::stand_in(MESSAGE, "upstream").await;
    let routes = [
        (USER, format!("http://{}", users.addr).parse().unwrap()),
        (
            MESSAGE,
            format!("http://{}", messages.addr).parse().unwrap(),
        ),
    ];
    let options = ForwardOptions {
        max_request_body: max_body,
        ..ForwardOptions::default()
    };
    let forwarder = Forwarder::with_options(routes, options).unwrap();
    let limits = EdgeLimits::new(&settings, vec!["127.0.0.1/32".parse().unwrap()]);
    let authn = tower::util::MapRequestLayer::new(authenticate as fn(_) -> _);
    let mut services = Services::new();
    for service in [USER, MESSAGE] {
        let user_side = limits.per_user().layer(forwarder.clone());
        services.forward(service, limits.per_ip().layer(authn.layer(user_side)));
    }
    let edge = Port::start(services).await;
    (edge, Upstreams(users, messages))
}

/// The stand-ins behind the edge.
struct Upstreams(Port, Port);

impl Upstreams {
    async fn stop(self) {
        self.0.stop().await;
        self.1.stop().await;
    }
}

fn settings() -> EdgeSettings {
    EdgeSettings {
        ip_calls_per_second: 0,
        user_calls_per_second: 0,
        user_streams: 0,
        ..EdgeSettings::default()
    }
}

/// GetMe through `channel` from `ip` (as the proxy says) as `user`.
async fn get_me(channel: &Channel, ip: &str, user: Option<Uuid>) -> tonic::Status {
    let mut request = tonic::Request::new(GetMeRequest::default());
    request
        .metadata_mut()
        .insert("x-forwarded-for", ip.parse().unwrap());
    if let Some(user) = user {
        request
            .metadata_mut()
            .insert(TEST_USER, user.to_string().parse().unwrap());
    }
    within(
        "a call",
        UserServiceClient::new(channel.clone()).get_me(request),
    )
    .await
    .unwrap_err()
}

fn assert_forwarded(status: &tonic::Status) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(served_by(status), "upstream");
}

/// RESOURCE_EXHAUSTED RATE_LIMITED on `limit`, with a RetryInfo of at most `longest`.
fn assert_rate_limited(status: &tonic::Status, limit: &str, longest: Duration) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "RATE_LIMITED");
    assert_eq!(info.metadata.get("limit").map(String::as_str), Some(limit));
    let retry = status.get_details_retry_info().expect("RetryInfo");
    let delay = retry.retry_delay.expect("a delay");
    assert!(
        delay > Duration::ZERO && delay <= longest,
        "a sane delay: {delay:?}"
    );
}

#[tokio::test]
async fn each_client_ip_has_its_own_bucket() {
    let metrics = echo_runtime::admin::prometheus();
    let (edge, upstream) = edge(
        EdgeSettings {
            ip_calls_per_second: 1,
            ip_burst: 3,
            ..settings()
        },
        4096,
    )
    .await;
    let channel = edge.channel();
    for _ in 0..3 {
        assert_forwarded(&get_me(&channel, "203.0.113.1", None).await);
    }
    let refused = get_me(&channel, "203.0.113.1", None).await;
    assert_rate_limited(&refused, "edge.ip", Duration::from_secs(1));
    // Another client behind the same proxy has a full bucket of its own.
    assert_forwarded(&get_me(&channel, "203.0.113.2", None).await);
    // An authenticated user does not escape their address's bucket.
    let user = Some(Uuid::now_v7());
    let refused = get_me(&channel, "203.0.113.1", user).await;
    assert_rate_limited(&refused, "edge.ip", Duration::from_secs(1));
    // A retry after the delay is served.
    let delay = refused
        .get_details_retry_info()
        .unwrap()
        .retry_delay
        .unwrap();
    tokio::time::sleep(delay).await;
    assert_forwarded(&get_me(&channel, "203.0.113.1", None).await);

    let rendered = metrics.render();
    assert!(
        rendered.contains("echo_edge_refused_total{reason=\"ip_rate\"}"),
        "{rendered}"
    );
    edge.stop().await;
    upstream.stop().await;
}

#[tokio::test]
async fn each_user_has_their_own_bucket_over_every_address() {
    let (edge, upstream) = edge(
        EdgeSettings {
            user_calls_per_second: 1,
            user_burst: 2,
            ..settings()
        },
        4096,
    )
    .await;
    let channel = edge.channel();
    let ada = Some(Uuid::now_v7());
    // Two devices of one user, on two addresses, share the user's bucket.
    assert_forwarded(&get_me(&channel, "198.51.100.1", ada).await);
    assert_forwarded(&get_me(&channel, "198.51.100.2", ada).await);
    let refused = get_me(&channel, "198.51.100.3", ada).await;
    assert_rate_limited(&refused, "edge.user", Duration::from_secs(1));
    // Another user, and calls without a user (public methods), are not in Ada's bucket.
    assert_forwarded(&get_me(&channel, "198.51.100.1", Some(Uuid::now_v7())).await);
    for _ in 0..5 {
        assert_forwarded(&get_me(&channel, "198.51.100.1", None).await);
    }
    edge.stop().await;
    upstream.stop().await;
}

/// Open a Subscribe stream through `channel` as `user`.
async fn subscribe(
    channel: &Channel,
    user: Uuid,
) -> Result<tonic::Streaming<echo_proto::echo::message::v1::SubscribeResponse>, tonic::Status> {
    let mut request = tonic::Request::new(SubscribeRequest::default());
    request
        .metadata_mut()
        .insert(TEST_USER, user.to_string().parse().unwrap());
    within(
        "a stream to open",
        MessageServiceClient::new(channel.clone()).subscribe(request),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_user_may_hold_only_so_many_streams() {
    let (edge, upstream) = edge(
        EdgeSettings {
            user_streams: 2,
            ..settings()
        },
        4096,
    )
    .await;
    let channel = edge.channel();
    let ada = Uuid::now_v7();
    let first = subscribe(&channel, ada).await.expect("first stream");
    let _second = subscribe(&channel, ada).await.expect("second stream");
    let refused = subscribe(&channel, ada).await.expect_err("a third stream");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let info = refused.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "LIMIT_EXCEEDED");
    assert_eq!(
        info.metadata.get("limit").map(String::as_str),
        Some("edge.user_streams")
    );
    // Unary calls are not streams, and other users have their own streams.
    assert_forwarded(&get_me(&channel, "192.0.2.1", Some(ada)).await);
    let _bob = subscribe(&channel, Uuid::now_v7())
        .await
        .expect("bob's stream");

    // Closing a stream frees its place (the edge learns of it when the reset arrives).
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match subscribe(&channel, ada).await {
            Ok(_third) => break,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream's place never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    edge.stop().await;
    upstream.stop().await;
}

#[tokio::test]
async fn a_request_body_above_the_cap_is_refused() {
    let (edge, upstream) = edge(settings(), 1024).await;
    let mut client = UserServiceClient::new(edge.channel());
    let small = SearchUsersRequest {
        query: "x".repeat(900),
        ..SearchUsersRequest::default()
    };
    assert_forwarded(&client.search_users(small).await.unwrap_err());
    let large = SearchUsersRequest {
        query: "x".repeat(2000),
        ..SearchUsersRequest::default()
    };
    let refused = client.search_users(large).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let info = refused.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "PAYLOAD_TOO_LARGE");
    assert_eq!(info.metadata.get("limit").map(String::as_str), Some("1024"));
    // The port goes on serving.
    assert_forwarded(&client.get_me(GetMeRequest::default()).await.unwrap_err());
    edge.stop().await;
    upstream.stop().await;
}
