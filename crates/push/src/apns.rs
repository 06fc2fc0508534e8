//! APNs over HTTP/2 with token-based authentication: `POST {base}/3/device/<hex>`.
//!
//! Alerts go as `apns-push-type: alert`, priority 10; a badge-only push is an alert with only
//! `aps.badge`, priority 5; a dismiss is a background push (`content-available: 1`, priority 5,
//! no alert, sound or badge, as Apple requires of background pushes; the badge rides as a data
//! field). Every request carries `apns-collapse-id` = message id (the device-side dedupe key),
//! `apns-id` = job id and `apns-expiration` = now + 600 s.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{ApnsConfig, ConfigError, Outcome, Platform, Push, PushKind, PushProvider, Target};
use crate::{http, keys};

/// APNs refuses payloads over 4 KB.
const MAX_PAYLOAD: usize = 4096;
/// Apple wants a provider token refreshed at least hourly; 50 minutes leaves a margin.
const TOKEN_REFRESH: Duration = Duration::from_secs(50 * 60);
/// Apple answers 429 TooManyProviderTokenUpdates to tokens replaced more often than this.
const TOKEN_MIN_AGE: Duration = Duration::from_secs(20 * 60);
/// How long APNs keeps trying an offline device (`apns-expiration`).
const EXPIRATION_SECS: i64 = 600;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
}

