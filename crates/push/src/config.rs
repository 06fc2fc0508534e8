//! Provider configuration. Every URL is configurable so tests can point providers at the fake;
//! private keys and secrets are [`SecretString`]s, which print as `[REDACTED]` in Debug output.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::{ApnsProvider, FcmProvider, PushProvider, WebPushProvider, WebhookProvider};

/// FCM's production base URL.
pub const FCM_BASE_URL: &str = "https://fcm.googleapis.com";
/// Google's OAuth 2.0 token endpoint (a service account's `token_uri`).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// APNs production.
pub const APNS_PRODUCTION_URL: &str = "https://api.push.apple.com";
/// APNs sandbox (development builds).
pub const APNS_SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// A provider that cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A private key, certificate or service-account file did not parse.
    #[error("{what}: {detail}")]
    Invalid {
        /// Which setting.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The HTTP client could not be built (TLS roots, for example).
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
}

impl ConfigError {
    pub(crate) fn invalid(what: &'static str, detail: impl ToString) -> Self {
        ConfigError::Invalid {
            what,
            detail: detail.to_string(),
        }
    }
}

/// HTTP settings shared by every provider.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// PEM certificates trusted as roots besides the platform's own (the fake's CA in tests).
    pub extra_root_pems: Vec<String>,
    /// Whole-request timeout; a timeout is an [`Outcome::Retry`](crate::Outcome::Retry).
    pub timeout: Duration,
    /// Connect only to public addresses: a host written as an internal address, or a name
    /// that resolves only to internal ones ([`crate::address`]), is refused before any byte is
    /// sent. For the users' own URLs (Web Push, UnifiedPush, webhooks) in production.
    pub public_only: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            extra_root_pems: Vec::new(),
            timeout: Duration::from_secs(10),
            public_only: false,
        }
    }
}

/// FCM HTTP v1 with a service account.
#[derive(Debug, Clone)]
pub struct FcmConfig {
    /// The Firebase project id (`{base}/v1/projects/{project_id}/messages:send`).
    pub project_id: String,
    /// The service account's `client_email`: the assertion's `iss`.
    pub client_email: String,
    /// The service account's `private_key_id`, sent as the assertion's `kid` when set.
    pub private_key_id: Option<String>,
    /// The service account's RSA private key, PKCS#8 (or PKCS#1) PEM.
    pub private_key_pem: SecretString,
    /// Where the signed assertion is exchanged for an access token (the assertion's `aud`).
    pub token_uri: String,
    /// FCM's base URL.
    pub base_url: String,
    /// The most send requests this instance makes per minute: 80 % of FCM's default project
    /// quota (600,000 a minute) by default. Instances share the project's quota, so with N
    /// instances set it to the share of each.
    pub max_requests_per_minute: u32,
    /// HTTP settings.
    pub http: HttpConfig,
}

/// FCM's default project quota of send requests per minute.
pub const FCM_PROJECT_QUOTA_PER_MINUTE: u32 = 600_000;
/// What an instance sends at most by default: 80 % of the project quota.
pub const FCM_DEFAULT_MAX_PER_MINUTE: u32 = FCM_PROJECT_QUOTA_PER_MINUTE / 5 * 4;

impl FcmConfig {
    /// Reads a Google service-account JSON key file's contents (`project_id`, `client_email`,
    /// `private_key_id`, `private_key`, `token_uri`), with FCM's production base URL.
    pub fn from_service_account_json(json: &str) -> Result<Self, ConfigError> {
        #[derive(serde::Deserialize)]
        struct ServiceAccount {
            project_id: String,
            client_email: String,
            private_key_id: Option<String>,
            private_key: String,
            token_uri: Option<String>,
        }
        let account: ServiceAccount = serde_json::from_str(json)
            .map_err(|error| ConfigError::invalid("fcm service account", error))?;
        Ok(FcmConfig {
            project_id: account.project_id,
            client_email: account.client_email,
            private_key_id: account.private_key_id,
            private_key_pem: SecretString::from(account.private_key),
            token_uri: account.token_uri.unwrap_or_else(|| GOOGLE_TOKEN_URI.into()),
            base_url: FCM_BASE_URL.into(),
            max_requests_per_minute: FCM_DEFAULT_MAX_PER_MINUTE,
            http: HttpConfig::default(),
        })
    }
}

