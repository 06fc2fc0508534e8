//! UnifiedPush: discovery at registration (the endpoint must answer
//! `{"unifiedpush":{"version":1}}`, nothing else passes), and sending, which is Web Push.

use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_push::fake::{FakePushServer, Reply};
use echo_push::{Outcome, Platform, PushProvider, UnifiedPushProvider, WebPushProvider};
use serde_json::json;

use crate::common::{alert, target};

fn provider(fake: &FakePushServer) -> UnifiedPushProvider {
    let web_push = Arc::new(WebPushProvider::new(fake.webpush_config()).unwrap());
    UnifiedPushProvider::new(web_push, &fake.http_config()).unwrap()
}

#[tokio::test]
async fn a_unifiedpush_endpoint_passes_discovery_and_gets_web_push() {
    let fake = FakePushServer::start().await;
    let unified = provider(&fake);
    assert_eq!(unified.platform(), Platform::UnifiedPush);
    let subscription = fake.subscribe();
    let registered = target(&subscription.token);
    assert_eq!(unified.check_registration(&registered).await, Ok(()));
    assert_eq!(fake.discoveries(), std::slice::from_ref(&subscription.id));

    let push = alert();
    assert_eq!(unified.send(&push, &registered).await, Outcome::Delivered);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "discovery is not a push: {requests:?}");
    // The fake checked VAPID and decrypted the body, as for any Web Push.
    assert_eq!(requests[0].key, subscription.id);
    assert_eq!(requests[0].payload["body"], "are we still on for lunch?");
    assert_eq!(requests[0].payload["message_id"], json!(push.message_id));
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[tokio::test]
async fn anything_but_the_discovery_answer_is_refused_and_says_why() {
    let fake = FakePushServer::start().await;
    let unified = provider(&fake);
    let good = fake.subscribe();
    let cases = [
        (Reply::status(404), "GET answered 404"),
        (Reply::status(405), "GET answered 405"),
        (Reply::status(503), "GET answered 503"),
        (
            Reply::status(301).header("location", &good.token),
            "GET answered 301: redirects are not followed",
        ),
        (Reply::json(200, &json!({})), "did not answer"),
        (
            Reply::json(200, &json!({"unifiedpush": {"version": "1"}})),
            "did not answer",
        ),
        (
            Reply::json(200, &json!({"unifiedpush": {"version": 2}})),
            "version 2, not 1",
        ),
        (Reply::status(200), "did not answer"),
        (
            Reply {
                body: format!(
                    r#"{{"unifiedpush":{{"version":1}},"pad":"{}"}}"#,
                    "x".repeat(2000)
                ),
                ..Reply::unifiedpush()
            },
            "over 1024 bytes",
        ),
    ];
    for (reply, why) in cases {
        let subscription = fake.subscribe();
        fake.answer_discovery(&subscription.id, reply.clone());
        let refused = unified
            .check_registration(&target(&subscription.token))
            .await
            .expect_err(&format!("{reply:?} passed discovery"));
        assert!(
            refused.starts_with("endpoint is not a UnifiedPush server: ") && refused.contains(why),
            "{reply:?}: {refused}"
        );
    }
    // The endpoint the 301 pointed at was never asked: redirects are not followed.
    assert!(!fake.discoveries().contains(&good.id));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn an_endpoint_that_cannot_be_reached_is_refused() {
    let fake = FakePushServer::start().await;
    let unified = provider(&fake);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let refused = unified
        .discover(&format!("https://{closed}/push/nobody"))
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        "endpoint is not a UnifiedPush server: it could not be reached"
    );
}

#[tokio::test]
async fn an_endpoint_that_never_answers_is_refused_after_five_seconds() {
    let fake = FakePushServer::start().await;
    let unified = provider(&fake);
    // Accepts the connection and says nothing: the TLS handshake never completes.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let started = Instant::now();
    let refused = unified
        .discover(&format!("https://{addr}/push/silent"))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    held.abort();
    assert!(
        refused.starts_with("endpoint is not a UnifiedPush server: "),
        "{refused}"
    );
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
}

/// With `public_only` (production), neither discovery nor a push reaches an endpoint that
/// leads inside our network, by name or by address.
#[tokio::test]
async fn public_only_refuses_endpoints_that_lead_inside() {
    let fake = FakePushServer::start().await;
    let mut http = fake.http_config();
    http.public_only = true;
    let mut web = fake.webpush_config();
    web.http = http.clone();
    let web_push = Arc::new(WebPushProvider::new(web).unwrap());
    let unified = UnifiedPushProvider::new(web_push.clone(), &http).unwrap();
    let subscription = fake.subscribe();
    let by_name = subscription.token.replace("127.0.0.1", "localhost");
    assert_ne!(by_name, subscription.token);
    for token in [&by_name, &subscription.token] {
        let refused = unified
            .check_registration(&target(token))
            .await
            .unwrap_err();
        assert!(refused.contains("private, loopback"), "{refused}");
        match web_push.send(&alert(), &target(token)).await {
            Outcome::Drop { reason } => assert!(reason.contains("private, loopback"), "{reason}"),
            other => panic!("{token}: {other:?}"),
        }
    }
    assert!(fake.discoveries().is_empty());
    assert!(fake.requests().is_empty());
}
