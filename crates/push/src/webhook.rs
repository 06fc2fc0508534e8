//! Signed JSON webhooks: `POST <url>` with the push as JSON,
//! `Echo-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` and
//! `Echo-Delivery-Id` (the message id for alerts, else the job id) for the receiver to dedupe
//! on. 5 s timeout, redirects refused. 410 prunes; 429 and 5xx retry; any other non-2xx drops.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::http;
use crate::{ConfigError, Outcome, Platform, Push, PushKind, PushProvider, Target, WebhookConfig};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Echo-Signature";
/// The dedupe header.
pub const DELIVERY_ID_HEADER: &str = "Echo-Delivery-Id";

/// Sends signed webhooks.
pub struct WebhookProvider {
    client: reqwest::Client,
    secret: SecretString,
    public_only: bool,
}

impl std::fmt::Debug for WebhookProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookProvider").finish_non_exhaustive()
    }
}

impl WebhookProvider {
    /// Builds the provider; fails on bad TLS roots.
    pub fn new(config: WebhookConfig) -> Result<Self, ConfigError> {
        Ok(WebhookProvider {
            client: http::client(&config.http, false)?,
            secret: config.secret,
            public_only: config.http.public_only,
        })
    }
}

/// `t=<unix>,v1=<hex>`: the HMAC covers the timestamp too, so a captured request cannot be
/// replayed later with a fresh `t`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[async_trait::async_trait]
impl PushProvider for WebhookProvider {
    fn platform(&self) -> Platform {
        Platform::Webhook
    }

    #[tracing::instrument(skip_all, fields(platform = "webhook", job_id = %push.job_id))]
    async fn send(&self, push: &Push, target: &Target) -> Outcome {
        if let Some(refused) = http::refuse_internal(self.public_only, &target.token) {
            return refused;
        }
        let body = push.json_document().to_string().into_bytes();
        let timestamp = chrono::Utc::now().timestamp();
        let signed = signature(self.secret.expose_secret().as_bytes(), timestamp, &body);
        let delivery_id = match (push.kind, push.message_id) {
            (PushKind::Alert, Some(message_id)) => message_id,
            _ => push.job_id,
        };
        let response = self
            .client
            .post(&target.token)
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .header(DELIVERY_ID_HEADER, delivery_id.to_string())
            .body(body)
            .send()
            .await;
        match response {
            Ok(response) => classify(response.status(), response.headers()),
            Err(error) => http::transport_outcome(&error),
        }
    }
}

/// Spec §B3's webhook row.
fn classify(status: StatusCode, headers: &HeaderMap) -> Outcome {
    let reason = format!("webhook {}", status.as_u16());
    match status.as_u16() {
        200..=299 => Outcome::Delivered,
        410 => Outcome::Prune { reason },
        429 | 500..=599 => http::retry(headers),
        300..=399 => Outcome::Drop {
            reason: format!("{reason}: redirects are refused"),
        },
        _ => Outcome::Drop { reason },
    }
}
