//! FCM HTTP v1: `POST {base}/v1/projects/{project}/messages:send` with an OAuth bearer.
//!
//! Alerts are notification messages at HIGH priority; badge-only and dismiss pushes are
//! data-only at NORMAL priority, since a high-priority message that shows nothing gets the app
//! deprioritised. Every data value is a string (FCM refuses anything else).

mod oauth;

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::fcm::oauth::AccessTokens;
use crate::{ConfigError, FcmConfig, Outcome, Platform, Push, PushKind, PushProvider, Target};
use crate::{http, keys};

pub use oauth::FCM_SCOPE;

/// FCM's limit on a message's payload (data keys and values, title and body).
const MAX_PAYLOAD: usize = 4096;

/// Sends through FCM HTTP v1.
pub struct FcmProvider {
    client: reqwest::Client,
    send_url: String,
    tokens: AccessTokens,
    /// Keeps this instance under its share of the project's quota (spec §B3: 80 % of it).
    throttle: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for FcmProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmProvider")
            .field("send_url", &self.send_url)
            .finish_non_exhaustive()
    }
}

impl FcmProvider {
    /// Builds the provider; fails on a key that does not parse or bad TLS roots.
    pub fn new(config: FcmConfig) -> Result<Self, ConfigError> {
        let key =
            keys::rsa_encoding_key(config.private_key_pem.expose_secret(), "fcm private key")?;
        let client = http::client(&config.http, false)?;
        let send_url = format!(
            "{}/v1/projects/{}/messages:send",
            config.base_url.trim_end_matches('/'),
            config.project_id
        );
        let tokens = AccessTokens::new(
            client.clone(),
            config.token_uri,
            config.client_email,
            config.private_key_id,
            key,
        );
        Ok(FcmProvider {
            client,
            send_url,
            tokens,
            throttle: RateLimiter::direct(throttle(config.max_requests_per_minute)?),
        })
    }

    async fn post(&self, body: &[u8], bearer: &str) -> Outcome {
        self.throttle.until_ready().await;
        let response = match self
            .client
            .post(&self.send_url)
            .bearer_auth(bearer)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => return http::transport_outcome(&error),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        classify(status, &headers, &text)
    }
}

/// `per_minute` requests a minute, spread evenly with at most a second's worth at once: any
/// minute then holds at most `per_minute` plus one second's worth (8,000 by default), which
/// stays under the project quota the default is 80 % of.
fn throttle(per_minute: u32) -> Result<Quota, ConfigError> {
    let per_second = NonZeroU32::new(per_minute / 60).ok_or_else(|| {
        ConfigError::invalid("fcm max_requests_per_minute", "must be at least 60")
    })?;
    Ok(Quota::per_second(per_second))
}

#[async_trait::async_trait]
impl PushProvider for FcmProvider {
    fn platform(&self) -> Platform {
        Platform::Fcm
    }

    #[tracing::instrument(skip_all, fields(platform = "fcm", job_id = %push.job_id))]
    async fn send(&self, push: &Push, target: &Target) -> Outcome {
        let body = match message(push, &target.token) {
            Ok(body) => body.to_string().into_bytes(),
            Err(outcome) => return outcome,
        };
        // A 401 re-mints the access token once; a second 401 is reported.
        let mut refused = None;
        loop {
            let bearer = match self.tokens.get(refused.as_deref()).await {
                Ok(bearer) => bearer,
                Err(outcome) => return outcome,
            };
            let outcome = self.post(&body, bearer.expose_secret()).await;
            if matches!(outcome, Outcome::CredentialError { .. }) && refused.is_none() {
                refused = Some(bearer.expose_secret().to_owned());
                continue;
            }
            return outcome;
        }
    }
}

