//! UnifiedPush: a registration is checked by UnifiedPush's discovery GET before it is stored,
//! pushes go out as Web Push (the fake checks VAPID and decrypts), and the platform is there
//! exactly when Web Push is.

use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::*;

fn register(platform: pb::PushPlatform, token: &str) -> pb::RegisterPushTokenRequest {
    pb::RegisterPushTokenRequest {
        platform: platform as i32,
        token: token.to_owned(),
        app_id: String::new(),
        sandbox: false,
    }
}

/// A subscription on a public-looking name that passes the token's format check in production
/// mode; `.invalid` never resolves (RFC 2606), so nothing on the network is asked.
fn unresolvable(n: u32) -> String {
    let keys = serde_json::json!({
        "p256dh": format!("BA{}", "A".repeat(85)),
        "auth": "AAAAAAAAAAAAAAAAAAAAAA",
    });
    serde_json::json!({
        "endpoint": format!("https://push{n}.example.invalid/up/{}", uuid::Uuid::now_v7()),
        "keys": keys,
    })
    .to_string()
}

/// The `token` field violation's description, or a panic showing the status.
fn token_violation(status: &tonic::Status) -> String {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let violations = status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    violations
        .into_iter()
        .find(|v| v.field == "token")
        .unwrap_or_else(|| panic!("no token violation: {status:?}"))
        .description
}

async fn refused(mesh: &TestMesh, who: &SignedIn, token: String) -> tonic::Status {
    mesh.notification_as(who)
        .register_push_token(register(pb::PushPlatform::Unifiedpush, &token))
        .await
        .expect_err("a registration that fails discovery")
}

/// Embedded only: in production mode, which every real backend is, the fake's loopback endpoint
/// is refused at registration (see the next test). Bob registers a UnifiedPush subscription
/// (discovered) and a Web Push one (never GET) on the same device; a message to him while he is
/// offline arrives at both as Web Push that decrypts with the subscriptions' keys.
#[tokio::test]
async fn a_unifiedpush_subscription_is_discovered_and_gets_alerts_as_web_push() {
    let fake = FakePushServer::start().await;
    let Some((mesh, _files)) = start(Backend::Embedded, &fake).await else {
        return;
    };
    let ada = mesh.sign_up().await;
    let bob = mesh.sign_up().await;
    let unified = fake.subscribe();
    let browser = fake.subscribe();
    let registered = mesh
        .notification_as(&bob)
        .register_push_token(register(pb::PushPlatform::Unifiedpush, &unified.token))
        .await
        .expect("register a UnifiedPush subscription")
        .into_inner()
        .push_token
        .expect("the registration");
    assert_eq!(registered.platform, pb::PushPlatform::Unifiedpush as i32);
    assert!(unified.token.contains(&registered.token_suffix));
    mesh.notification_as(&bob)
        .register_push_token(register(pb::PushPlatform::Webpush, &browser.token))
        .await
        .expect("register a Web Push subscription");
    assert_eq!(
        fake.discoveries(),
        std::slice::from_ref(&unified.id),
        "only the UnifiedPush endpoint is asked"
    );
    let platforms: Vec<i32> = tokens(&mesh, &bob)
        .await
        .iter()
        .map(|t| t.platform)
        .collect();
    assert!(platforms.contains(&(pb::PushPlatform::Unifiedpush as i32)));

    let chat = direct(&mesh, &ada, &bob).await;
    let sent = send(&mesh, &ada, &chat, "over unifiedpush").await;
    for subscription in [&unified, &browser] {
        let pushed = eventually(ARRIVES, "the alert", || async {
            fake.requests()
                .into_iter()
                .find(|r| r.platform == Platform::WebPush && r.key == subscription.id)
        })
        .await;
        assert_eq!(
            pushed.payload["body"], "over unifiedpush",
            "{}",
            pushed.payload
        );
        assert_eq!(pushed.payload["message_id"], sent.message_id);
        assert_eq!(pushed.payload["badge"], 1);
        assert_eq!(pushed.header("topic").map(str::len), Some(32));
    }
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
    mesh.shutdown().await;
}

