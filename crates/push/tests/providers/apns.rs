//! APNs over TLS h2.

use chrono::{Duration as Days, Utc};
use echo_push::fake::{FakePushServer, Reply};
use echo_push::{ApnsProvider, Outcome, Push, PushKind, PushProvider, Target};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::common::{alert, device_token, label, of_kind, raw_client, target};

async fn setup() -> (FakePushServer, ApnsProvider) {
    let fake = FakePushServer::start().await;
    let provider = ApnsProvider::new(fake.apns_config()).unwrap();
    (fake, provider)
}

#[tokio::test]
async fn an_alert_carries_collapse_id_thread_badge_sound_and_the_required_headers() {
    let (fake, apns) = setup().await;
    let push = alert();
    let token = device_token();
    assert_eq!(apns.send(&push, &target(&token)).await, Outcome::Delivered);

    let requests = fake.requests();
    let request = &requests[0];
    assert_eq!(request.key, token);
    assert!(request.http2);
    assert!(
        request
            .header("authorization")
            .unwrap()
            .starts_with("bearer ")
    );
    assert_eq!(
        request.header("apns-topic"),
        Some(fake.apns_config().topic.as_str())
    );
    assert_eq!(request.header("apns-push-type"), Some("alert"));
    assert_eq!(request.header("apns-priority"), Some("10"));
    let message_id = push.message_id.unwrap().to_string();
    assert_eq!(
        request.header("apns-collapse-id"),
        Some(message_id.as_str())
    );
    assert_eq!(
        request.header("apns-id"),
        Some(push.job_id.to_string().as_str())
    );
    let expiration: i64 = request.header("apns-expiration").unwrap().parse().unwrap();
    assert!(
        (expiration - (Utc::now().timestamp() + 600)).abs() <= 5,
        "{expiration}"
    );
    let conversation = push.conversation_id.unwrap().to_string();
    assert_eq!(
        request.payload["aps"],
        json!({
            "alert": {"title": "Ada", "body": "are we still on for lunch?"},
            "badge": 3,
            "sound": "default",
            "thread-id": conversation,
            "mutable-content": 1,
        })
    );
    assert_eq!(request.payload["message_id"], message_id.as_str());
    assert_eq!(request.payload["conversation_id"], conversation.as_str());
    assert_eq!(request.payload["seq"], "42");
    assert_eq!(request.payload["type"], "alert");
    assert_eq!(request.payload["kind"], "mention");
}

#[tokio::test]
async fn silent_is_passive_without_sound_badge_only_is_priority_5_and_dismiss_is_background() {
    let (fake, apns) = setup().await;
    let token = device_token();
    let silent = Push {
        silent: true,
        body: None,
        ..alert()
    };
    for push in [
        silent,
        of_kind(PushKind::BadgeOnly),
        of_kind(PushKind::Dismiss),
    ] {
        assert_eq!(apns.send(&push, &target(&token)).await, Outcome::Delivered);
    }
    let requests = fake.requests();
    let aps = &requests[0].payload["aps"];
    assert_eq!(aps["interruption-level"], "passive");
    assert_eq!(aps.get("sound"), None);
    assert_eq!(aps["badge"], 3, "silent pushes still badge");
    assert_eq!(
        aps["alert"],
        json!({"title": "Ada"}),
        "no body when previews are hidden"
    );

    assert_eq!(requests[1].header("apns-push-type"), Some("alert"));
    assert_eq!(requests[1].header("apns-priority"), Some("5"));
    assert_eq!(requests[1].payload["aps"], json!({"badge": 3}));

    assert_eq!(requests[2].header("apns-push-type"), Some("background"));
    assert_eq!(requests[2].header("apns-priority"), Some("5"));
    assert_eq!(requests[2].payload["aps"], json!({"content-available": 1}));
    assert_eq!(requests[2].payload["type"], "dismiss");
    assert_eq!(requests[2].payload["badge"], "3");
}

#[tokio::test]
async fn scripted_errors_map_to_the_prune_table() {
    let (fake, apns) = setup().await;
    let registered = Utc::now() - Days::days(1);
    let cases = [
        (Reply::apns_unregistered(Utc::now()), "prune"),
        (Reply::apns_unregistered(registered), "prune"),
        // APNs saw the token dead before the app registered it again: keep it.
        (
            Reply::apns_unregistered(registered - Days::hours(1)),
            "drop",
        ),
        (Reply::apns(400, "BadDeviceToken"), "prune"),
        (Reply::apns(400, "DeviceTokenNotForTopic"), "prune"),
        (Reply::apns(400, "BadRequest"), "drop"),
        (Reply::apns(413, "PayloadTooLarge"), "drop"),
        (
            Reply::apns(429, "TooManyRequests").header("Retry-After", "1"),
            "retry after 1s",
        ),
        (Reply::apns(503, "ServiceUnavailable"), "retry"),
        (Reply::apns(500, "InternalServerError"), "retry"),
        (Reply::apns(403, "InvalidProviderToken"), "credential"),
    ];
    for (reply, expected) in cases {
        let token = device_token();
        fake.script(&token, [reply.clone()]);
        let target = Target {
            updated_at: registered,
            ..target(&token)
        };
        let outcome = apns.send(&alert(), &target).await;
        let got = label(&outcome);
        assert_eq!(got, expected, "{reply:?} gave {outcome:?}");
    }
    // The provider token was minted moments ago: a 403 is reported, not re-minted (Apple
    // answers TooManyProviderTokenUpdates to tokens replaced within 20 minutes).
    assert_eq!(fake.requests().len(), 11);
}

