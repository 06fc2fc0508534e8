//! FCM HTTP v1 and its OAuth token endpoint.

use std::time::Duration;

use echo_push::fake::{FakePushServer, Reply};
use echo_push::{FCM_SCOPE, FcmProvider, Outcome, PushKind, PushProvider};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::common::{alert, label, of_kind, raw_client, target};

async fn setup() -> (FakePushServer, FcmProvider) {
    let fake = FakePushServer::start().await;
    let provider = FcmProvider::new(fake.fcm_config()).unwrap();
    (fake, provider)
}

#[tokio::test]
async fn an_alert_carries_the_dedupe_tag_grouping_badge_and_string_data() {
    let (fake, fcm) = setup().await;
    let push = alert();
    assert_eq!(
        fcm.send(&push, &target("fcm-token-1")).await,
        Outcome::Delivered
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.key, "fcm-token-1");
    assert!(request.http2, "h2 negotiated over ALPN");
    assert!(
        request
            .header("authorization")
            .unwrap()
            .starts_with("Bearer ya29.fake-")
    );
    let message = &request.payload["message"];
    assert_eq!(message["token"], "fcm-token-1");
    assert_eq!(
        message["notification"],
        json!({"title": "Ada", "body": "are we still on for lunch?"})
    );
    let conversation = push.conversation_id.unwrap().to_string();
    assert_eq!(
        message["data"],
        json!({
            "type": "alert",
            "conversation_id": conversation,
            "message_id": push.message_id.unwrap().to_string(),
            "seq": "42",
            "badge": "3",
            "kind": "mention",
        })
    );
    let android = &message["android"];
    assert_eq!(android["priority"], "HIGH");
    assert_eq!(android["ttl"], "600s");
    assert_eq!(android["collapse_key"], conversation.as_str());
    assert_eq!(
        android["notification"]["tag"],
        push.dedupe_tag().unwrap().as_str()
    );
    assert_eq!(android["notification"]["tag"].as_str().unwrap().len(), 32);
    assert_eq!(android["notification"]["notification_count"], 3);
    assert_eq!(android["notification"]["default_sound"], true);
}

#[tokio::test]
async fn silent_alerts_make_no_sound_and_badge_and_dismiss_are_data_only_at_normal_priority() {
    let (fake, fcm) = setup().await;
    let silent = echo_push::Push {
        silent: true,
        ..alert()
    };
    assert_eq!(fcm.send(&silent, &target("t")).await, Outcome::Delivered);
    assert_eq!(
        fcm.send(&of_kind(PushKind::BadgeOnly), &target("t")).await,
        Outcome::Delivered
    );
    assert_eq!(
        fcm.send(&of_kind(PushKind::Dismiss), &target("t")).await,
        Outcome::Delivered
    );

    let requests = fake.requests();
    let silent = &requests[0].payload["message"];
    assert_eq!(silent["data"]["silent"], "true");
    assert_eq!(
        silent["android"]["notification"]["notification_priority"],
        "PRIORITY_LOW"
    );
    assert_eq!(silent["android"]["notification"].get("default_sound"), None);
    assert_eq!(silent["android"]["notification"]["notification_count"], 3);
    for (request, kind) in requests[1..].iter().zip(["badge", "dismiss"]) {
        let message = &request.payload["message"];
        assert_eq!(message["data"]["type"], kind);
        assert_eq!(message["data"]["badge"], "3");
        assert_eq!(message.get("notification"), None, "{kind} is data-only");
        assert_eq!(message["android"].get("notification"), None);
        assert_eq!(message["android"]["priority"], "NORMAL");
    }
}