/// Both backends: an endpoint that does not answer UnifiedPush's discovery is INVALID_ARGUMENT
/// on `token`, saying why, and nothing is stored. Embedded, the fake answers 404, `{}` and
/// version 2; on both, an endpoint that cannot be reached is refused the same way; in
/// production mode a loopback endpoint is refused by its format, before any GET.
#[tokio::test]
async fn an_endpoint_that_fails_discovery_is_refused_and_nothing_is_stored() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let Some((mesh, _files)) = start(backend, &fake).await else {
            continue;
        };
        let bob = mesh.sign_up().await;
        let gone = refused(&mesh, &bob, unresolvable(1)).await;
        assert_eq!(
            token_violation(&gone),
            "endpoint is not a UnifiedPush server: it could not be reached",
            "{backend:?}"
        );
        match backend {
            Backend::Embedded => {
                let answers = [
                    (Reply::status(404), "GET answered 404"),
                    (Reply::json(200, &serde_json::json!({})), "did not answer"),
                    (
                        Reply::json(200, &serde_json::json!({"unifiedpush": {"version": 2}})),
                        "version 2, not 1",
                    ),
                ];
                for (answer, why) in answers {
                    let plain = fake.subscribe();
                    fake.answer_discovery(&plain.id, answer);
                    let description = token_violation(&refused(&mesh, &bob, plain.token).await);
                    assert!(
                        description.starts_with("endpoint is not a UnifiedPush server: ")
                            && description.contains(why),
                        "{description}"
                    );
                }
                assert_eq!(fake.discoveries().len(), 3);
            }
            Backend::Real => {
                let description =
                    token_violation(&refused(&mesh, &bob, fake.subscribe().token).await);
                assert!(
                    description.contains("endpoint must not point at a private"),
                    "{description}"
                );
                assert!(fake.discoveries().is_empty(), "asked a loopback endpoint");
            }
        }
        assert!(tokens(&mesh, &bob).await.is_empty(), "{backend:?}");
        assert!(fake.requests().is_empty(), "{backend:?}");
        mesh.shutdown().await;
    }
}

/// Both backends: without a VAPID key neither Web Push nor UnifiedPush is available
/// (FAILED_PRECONDITION `PUSH_PLATFORM_UNAVAILABLE`, metadata `platform`), before any endpoint
/// is asked; the other platforms still register.
#[tokio::test]
async fn unifiedpush_is_unavailable_when_web_push_is_not_configured() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let Some(mesh) = TestMesh::start_with(backend, "all", |config| {
            echo_testkit::push::configure(config, &fake, dir.path());
            config.notification.webpush_vapid_key_file = None;
        })
        .await
        else {
            continue;
        };
        let bob = mesh.sign_up().await;
        for (platform, name) in [
            (pb::PushPlatform::Unifiedpush, "UNIFIEDPUSH"),
            (pb::PushPlatform::Webpush, "WEBPUSH"),
        ] {
            let refused = mesh
                .notification_as(&bob)
                .register_push_token(register(platform, &unresolvable(2)))
                .await
                .expect_err("no VAPID key, no Web Push");
            common::assert_reason(
                &refused,
                Code::FailedPrecondition,
                "PUSH_PLATFORM_UNAVAILABLE",
            );
            let info = refused.get_error_details().error_info().cloned();
            assert_eq!(
                info.and_then(|i| i.metadata.get("platform").cloned())
                    .as_deref(),
                Some(name),
                "{backend:?}"
            );
        }
        assert!(fake.discoveries().is_empty());
        register_fcm(&mesh, &bob).await;
        assert_eq!(tokens(&mesh, &bob).await.len(), 1, "{backend:?}");
        mesh.shutdown().await;
    }
}
