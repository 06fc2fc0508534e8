//! The OAuth 2.0 access token FCM wants: an RS256 service-account assertion (RFC 7523)
//! exchanged at the configured `token_uri`, cached until a minute before it expires.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::Outcome;
use crate::http;

/// FCM's OAuth scope.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// An assertion lives an hour, Google's maximum.
const ASSERTION_LIFETIME: u64 = 3600;
/// A cached access token is replaced this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

/// Mints and caches FCM access tokens. One fetch at a time: concurrent sends wait for it
/// rather than each asking Google.
pub(crate) struct AccessTokens {
    client: reqwest::Client,
    token_uri: String,
    client_email: String,
    key_id: Option<String>,
    key: EncodingKey,
    cached: Mutex<Option<Cached>>,
}

impl AccessTokens {
    pub(crate) fn new(
        client: reqwest::Client,
        token_uri: String,
        client_email: String,
        key_id: Option<String>,
        key: EncodingKey,
    ) -> Self {
        AccessTokens {
            client,
            token_uri,
            client_email,
            key_id,
            key,
            cached: Mutex::new(None),
        }
    }

    /// The cached token, or a fresh one. `refused` is the token FCM just answered 401 to: it
    /// is fetched again unless another send already replaced it.
    pub(crate) async fn get(&self, refused: Option<&str>) -> Result<SecretString, Outcome> {
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref() {
            let was_refused = refused.is_some_and(|t| t == current.token.expose_secret());
            if !was_refused && Instant::now() < current.refresh_at {
                return Ok(current.token.clone());
            }
        }
        let fetched = self.fetch().await?;
        let token = fetched.token.clone();
        *cached = Some(fetched);
        Ok(token)
    }

    async fn fetch(&self) -> Result<Cached, Outcome> {
        let assertion = self.assertion()?;
        let started = Instant::now();
        let response = self
            .client
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|error| http::transport_outcome(&error))?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(http::retry(response.headers()));
        }
        let body = response
            .text()
            .await
            .map_err(|error| http::transport_outcome(&error))?;
        if !status.is_success() {
            // invalid_grant / invalid_client: the key or the account is wrong.
            return Err(Outcome::CredentialError {
                reason: format!("fcm oauth token request refused ({status}): {body}"),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_str(&body).map_err(|error| Outcome::CredentialError {
                reason: format!("fcm oauth token response: {error}"),
            })?;
        let lifetime = Duration::from_secs(parsed.expires_in).saturating_sub(EXPIRY_MARGIN);
        tracing::debug!(expires_in = parsed.expires_in, "fcm access token fetched");
        Ok(Cached {
            token: SecretString::from(parsed.access_token),
            refresh_at: started + lifetime,
        })
    }

    fn assertion(&self) -> Result<String, Outcome> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = AssertionClaims {
            iss: &self.client_email,
            scope: FCM_SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_LIFETIME,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|error| {
            Outcome::CredentialError {
                reason: format!("fcm assertion not signed: {error}"),
            }
        })
    }
}