/// APNs with token-based (`.p8` key) authentication.
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// The Apple developer team id: the JWT's `iss`.
    pub team_id: String,
    /// The key's id: the JWT header's `kid`.
    pub key_id: String,
    /// The `.p8` signing key (P-256, PKCS#8 PEM).
    pub private_key_pem: SecretString,
    /// The default `apns-topic` (the app's bundle id); a target's `app_id` overrides it.
    pub topic: String,
    /// Base URL for production tokens.
    pub production_url: String,
    /// Base URL for sandbox tokens (`Target::sandbox`).
    pub sandbox_url: String,
    /// HTTP settings.
    pub http: HttpConfig,
}

/// Web Push with VAPID (RFC 8292).
#[derive(Debug, Clone)]
pub struct WebPushConfig {
    /// The VAPID private key: base64url of the raw 32-byte P-256 scalar (what web-push tools
    /// print) or a PKCS#8 / SEC1 PEM. Its public key is the `applicationServerKey` the
    /// browsers subscribed with.
    pub vapid_private_key: SecretString,
    /// The VAPID `sub` claim: `mailto:` an operator address (or an `https:` URL).
    pub subject: String,
    /// HTTP settings.
    pub http: HttpConfig,
}

/// Signed JSON webhooks.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The HMAC-SHA256 key receivers check `Echo-Signature` with.
    pub secret: SecretString,
    /// HTTP settings; the timeout defaults to 5 s here (a user's endpoint must not hold a
    /// dispatcher slot).
    pub http: HttpConfig,
}

impl WebhookConfig {
    /// The webhook timeout the spec asks for.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A webhook config with the 5 s timeout.
    pub fn new(secret: SecretString) -> Self {
        WebhookConfig {
            secret,
            http: HttpConfig {
                timeout: Self::DEFAULT_TIMEOUT,
                ..HttpConfig::default()
            },
        }
    }
}

/// One platform's configuration.
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    /// FCM HTTP v1.
    Fcm(FcmConfig),
    /// APNs.
    Apns(ApnsConfig),
    /// Web Push.
    WebPush(WebPushConfig),
    /// Webhook.
    Webhook(WebhookConfig),
}

/// Builds the provider a configuration describes.
pub fn build_provider(config: ProviderConfig) -> Result<Arc<dyn PushProvider>, ConfigError> {
    Ok(match config {
        ProviderConfig::Fcm(config) => Arc::new(FcmProvider::new(config)?),
        ProviderConfig::Apns(config) => Arc::new(ApnsProvider::new(config)?),
        ProviderConfig::WebPush(config) => Arc::new(WebPushProvider::new(config)?),
        ProviderConfig::Webhook(config) => Arc::new(WebhookProvider::new(config)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_secrets() {
        let config = WebhookConfig::new(SecretString::from("hunter2-webhook-secret"));
        let fcm = FcmConfig {
            project_id: "p".into(),
            client_email: "svc@p.iam.gserviceaccount.com".into(),
            private_key_id: None,
            private_key_pem: SecretString::from("-----BEGIN PRIVATE KEY-----\nMIIsecret"),
            token_uri: GOOGLE_TOKEN_URI.into(),
            base_url: FCM_BASE_URL.into(),
            max_requests_per_minute: FCM_DEFAULT_MAX_PER_MINUTE,
            http: HttpConfig::default(),
        };
        let shown = format!("{config:?} {fcm:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("MIIsecret"), "{shown}");
    }
}