/// Sends through APNs.
pub struct ApnsProvider {
    client: reqwest::Client,
    production_url: String,
    sandbox_url: String,
    topic: String,
    team_id: String,
    key_id: String,
    key: EncodingKey,
    jwt: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for ApnsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsProvider")
            .field("production_url", &self.production_url)
            .field("sandbox_url", &self.sandbox_url)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl ApnsProvider {
    /// Builds the provider; fails on a key that does not parse or bad TLS roots.
    pub fn new(config: ApnsConfig) -> Result<Self, ConfigError> {
        let secret = keys::p256_secret(config.private_key_pem.expose_secret(), "apns key")?;
        let key = keys::p256_encoding_key(&secret, "apns key")?;
        Ok(ApnsProvider {
            client: http::client(&config.http, true)?,
            production_url: config.production_url.trim_end_matches('/').to_owned(),
            sandbox_url: config.sandbox_url.trim_end_matches('/').to_owned(),
            topic: config.topic,
            team_id: config.team_id,
            key_id: config.key_id,
            key,
            jwt: Mutex::new(None),
        })
    }

    /// The provider token: reused for 50 minutes. `refused` is a token APNs just answered
    /// 403 to; it is replaced only if it is at least 20 minutes old (a younger one would earn
    /// TooManyProviderTokenUpdates), else `None`: report the credential error.
    fn provider_token(&self, refused: Option<&str>) -> Result<Option<String>, Outcome> {
        let mut cached = self
            .jwt
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((jwt, minted)) = cached.as_ref() {
            let was_refused = refused == Some(jwt.as_str());
            if !was_refused && minted.elapsed() < TOKEN_REFRESH {
                return Ok(Some(jwt.clone()));
            }
            if was_refused && minted.elapsed() < TOKEN_MIN_AGE {
                return Ok(None);
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = Claims {
            iss: &self.team_id,
            iat: chrono::Utc::now().timestamp(),
        };
        let jwt = jsonwebtoken::encode(&header, &claims, &self.key).map_err(|error| {
            Outcome::CredentialError {
                reason: format!("apns token not signed: {error}"),
            }
        })?;
        *cached = Some((jwt.clone(), Instant::now()));
        Ok(Some(jwt))
    }

    async fn post(&self, push: &Push, target: &Target, body: &[u8], jwt: &str) -> Outcome {
        let base = if target.sandbox {
            &self.sandbox_url
        } else {
            &self.production_url
        };
        let background = push.kind == PushKind::Dismiss;
        let expiration = chrono::Utc::now().timestamp() + EXPIRATION_SECS;
        let mut request = self
            .client
            .post(format!("{base}/3/device/{}", target.token))
            .header(AUTHORIZATION, format!("bearer {jwt}"))
            .header(
                "apns-topic",
                target.app_id.as_deref().unwrap_or(&self.topic),
            )
            .header(
                "apns-push-type",
                if background { "background" } else { "alert" },
            )
            .header(
                "apns-priority",
                if push.kind == PushKind::Alert {
                    "10"
                } else {
                    "5"
                },
            )
            .header("apns-expiration", expiration.to_string())
            .header("apns-id", push.job_id.to_string())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(message_id) = push.message_id {
            request = request.header("apns-collapse-id", message_id.to_string());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return http::transport_outcome(&error),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        classify(status, &headers, &text, target)
    }
}

#[async_trait::async_trait]
impl PushProvider for ApnsProvider {
    fn platform(&self) -> Platform {
        Platform::Apns
    }

    #[tracing::instrument(skip_all, fields(platform = "apns", job_id = %push.job_id))]
    async fn send(&self, push: &Push, target: &Target) -> Outcome {
        if target.token.is_empty() || !target.token.bytes().all(|b| b.is_ascii_hexdigit()) {
            // Never put a non-hex string into the path; registration should have refused it.
            return Outcome::Drop {
                reason: "apns device token is not hex".into(),
            };
        }
        let body = payload(push).to_string().into_bytes();
        if body.len() > MAX_PAYLOAD {
            let reason = format!("apns payload {} B > {MAX_PAYLOAD} B", body.len());
            return Outcome::Drop { reason };
        }
        // A 403 re-mints the provider token once, if it is old enough to replace.
        let mut refused: Option<(String, Outcome)> = None;
        loop {
            let jwt = match self.provider_token(refused.as_ref().map(|(jwt, _)| jwt.as_str())) {
                Ok(Some(jwt)) => jwt,
                Ok(None) => return refused.map_or(Outcome::Retry { after: None }, |(_, o)| o),
                Err(outcome) => return outcome,
            };
            let outcome = self.post(push, target, &body, &jwt).await;
            if matches!(outcome, Outcome::CredentialError { .. }) && refused.is_none() {
                refused = Some((jwt, outcome));
                continue;
            }
            return outcome;
        }
    }
}

/// The APNs JSON payload (spec §B4): `aps` plus the data fields at the top level.
fn payload(push: &Push) -> Value {
    let mut aps = Map::new();
    match push.kind {
        PushKind::Alert => {
            let mut alert = Map::new();
            if let Some(title) = &push.title {
                alert.insert("title".into(), json!(title));
            }
            if let Some(body) = &push.body {
                alert.insert("body".into(), json!(body));
            }
            aps.insert("alert".into(), Value::Object(alert));
            aps.insert("badge".into(), json!(push.badge));
            if push.silent {
                aps.insert("interruption-level".into(), json!("passive"));
            } else {
                aps.insert("sound".into(), json!("default"));
            }
            if let Some(conversation) = push.conversation_id {
                aps.insert("thread-id".into(), json!(conversation.to_string()));
            }
            // Lets the app's service extension rewrite the preview (and fetch it, later).
            aps.insert("mutable-content".into(), json!(1));
        }
        PushKind::BadgeOnly => {
            aps.insert("badge".into(), json!(push.badge));
        }
        PushKind::Dismiss => {
            aps.insert("content-available".into(), json!(1));
        }
    }
    let mut root: Map<String, Value> = push
        .data_fields()
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    root.insert("aps".into(), Value::Object(aps));
    Value::Object(root)
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    reason: String,
    /// Milliseconds since the epoch at which APNs last saw the token invalid (410 only).
    timestamp: Option<i64>,
}

/// Spec §B3's APNs row: 410 prunes only if APNs saw the token dead at or after its last
/// registration (Sygnal's rule); 400 BadDeviceToken / DeviceTokenNotForTopic prune; 403 is a
/// credential error; 413, 429 and 5xx never prune.
fn classify(status: StatusCode, headers: &HeaderMap, body: &str, target: &Target) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let error = serde_json::from_str::<ErrorBody>(body).unwrap_or_default();
    let reason = format!("apns {} {}", status.as_u16(), error.reason);
    match (status.as_u16(), error.reason.as_str()) {
        (410, _) => {
            let registered = target.updated_at.timestamp_millis();
            match error.timestamp {
                Some(seen) if seen < registered => Outcome::Drop {
                    reason: format!("{reason}: seen at {seen} ms, before the token's registration"),
                },
                _ => Outcome::Prune { reason },
            }
        }
        (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => Outcome::Prune { reason },
        (403, _) => Outcome::CredentialError { reason },
        (429, _) | (500..=599, _) => http::retry(headers),
        _ => Outcome::Drop { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_410_prunes_only_if_seen_at_or_after_the_registration() {
        let registered = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
        let target = Target::new("ab".repeat(32), registered);
        let h = HeaderMap::new();
        let gone = StatusCode::GONE;
        let at = |ms: i64| json!({"reason": "Unregistered", "timestamp": ms}).to_string();
        let classify = |body: &str| classify(gone, &h, body, &target);
        assert!(matches!(
            classify(&at(1_700_000_000_001)),
            Outcome::Prune { .. }
        ));
        assert!(matches!(
            classify(&at(1_700_000_000_000)),
            Outcome::Prune { .. }
        ));
        assert!(matches!(
            classify(&at(1_699_999_999_999)),
            Outcome::Drop { .. }
        ));
    }
}