/// The v1 request body (spec §B4).
fn message(push: &Push, token: &str) -> Result<Value, Outcome> {
    let data = push.data_fields();
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        + push.title.as_ref().map_or(0, String::len)
        + push.body.as_ref().map_or(0, String::len);
    if size > MAX_PAYLOAD {
        return Err(Outcome::Drop {
            reason: format!("fcm payload {size} B > {MAX_PAYLOAD} B"),
        });
    }
    let mut android = Map::new();
    android.insert("ttl".into(), json!("600s"));
    if let Some(conversation) = push.conversation_id {
        android.insert("collapse_key".into(), json!(conversation.to_string()));
    }
    let mut message = Map::new();
    message.insert("token".into(), json!(token));
    message.insert("data".into(), json!(data));
    if push.kind == PushKind::Alert {
        android.insert("priority".into(), json!("HIGH"));
        let mut notification = Map::new();
        if let Some(title) = &push.title {
            notification.insert("title".into(), json!(title));
        }
        if let Some(body) = &push.body {
            notification.insert("body".into(), json!(body));
        }
        message.insert("notification".into(), Value::Object(notification));
        let mut android_notification = Map::new();
        if let Some(tag) = push.dedupe_tag() {
            android_notification.insert("tag".into(), json!(tag));
        }
        android_notification.insert("notification_count".into(), json!(push.badge));
        if push.silent {
            // No sound field: on Android 8+ the app's channel decides; `data.silent` tells it.
            android_notification.insert("notification_priority".into(), json!("PRIORITY_LOW"));
        } else {
            android_notification.insert("default_sound".into(), json!(true));
        }
        android.insert("notification".into(), Value::Object(android_notification));
    } else {
        android.insert("priority".into(), json!("NORMAL"));
    }
    message.insert("android".into(), Value::Object(android));
    Ok(json!({ "message": message }))
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorStatus,
}

#[derive(Deserialize, Default)]
struct ErrorStatus {
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorDetail {
    error_code: Option<String>,
    #[serde(default)]
    field_violations: Vec<FieldViolation>,
}

#[derive(Deserialize, Default)]
struct FieldViolation {
    #[serde(default)]
    field: String,
}

impl ErrorStatus {
    fn error_code(&self) -> Option<&str> {
        self.details
            .iter()
            .find_map(|detail| detail.error_code.as_deref())
    }

    /// An INVALID_ARGUMENT about the registration token rather than our payload: FCM says so
    /// in a `BadRequest` field violation on `message.token` or in its message.
    fn names_token(&self) -> bool {
        let field = self.details.iter().flat_map(|d| &d.field_violations);
        field
            .into_iter()
            .any(|violation| violation.field == "message.token")
            || self
                .message
                .to_ascii_lowercase()
                .contains("registration token")
    }
}

/// Spec §B3's FCM row: prune on 404 UNREGISTERED, a 400 naming the token, 403
/// SENDER_ID_MISMATCH; any other 400 is our payload (drop); 401/403 are credentials; 429 and
/// 5xx retry.
fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let error = serde_json::from_str::<ErrorBody>(body)
        .unwrap_or_default()
        .error;
    let code = error.error_code().unwrap_or("");
    let reason = format!("fcm {} {code}: {}", status.as_u16(), error.message);
    match status.as_u16() {
        404 if code == "UNREGISTERED" => Outcome::Prune { reason },
        403 if code == "SENDER_ID_MISMATCH" => Outcome::Prune { reason },
        400 if error.names_token() => Outcome::Prune { reason },
        401 | 403 => Outcome::CredentialError { reason },
        429 | 500..=599 => http::retry(headers),
        _ => Outcome::Drop { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fcm_error(code: &str, message: &str) -> String {
        json!({"error": {"code": 0, "message": message, "status": "X", "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        ]}})
        .to_string()
    }

    #[test]
    fn the_prune_table_row_by_row() {
        let h = HeaderMap::new();
        let status = |c| StatusCode::from_u16(c).unwrap();
        let prune = |o: Outcome| matches!(o, Outcome::Prune { .. });
        assert!(prune(classify(
            status(404),
            &h,
            &fcm_error("UNREGISTERED", "gone")
        )));
        assert!(prune(classify(
            status(403),
            &h,
            &fcm_error("SENDER_ID_MISMATCH", "x")
        )));
        let token = fcm_error(
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        );
        assert!(prune(classify(status(400), &h, &token)));
        let payload = fcm_error(
            "INVALID_ARGUMENT",
            "Invalid value at 'message.data[0].value'",
        );
        assert!(matches!(
            classify(status(400), &h, &payload),
            Outcome::Drop { .. }
        ));
        assert!(matches!(
            classify(status(401), &h, ""),
            Outcome::CredentialError { .. }
        ));
        assert_eq!(
            classify(status(503), &h, ""),
            Outcome::Retry { after: None }
        );
        assert!(matches!(
            classify(status(429), &h, "not json"),
            Outcome::Retry { .. }
        ));
    }
}
