//! Web Push (RFC 8030) with message encryption (RFC 8291, [`ece`]) and VAPID (RFC 8292).
//! UnifiedPush distributors speak the same protocol.
//!
//! `POST <endpoint>` with `TTL: 600`, `Urgency` (high for alerts, normal when silent, low for
//! badge and dismiss), `Topic` = the dedupe tag (a pending message with the same topic is
//! replaced), `Content-Encoding: aes128gcm` and `Authorization: vapid t=<JWT>, k=<key>`. The
//! body is the push as JSON, encrypted. 201 is success; 404/410 prune; 413/429 back off.

pub mod ece;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::{ConfigError, Outcome, Platform, Push, PushKind, PushProvider, Target, WebPushConfig};
use crate::{http, keys};

/// How long a push service keeps a message for an offline browser.
const TTL_SECS: u32 = 600;
/// A VAPID JWT's lifetime; RFC 8292 allows at most 24 h.
const VAPID_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A cached VAPID JWT is reused this long (well inside its lifetime).
const VAPID_REUSE: Duration = Duration::from_secs(3600);
/// Plaintext is zero-padded to a multiple of this, so lengths leak less.
const PAD_BLOCK: usize = 128;

/// A browser's PushSubscription, as registered: `{"endpoint", "keys": {"p256dh", "auth"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The push service URL for this browser.
    pub endpoint: String,
    /// The browser's P-256 public key (65 bytes, uncompressed).
    pub p256dh: Vec<u8>,
    /// The browser's 16-byte authentication secret.
    pub auth: Vec<u8>,
}

impl Subscription {
    /// Parses the subscription JSON a Web Push token holds.
    pub fn parse(token: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Json {
            endpoint: String,
            keys: Keys,
        }
        #[derive(Deserialize)]
        struct Keys {
            p256dh: String,
            auth: String,
        }
        let json: Json = serde_json::from_str(token).map_err(|e| format!("subscription: {e}"))?;
        let p256dh = keys::decode_base64url(&json.keys.p256dh).ok_or("p256dh is not base64url")?;
        let auth = keys::decode_base64url(&json.keys.auth).ok_or("auth is not base64url")?;
        Ok(Subscription {
            endpoint: json.endpoint,
            p256dh,
            auth,
        })
    }
}

#[derive(Serialize)]
struct VapidClaims<'a> {
    aud: &'a str,
    exp: i64,
    sub: &'a str,
}

/// Sends Web Push messages signed with the configured VAPID key.
pub struct WebPushProvider {
    client: reqwest::Client,
    subject: String,
    key: EncodingKey,
    /// `k=`: the VAPID public key, base64url of the uncompressed point.
    public_key: String,
    /// VAPID JWTs per push-service origin (`aud`).
    jwts: Mutex<HashMap<String, (String, Instant)>>,
    /// Endpoints must lead to public addresses (production).
    public_only: bool,
}

