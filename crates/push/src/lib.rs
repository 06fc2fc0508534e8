//! Echo's push providers: one seam, [`PushProvider`], with an implementation per platform
//! (FCM HTTP v1, APNs, Web Push, UnifiedPush over Web Push, webhook) and, behind the `fake`
//! feature, a [`fake`] push service that checks every request the way the real one would
//! (spec §B3, §B4, §B6).
//!
//! A provider turns one [`Push`] for one [`Target`] into one HTTP request and classifies the
//! answer as an [`Outcome`]: delivered, retry (with the server's `Retry-After`), prune the token
//! (exactly the rows of spec §B3's table), drop the push (our payload is wrong: dead-letter it
//! and alert) or a credential error (after one re-mint). Providers never retry on their own
//! except that single re-mint: backoff, expiry and circuit breaking are the dispatcher's.
//!
//! Every base URL and the OAuth token URI are configuration ([`FcmConfig`], [`ApnsConfig`],
//! [`WebPushConfig`], [`WebhookConfig`]), so tests point them at the fake. TLS is rustls on the
//! `ring` provider (see [`install_crypto_provider`]); HTTP/2 is on (APNs speaks nothing else).
//! See the crate's README for the wire formats and the error mapping.

// reqwest 0.12 under its own name in the workspace (see the root Cargo.toml), `reqwest` here.
extern crate reqwest_push as reqwest;

pub mod address;
mod apns;
mod config;
mod fcm;
mod http;
mod keys;
mod push;
pub mod unifiedpush;
pub mod webhook;
pub mod webpush;

#[cfg(feature = "fake")]
pub mod fake;

pub use apns::ApnsProvider;
pub use config::{
    APNS_PRODUCTION_URL, APNS_SANDBOX_URL, ApnsConfig, ConfigError, FCM_BASE_URL,
    FCM_DEFAULT_MAX_PER_MINUTE, FCM_PROJECT_QUOTA_PER_MINUTE, FcmConfig, GOOGLE_TOKEN_URI,
    HttpConfig, ProviderConfig, WebPushConfig, WebhookConfig, build_provider,
};
pub use fcm::{FCM_SCOPE, FcmProvider};
pub use push::{Outcome, Platform, Push, PushKind, PushProvider, Target};
pub use unifiedpush::UnifiedPushProvider;
pub use webhook::WebhookProvider;
pub use webpush::WebPushProvider;

/// Installs rustls' `ring` crypto provider as the process-wide default, once.
///
/// The providers' clients and the fake use ring in any case; installing it process-wide makes
/// every other rustls user in the process (tonic, async-nats) agree on it instead of failing
/// when two providers are compiled in. Every provider constructor calls this. Idempotent and
/// cheap; if the process already installed another provider, that one stays.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed (by the host process): keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