#[tokio::test]
async fn a_503_then_success_and_the_provider_token_is_reused() {
    let (fake, apns) = setup().await;
    let token = device_token();
    fake.script(&token, [Reply::apns(503, "ServiceUnavailable")]);
    assert_eq!(
        apns.send(&alert(), &target(&token)).await,
        Outcome::Retry { after: None }
    );
    assert_eq!(
        apns.send(&alert(), &target(&token)).await,
        Outcome::Delivered
    );
    let requests = fake.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 200]
    );
    assert_eq!(
        requests[0].header("authorization"),
        requests[1].header("authorization")
    );
}

#[tokio::test]
async fn sandbox_tokens_go_to_the_sandbox_url() {
    let fake = FakePushServer::start().await;
    let mut config = fake.apns_config();
    config.production_url = "https://127.0.0.1:9".into(); // nothing listens there
    let apns = ApnsProvider::new(config).unwrap();
    let token = device_token();
    let sandbox = Target {
        sandbox: true,
        ..target(&token)
    };
    assert_eq!(apns.send(&alert(), &sandbox).await, Outcome::Delivered);
    let production = apns.send(&alert(), &target(&token)).await;
    assert_eq!(
        production,
        Outcome::Retry { after: None },
        "connection refused is transient"
    );
}

#[tokio::test]
async fn a_target_app_id_overrides_the_topic_and_a_foreign_topic_is_refused() {
    let (fake, apns) = setup().await;
    let token = device_token();
    let foreign = Target {
        app_id: Some("com.other.app".into()),
        ..target(&token)
    };
    let outcome = apns.send(&alert(), &foreign).await;
    assert!(matches!(outcome, Outcome::Drop { .. }), "{outcome:?}");
    assert!(fake.rejections()[0].reason.starts_with("TopicDisallowed"));
}

#[tokio::test]
async fn a_wrong_key_or_kid_is_a_credential_error_and_never_a_prune() {
    let fake = FakePushServer::start().await;
    let other_key = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let mut wrong_key = fake.apns_config();
    wrong_key.private_key_pem =
        SecretString::from(other_key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string());
    let mut wrong_kid = fake.apns_config();
    wrong_kid.key_id = "OTHERKEY99".into();
    for config in [wrong_key, wrong_kid] {
        let apns = ApnsProvider::new(config).unwrap();
        let outcome = apns.send(&alert(), &target(&device_token())).await;
        assert!(
            matches!(outcome, Outcome::CredentialError { .. }),
            "{outcome:?}"
        );
    }
    assert!(fake.requests().is_empty());
    let rejections = fake.rejections();
    assert_eq!(rejections.len(), 2);
    assert!(
        rejections
            .iter()
            .all(|r| r.status == 403 && r.reason.starts_with("InvalidProviderToken"))
    );
}

#[tokio::test]
async fn the_fake_refuses_an_expired_provider_token_http1_and_a_missing_topic() {
    let fake = FakePushServer::start().await;
    let config = fake.apns_config();
    let secret = p256::SecretKey::from_pkcs8_pem(config.private_key_pem.expose_secret()).unwrap();
    let key = EncodingKey::from_ec_der(secret.to_pkcs8_der().unwrap().as_bytes());
    let jwt = |iat: i64| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(config.key_id.clone());
        jsonwebtoken::encode(&header, &json!({"iss": config.team_id, "iat": iat}), &key).unwrap()
    };
    let url = format!("{}/3/device/{}", fake.base_url(), device_token());
    let h2 = raw_client(&fake, true);
    let post = |client: &reqwest::Client, jwt: String, topic: Option<&str>| {
        let mut request = client
            .post(&url)
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-push-type", "alert")
            .body(json!({"aps": {"alert": {"title": "x"}}}).to_string());
        if let Some(topic) = topic {
            request = request.header("apns-topic", topic);
        }
        request.send()
    };
    let now = Utc::now().timestamp();
    let topic = Some(config.topic.as_str());

    let response = post(&h2, jwt(now - 7200), topic).await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"reason":"ExpiredProviderToken"}"#
    );

    let response = post(&h2, jwt(now), None).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"reason":"MissingTopic"}"#
    );

    let response = post(&raw_client(&fake, false), jwt(now), topic)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400, "HTTP/1.1 is refused");

    // A tampered signature.
    let response = post(&h2, crate::common::tamper_signature(&jwt(now)), topic)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);

    let response = post(&h2, jwt(now), topic).await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{:?}", fake.rejections());
    assert_eq!(fake.rejections().len(), 4);
}

#[tokio::test]
async fn an_oversized_payload_is_dropped_before_sending() {
    let (fake, apns) = setup().await;
    let push = Push {
        body: Some("x".repeat(5000)),
        ..alert()
    };
    let outcome = apns.send(&push, &target(&device_token())).await;
    assert!(matches!(outcome, Outcome::Drop { .. }), "{outcome:?}");
    assert!(fake.requests().is_empty() && fake.rejections().is_empty());
}
