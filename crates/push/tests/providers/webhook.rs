//! Signed webhooks.

use std::time::Duration;

use echo_push::fake::{FakePushServer, Reply};
use echo_push::{
    HttpConfig, Outcome, Platform, ProviderConfig, PushKind, PushProvider, WebhookConfig,
    WebhookProvider, build_provider,
};
use secrecy::SecretString;

use crate::common::{alert, label, of_kind, target};

async fn setup() -> (FakePushServer, WebhookProvider) {
    let fake = FakePushServer::start().await;
    let provider = WebhookProvider::new(fake.webhook_config()).unwrap();
    (fake, provider)
}

#[tokio::test]
async fn a_delivery_is_signed_and_carries_the_message_id_as_its_delivery_id() {
    let (fake, webhook) = setup().await;
    let push = alert();
    let url = fake.webhook_url("bot");
    assert_eq!(webhook.send(&push, &target(&url)).await, Outcome::Delivered);
    assert_eq!(
        webhook
            .send(&of_kind(PushKind::BadgeOnly), &target(&url))
            .await,
        Outcome::Delivered
    );

    let requests = fake.requests();
    let request = &requests[0];
    assert_eq!(request.key, "bot");
    let message_id = push.message_id.unwrap().to_string();
    assert_eq!(
        request.header("echo-delivery-id"),
        Some(message_id.as_str())
    );
    assert!(request.header("echo-signature").unwrap().contains(",v1="));
    assert_eq!(request.payload["type"], "alert");
    assert_eq!(request.payload["message_id"], message_id.as_str());
    assert_eq!(request.payload["badge"], 3);
    // A badge push is not the message: it dedupes on its job id.
    let badge_job = requests[1].header("echo-delivery-id").unwrap();
    assert_ne!(badge_job, message_id);
}

#[tokio::test]
async fn answers_map_to_the_webhook_row() {
    let (fake, webhook) = setup().await;
    let cases = [
        (Reply::status(410), "prune"),
        (Reply::status(404), "drop"),
        (Reply::status(400), "drop"),
        (
            Reply::status(301).header("location", "https://127.0.0.1:9/elsewhere"),
            "drop",
        ),
        (Reply::status(503), "retry"),
        (Reply::too_many_requests(1), "retry after 1s"),
    ];
    for (index, (reply, expected)) in cases.into_iter().enumerate() {
        let name = format!("hook{index}");
        fake.script(&name, [reply.clone()]);
        let outcome = webhook
            .send(&alert(), &target(&fake.webhook_url(&name)))
            .await;
        let got = label(&outcome);
        assert_eq!(got, expected, "{reply:?} gave {outcome:?}");
    }
    assert_eq!(fake.requests().len(), 6, "the redirect was not followed");
}

#[tokio::test]
async fn the_receiver_refuses_a_signature_made_with_another_secret() {
    let fake = FakePushServer::start().await;
    let mut config = fake.webhook_config();
    config.secret = SecretString::from("not-the-shared-secret");
    let webhook = build_provider(ProviderConfig::Webhook(config)).unwrap();
    assert_eq!(webhook.platform(), Platform::Webhook);
    let outcome = webhook
        .send(&alert(), &target(&fake.webhook_url("bot")))
        .await;
    assert!(matches!(outcome, Outcome::Drop { .. }), "{outcome:?}");
    assert_eq!(fake.rejections()[0].status, 401);
    assert!(fake.rejections()[0].reason.contains("does not verify"));
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out_into_a_retry() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream); // accept, then say nothing
        }
    });
    let config = WebhookConfig {
        secret: SecretString::from("s"),
        http: HttpConfig {
            timeout: Duration::from_millis(300),
            ..HttpConfig::default()
        },
    };
    assert_eq!(
        WebhookConfig::new(SecretString::from("s")).http.timeout,
        Duration::from_secs(5)
    );
    let webhook = WebhookProvider::new(config).unwrap();
    let started = std::time::Instant::now();
    let outcome = webhook
        .send(&alert(), &target(&format!("https://{addr}/hook")))
        .await;
    assert_eq!(outcome, Outcome::Retry { after: None });
    assert!(started.elapsed() < Duration::from_secs(3));
    holder.abort();
}

/// With `public_only` (production), a webhook that leads inside our network is dropped before
/// any request: a name resolving only to loopback (`localhost` here; a public name pointing
/// inside is the same case) and an address literal alike. Without it, the same name delivers.
#[tokio::test]
async fn public_only_refuses_names_and_literals_that_lead_inside() {
    let fake = FakePushServer::start().await;
    let by_name = fake.webhook_url("inside").replace("127.0.0.1", "localhost");
    assert!(by_name.starts_with("https://localhost:"), "{by_name}");
    let open = WebhookProvider::new(fake.webhook_config()).unwrap();
    assert_eq!(
        open.send(&alert(), &target(&by_name)).await,
        Outcome::Delivered
    );

    let mut config = fake.webhook_config();
    config.http.public_only = true;
    let guarded = WebhookProvider::new(config).unwrap();
    for url in [by_name, fake.webhook_url("literal")] {
        match guarded.send(&alert(), &target(&url)).await {
            Outcome::Drop { reason } => assert!(reason.contains("private, loopback"), "{reason}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    assert_eq!(fake.requests().len(), 1, "only the unguarded delivery");
}
