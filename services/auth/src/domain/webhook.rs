//! Production code delivery: POST each code as JSON to an SMS gateway's webhook.
//!
//! Plain `http://` only for now (no TLS stack is compiled in): point it at a gateway inside
//! the cluster network, or at a TLS-terminating sidecar. The body is
//! `{"phone_number": "+1…", "purpose": "login", "code": "123456"}`.

use std::time::Duration;

use async_trait::async_trait;

use super::otp::OtpSender;
use super::phone::PhoneNumber;
use crate::store::OtpPurpose;

/// Sends codes to a webhook.
#[derive(Debug, Clone)]
pub struct WebhookOtpSender {
    url: String,
    client: reqwest::Client,
}

impl WebhookOtpSender {
    /// A sender posting to `url` (must be `http://`).
    pub fn new(url: &str) -> Result<Self, String> {
        if !url.starts_with("http://") {
            return Err(format!(
                "otp webhook `{url}` must be http:// (TLS is terminated by a sidecar or gateway)"
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            url: url.to_owned(),
            client,
        })
    }
}

#[async_trait]
impl OtpSender for WebhookOtpSender {
    async fn send(
        &self,
        phone: &PhoneNumber,
        purpose: OtpPurpose,
        code: &str,
    ) -> Result<(), String> {
        let body = serde_json::json!({
            "phone_number": phone.as_str(),
            "purpose": purpose.as_str(),
            "code": code,
        });
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("webhook unreachable: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("webhook answered {}", response.status()));
        }
        Ok(())
    }
}