#[tokio::test]
async fn scripted_errors_map_to_the_prune_table() {
    let (fake, fcm) = setup().await;
    let cases = [
        (Reply::fcm_unregistered(), "prune"),
        (Reply::fcm_invalid_token(), "prune"),
        (Reply::fcm_sender_id_mismatch(), "prune"),
        (Reply::fcm_invalid_payload(), "drop"),
        (Reply::fcm_error(404, "NOT_FOUND", "not found"), "drop"),
        (Reply::too_many_requests(1), "retry after 1s"),
        (Reply::status(503), "retry"),
        (Reply::status(500), "retry"),
    ];
    for (index, (reply, expected)) in cases.into_iter().enumerate() {
        let token = format!("scripted-{index}");
        fake.script(&token, [reply.clone()]);
        let outcome = fcm.send(&alert(), &target(&token)).await;
        let got = label(&outcome);
        assert_eq!(got, expected, "{reply:?} gave {outcome:?}");
    }
}

#[tokio::test]
async fn a_503_then_success_is_a_retry_then_delivered() {
    let (fake, fcm) = setup().await;
    fake.script("flaky", [Reply::status(503)]);
    assert_eq!(
        fcm.send(&alert(), &target("flaky")).await,
        Outcome::Retry { after: None }
    );
    assert_eq!(
        fcm.send(&alert(), &target("flaky")).await,
        Outcome::Delivered
    );
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 200]);
}

#[tokio::test]
async fn the_access_token_is_reused_until_a_minute_before_expiry_then_fetched_again() {
    let (fake, fcm) = setup().await;
    // 63 s tokens are cached for 3 s (expiry - 60 s).
    fake.set_oauth_token_lifetime(Duration::from_secs(63));
    for _ in 0..3 {
        assert_eq!(fcm.send(&alert(), &target("t")).await, Outcome::Delivered);
    }
    assert_eq!(fake.oauth_tokens_issued(), 1);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(fcm.send(&alert(), &target("t")).await, Outcome::Delivered);
    assert_eq!(fake.oauth_tokens_issued(), 2);
    let bearers: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(bearers[0], bearers[2]);
    assert_ne!(bearers[2], bearers[3]);
}

#[tokio::test]
async fn a_401_re_mints_the_access_token_once_then_reports_a_credential_error() {
    let (fake, fcm) = setup().await;
    assert_eq!(fcm.send(&alert(), &target("t")).await, Outcome::Delivered);
    fake.revoke_oauth_tokens();
    assert_eq!(
        fcm.send(&alert(), &target("t")).await,
        Outcome::Delivered,
        "re-minted"
    );
    assert_eq!(fake.oauth_tokens_issued(), 2);
    assert_eq!(fake.rejections().len(), 1);

    // Two 401s in a row: one re-mint, then the credential error; the token is never pruned.
    fake.script("t", [Reply::status(401), Reply::status(401)]);
    let outcome = fcm.send(&alert(), &target("t")).await;
    assert!(
        matches!(outcome, Outcome::CredentialError { .. }),
        "{outcome:?}"
    );
    assert_eq!(fake.oauth_tokens_issued(), 3);
}

#[tokio::test]
async fn a_wrong_service_account_is_a_credential_error() {
    let fake = FakePushServer::start().await;
    let mut config = fake.fcm_config();
    config.client_email = "someone-else@evil.iam.gserviceaccount.com".into();
    let fcm = FcmProvider::new(config).unwrap();
    let outcome = fcm.send(&alert(), &target("t")).await;
    assert!(
        matches!(outcome, Outcome::CredentialError { .. }),
        "{outcome:?}"
    );
    assert!(fake.requests().is_empty());
    assert!(
        fake.rejections()[0].reason.contains("assertion refused"),
        "{:?}",
        fake.rejections()
    );
}

/// Signs an assertion with the test service account's key.
fn assertion(fake: &FakePushServer, claims: Value) -> String {
    let config = fake.fcm_config();
    let key = EncodingKey::from_rsa_der(&rsa_der(config.private_key_pem.expose_secret()));
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

fn rsa_der(pem: &str) -> Vec<u8> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    // jsonwebtoken's RustCrypto backend signs with PKCS#1 DER.
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
    key.to_pkcs1_der().unwrap().as_bytes().to_vec()
}

