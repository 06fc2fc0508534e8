//! Web Push: VAPID, aes128gcm, and the push service's answers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use echo_push::fake::{FakePushServer, Reply};
use echo_push::{Outcome, Push, PushKind, PushProvider, WebPushProvider};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use secrecy::SecretString;
use serde_json::json;

use crate::common::{alert, label, of_kind, raw_client, tamper_signature, target};

async fn setup() -> (FakePushServer, WebPushProvider) {
    let fake = FakePushServer::start().await;
    let provider = WebPushProvider::new(fake.webpush_config()).unwrap();
    (fake, provider)
}

#[tokio::test]
async fn an_alert_decrypts_at_the_push_service_with_topic_urgency_ttl_and_vapid() {
    let (fake, webpush) = setup().await;
    let subscription = fake.subscribe();
    let push = alert();
    assert_eq!(
        webpush.send(&push, &target(&subscription.token)).await,
        Outcome::Delivered
    );

    let requests = fake.requests();
    let request = &requests[0];
    assert_eq!(request.key, subscription.id);
    assert_eq!(request.status, 201);
    assert_eq!(request.header("ttl"), Some("600"));
    assert_eq!(request.header("urgency"), Some("high"));
    assert_eq!(
        request.header("topic"),
        Some(push.dedupe_tag().unwrap().as_str())
    );
    assert_eq!(request.header("content-encoding"), Some("aes128gcm"));
    let authorization = request.header("authorization").unwrap();
    assert!(authorization.starts_with("vapid t="), "{authorization}");
    assert!(
        authorization.ends_with(&format!(", k={}", webpush.public_key())),
        "{authorization}"
    );
    // The fake decrypted the body with the subscription's private key and auth secret.
    assert_eq!(
        request.payload,
        json!({
            "type": "alert",
            "job_id": push.job_id,
            "conversation_id": push.conversation_id,
            "message_id": push.message_id,
            "seq": 42,
            "badge": 3,
            "silent": false,
            "title": "Ada",
            "body": "are we still on for lunch?",
            "data": {"kind": "mention"},
        })
    );
}

#[tokio::test]
async fn silent_is_normal_urgency_and_badge_and_dismiss_are_low() {
    let (fake, webpush) = setup().await;
    let subscription = fake.subscribe();
    let silent = Push {
        silent: true,
        ..alert()
    };
    for push in [
        silent,
        of_kind(PushKind::BadgeOnly),
        of_kind(PushKind::Dismiss),
    ] {
        assert_eq!(
            webpush.send(&push, &target(&subscription.token)).await,
            Outcome::Delivered
        );
    }
    let urgencies: Vec<_> = fake
        .requests()
        .iter()
        .map(|r| r.header("urgency").unwrap().to_owned())
        .collect();
    assert_eq!(urgencies, ["normal", "low", "low"]);
    assert_eq!(fake.requests()[0].payload["silent"], true);
}

#[tokio::test]
async fn scripted_errors_map_to_the_prune_table() {
    let (fake, webpush) = setup().await;
    let cases = [
        (Reply::status(404), "prune"),
        (Reply::status(410), "prune"),
        (Reply::status(413), "retry"),
        (Reply::too_many_requests(1), "retry after 1s"),
        (Reply::status(503), "retry"),
        (Reply::status(400), "drop"),
    ];
    for (reply, expected) in cases {
        let subscription = fake.subscribe();
        fake.script(&subscription.id, [reply.clone()]);
        let outcome = webpush.send(&alert(), &target(&subscription.token)).await;
        let got = label(&outcome);
        assert_eq!(got, expected, "{reply:?} gave {outcome:?}");
    }
}

#[tokio::test]
async fn an_unknown_subscription_is_pruned_on_the_services_404() {
    let (fake, webpush) = setup().await;
    let subscription = fake.subscribe();
    let gone = subscription
        .token
        .replace(&subscription.id, "expired0subscription");
    let outcome = webpush.send(&alert(), &target(&gone)).await;
    assert!(matches!(outcome, Outcome::Prune { .. }), "{outcome:?}");
}

#[tokio::test]
async fn a_vapid_key_the_browser_did_not_subscribe_with_is_a_credential_error() {
    let fake = FakePushServer::start().await;
    let mut config = fake.webpush_config();
    config.vapid_private_key = SecretString::from(URL_SAFE_NO_PAD.encode([9u8; 32]));
    let webpush = WebPushProvider::new(config).unwrap();
    let subscription = fake.subscribe();
    let outcome = webpush.send(&alert(), &target(&subscription.token)).await;
    assert!(
        matches!(outcome, Outcome::CredentialError { .. }),
        "{outcome:?}"
    );
    // Re-minted once, then reported.
    let rejections = fake.rejections();
    assert_eq!(rejections.len(), 2);
    assert!(rejections.iter().all(|r| r.status == 403), "{rejections:?}");
}

#[tokio::test]
async fn the_fake_checks_vapid_audience_expiry_and_signature() {
    let fake = FakePushServer::start().await;
    let subscription = fake.subscribe();
    let vapid = p256::SecretKey::from_slice(
        &URL_SAFE_NO_PAD
            .decode(secrecy::ExposeSecret::expose_secret(
                &fake.webpush_config().vapid_private_key,
            ))
            .unwrap(),
    )
    .unwrap();
    let k = URL_SAFE_NO_PAD.encode(vapid.public_key().to_encoded_point(false).as_bytes());
    let key = EncodingKey::from_ec_der(vapid.to_pkcs8_der().unwrap().as_bytes());
    let now = chrono::Utc::now().timestamp();
    let jwt = |aud: &str, exp: i64| {
        let claims = json!({"aud": aud, "exp": exp, "sub": "mailto:push@echo.test"});
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
    };
    let endpoint: serde_json::Value = serde_json::from_str(&subscription.token).unwrap();
    let endpoint = endpoint["endpoint"].as_str().unwrap().to_owned();
    let client = raw_client(&fake, false);
    let post = |jwt: String| {
        // Not encrypted: only requests whose VAPID passes get as far as decryption.
        client
            .post(&endpoint)
            .header("authorization", format!("vapid t={jwt}, k={k}"))
            .header("ttl", "60")
            .header("content-encoding", "aes128gcm")
            .body(vec![0u8; 200])
            .send()
    };
    let origin = fake.base_url().to_owned();
    let status = |response: reqwest::Response| response.status().as_u16();
    assert_eq!(
        status(
            post(jwt("https://push.example.net", now + 3600))
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(
        status(post(jwt(&origin, now + 25 * 3600)).await.unwrap()),
        401
    );
    assert_eq!(status(post(jwt(&origin, now - 10)).await.unwrap()), 401);
    assert_eq!(
        status(
            post(tamper_signature(&jwt(&origin, now + 3600)))
                .await
                .unwrap()
        ),
        401
    );
    // A good JWT gets past VAPID, and the garbage body is refused as undecryptable.
    assert_eq!(status(post(jwt(&origin, now + 3600)).await.unwrap()), 400);
    let reasons: Vec<_> = fake.rejections().into_iter().map(|r| r.reason).collect();
    assert!(reasons[4].contains("does not decrypt"), "{reasons:?}");
    assert!(
        reasons[..4].iter().all(|r| r.contains("vapid")),
        "{reasons:?}"
    );
    assert!(fake.requests().is_empty());
}