impl std::fmt::Debug for WebPushProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPushProvider")
            .field("subject", &self.subject)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl WebPushProvider {
    /// Builds the provider; fails on a VAPID key that does not parse or bad TLS roots.
    pub fn new(config: WebPushConfig) -> Result<Self, ConfigError> {
        let secret = keys::p256_secret(config.vapid_private_key.expose_secret(), "vapid key")?;
        let public_key =
            URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        Ok(WebPushProvider {
            client: http::client(&config.http, false)?,
            subject: config.subject,
            key: keys::p256_encoding_key(&secret, "vapid key")?,
            public_key,
            jwts: Mutex::new(HashMap::new()),
            public_only: config.http.public_only,
        })
    }

    /// The VAPID public key browsers subscribe with (`applicationServerKey`).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The VAPID JWT for an origin, reused for an hour; `refused` is one the push service
    /// just answered 401/403 to, replaced now.
    fn vapid_jwt(&self, origin: &str, refused: Option<&str>) -> Result<String, Outcome> {
        let mut jwts = self
            .jwts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((jwt, minted)) = jwts.get(origin)
            && refused != Some(jwt.as_str())
            && minted.elapsed() < VAPID_REUSE
        {
            return Ok(jwt.clone());
        }
        let exp = chrono::Utc::now().timestamp() + VAPID_LIFETIME.as_secs() as i64;
        let claims = VapidClaims {
            aud: origin,
            exp,
            sub: &self.subject,
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.key)
            .map_err(|error| Outcome::CredentialError {
                reason: format!("vapid jwt not signed: {error}"),
            })?;
        if jwts.len() >= 1024 {
            jwts.clear(); // many self-hosted UnifiedPush origins: bound the cache
        }
        jwts.insert(origin.to_owned(), (jwt.clone(), Instant::now()));
        Ok(jwt)
    }

    async fn post(&self, push: &Push, endpoint: &str, body: &[u8], jwt: &str) -> Outcome {
        let urgency = match (push.kind, push.silent) {
            (PushKind::Alert, false) => "high",
            (PushKind::Alert, true) => "normal",
            _ => "low",
        };
        let mut request = self
            .client
            .post(endpoint)
            .header("TTL", TTL_SECS.to_string())
            .header("Urgency", urgency)
            .header(CONTENT_ENCODING, "aes128gcm")
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(
                AUTHORIZATION,
                format!("vapid t={jwt}, k={}", self.public_key),
            )
            .body(body.to_vec());
        if let Some(topic) = push.dedupe_tag() {
            request = request.header("Topic", topic);
        }
        match request.send().await {
            Ok(response) => classify(response.status(), response.headers()),
            Err(error) => http::transport_outcome(&error),
        }
    }
}

#[async_trait::async_trait]
impl PushProvider for WebPushProvider {
    fn platform(&self) -> Platform {
        Platform::WebPush
    }

    #[tracing::instrument(skip_all, fields(platform = "webpush", job_id = %push.job_id))]
    async fn send(&self, push: &Push, target: &Target) -> Outcome {
        let subscription = match Subscription::parse(&target.token) {
            Ok(subscription) => subscription,
            Err(reason) => return Outcome::Drop { reason },
        };
        let origin = match reqwest::Url::parse(&subscription.endpoint) {
            Ok(url) if url.scheme() == "https" => url.origin().ascii_serialization(),
            _ => {
                return Outcome::Drop {
                    reason: "endpoint is not an https url".into(),
                };
            }
        };
        if let Some(refused) = http::refuse_internal(self.public_only, &subscription.endpoint) {
            return refused;
        }
        let plaintext = push.json_document().to_string();
        let padded = plaintext.len().div_ceil(PAD_BLOCK) * PAD_BLOCK;
        let body = match ece::encrypt(
            plaintext.as_bytes(),
            &subscription.p256dh,
            &subscription.auth,
            padded,
        ) {
            Ok(body) => body,
            Err(error) => {
                return Outcome::Drop {
                    reason: format!("web push encryption: {error}"),
                };
            }
        };
        let mut refused: Option<String> = None;
        loop {
            let jwt = match self.vapid_jwt(&origin, refused.as_deref()) {
                Ok(jwt) => jwt,
                Err(outcome) => return outcome,
            };
            let outcome = self.post(push, &subscription.endpoint, &body, &jwt).await;
            if matches!(outcome, Outcome::CredentialError { .. }) && refused.is_none() {
                refused = Some(jwt);
                continue;
            }
            return outcome;
        }
    }
}

/// Spec §B3's Web Push row: 404/410 prune; 413/429 back off (never prune); 401/403 are VAPID
/// credential errors; 5xx retry; any other 4xx is our request (drop).
fn classify(status: StatusCode, headers: &HeaderMap) -> Outcome {
    let reason = format!("web push {}", status.as_u16());
    match status.as_u16() {
        200..=299 => Outcome::Delivered,
        404 | 410 => Outcome::Prune { reason },
        401 | 403 => Outcome::CredentialError { reason },
        413 | 429 | 500..=599 => http::retry(headers),
        _ => Outcome::Drop { reason },
    }
}