#[tokio::test]
async fn the_fake_checks_the_assertions_signature_scope_and_audience() {
    let fake = FakePushServer::start().await;
    let client = raw_client(&fake, false);
    let config = fake.fcm_config();
    let now = chrono::Utc::now().timestamp();
    let claims = |scope: &str, aud: &str, exp: i64| json!({"iss": config.client_email, "scope": scope, "aud": aud, "iat": now, "exp": exp});
    let exchange = |assertion: String| {
        let client = client.clone();
        let uri = config.token_uri.clone();
        async move {
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &assertion),
            ];
            client
                .post(uri)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let good = assertion(&fake, claims(FCM_SCOPE, &config.token_uri, now + 3600));
    assert_eq!(exchange(good.clone()).await, 200, "{:?}", fake.rejections());

    // The same signature over a payload asking for another scope.
    let (header_and_claims, signature) = good.rsplit_once('.').unwrap();
    let (header, _) = header_and_claims.split_once('.').unwrap();
    let forged_claims = claims(
        "https://www.googleapis.com/auth/cloud-platform",
        &config.token_uri,
        now + 3600,
    );
    use base64::Engine as _;
    let forged_payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged_claims.to_string());
    assert_eq!(
        exchange(format!("{header}.{forged_payload}.{signature}")).await,
        400
    );
    assert!(
        fake.rejections()[0].reason.contains("InvalidSignature"),
        "{:?}",
        fake.rejections()
    );

    let wrong_scope = assertion(
        &fake,
        claims(
            "https://www.googleapis.com/auth/cloud-platform",
            &config.token_uri,
            now + 3600,
        ),
    );
    assert_eq!(exchange(wrong_scope).await, 400);
    let wrong_aud = assertion(
        &fake,
        claims(FCM_SCOPE, "https://oauth2.googleapis.com/token", now + 3600),
    );
    assert_eq!(exchange(wrong_aud).await, 400);
    let too_long = assertion(&fake, claims(FCM_SCOPE, &config.token_uri, now + 7200));
    assert_eq!(exchange(too_long).await, 400);
    assert_eq!(fake.oauth_tokens_issued(), 1);
    assert_eq!(fake.rejections().len(), 4);

    // And a bearer the fake never issued gets 401 from messages:send.
    let send_url = format!(
        "{}/v1/projects/{}/messages:send",
        fake.base_url(),
        config.project_id
    );
    let body = json!({"message": {"token": "t", "data": {"a": "b"}}});
    let response = client
        .post(send_url)
        .bearer_auth("ya29.made-up")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn the_fake_refuses_non_string_data_and_reserved_keys() {
    let (fake, fcm) = setup().await;
    // Through the provider, "from" is a caller data key FCM reserves: our payload bug, a drop.
    let mut push = alert();
    push.data.insert("from".into(), "x".into());
    let outcome = fcm.send(&push, &target("t")).await;
    assert!(matches!(outcome, Outcome::Drop { .. }), "{outcome:?}");
    assert!(
        fake.rejections()[0]
            .reason
            .contains("Invalid data payload key")
    );
}

/// Sends are throttled to the configured share of the project quota: at 600 a minute, a
/// second's worth (10) goes at once and the rest 100 ms apart; below 60 a minute is refused.
#[tokio::test]
async fn sends_are_throttled_to_the_configured_requests_per_minute() {
    let fake = FakePushServer::start().await;
    let mut config = fake.fcm_config();
    config.max_requests_per_minute = 600;
    let fcm = std::sync::Arc::new(FcmProvider::new(config.clone()).unwrap());
    let started = std::time::Instant::now();
    let sends = (0..30).map(|i| {
        let fcm = fcm.clone();
        tokio::spawn(async move { fcm.send(&alert(), &target(&format!("throttled-{i}"))).await })
    });
    for send in sends {
        assert_eq!(send.await.unwrap(), Outcome::Delivered);
    }
    // 10 at once, then 20 at 10 a second: at least 2 s (a lower bound: never flaky).
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_900),
        "30 sends took {took:?}"
    );
    assert_eq!(fake.requests().len(), 30);

    config.max_requests_per_minute = 59;
    let refused = FcmProvider::new(config).unwrap_err().to_string();
    assert!(refused.contains("max_requests_per_minute"), "{refused}");
}
