//! The push providers this process is configured for (`notification.*`), built from their
//! credential files. A platform without credentials has no provider, and its tokens are
//! refused at registration with `PUSH_PLATFORM_UNAVAILABLE`. UnifiedPush is Web Push to a
//! distributor's endpoint: it is configured exactly when Web Push is, and sends through the
//! same provider (one VAPID key).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use echo_config::NotificationSettings;
use echo_notification::Platform;
use echo_push::{
    APNS_PRODUCTION_URL, APNS_SANDBOX_URL, ApnsConfig, FcmConfig, HttpConfig, ProviderConfig,
    PushProvider, UnifiedPushProvider, WebPushConfig, WebhookConfig,
};
use secrecy::SecretString;

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{what} ({})", path.display()))
}

/// Builds the configured providers. In `production`, the users' own URLs (Web Push and
/// UnifiedPush endpoints, webhooks) may lead only to public addresses, whatever their names
/// resolve to.
pub fn providers(
    settings: &NotificationSettings,
    production: bool,
) -> anyhow::Result<HashMap<Platform, Arc<dyn PushProvider>>> {
    let mut http = HttpConfig::default();
    if let Some(path) = &settings.extra_ca_file {
        http.extra_root_pems
            .push(read(path, "notification.extra_ca_file")?);
    }
    let users_urls = HttpConfig {
        public_only: production,
        ..http.clone()
    };
    let mut configs = Vec::new();
    if let Some(path) = &settings.fcm_service_account_file {
        let json = read(path, "notification.fcm_service_account_file")?;
        let mut fcm = FcmConfig::from_service_account_json(&json)
            .context("notification.fcm_service_account_file")?;
        if let Some(base) = &settings.fcm_base_url {
            fcm.base_url.clone_from(base);
        }
        fcm.http = http.clone();
        fcm.max_requests_per_minute = settings.fcm_max_requests_per_minute;
        configs.push((Platform::Fcm, ProviderConfig::Fcm(fcm)));
    }
    if let Some(path) = &settings.apns_key_file {
        let key = read(path, "notification.apns_key_file")?;
        configs.push((
            Platform::Apns,
            ProviderConfig::Apns(ApnsConfig {
                team_id: settings.apns_team_id.clone(),
                key_id: settings.apns_key_id.clone(),
                private_key_pem: SecretString::from(key),
                topic: settings.apns_topic.clone(),
                production_url: settings
                    .apns_production_url
                    .clone()
                    .unwrap_or_else(|| APNS_PRODUCTION_URL.into()),
                sandbox_url: settings
                    .apns_sandbox_url
                    .clone()
                    .unwrap_or_else(|| APNS_SANDBOX_URL.into()),
                http: http.clone(),
            }),
        ));
    }
    if let Some(path) = &settings.webpush_vapid_key_file {
        let key = read(path, "notification.webpush_vapid_key_file")?;
        configs.push((
            Platform::WebPush,
            ProviderConfig::WebPush(WebPushConfig {
                vapid_private_key: SecretString::from(key.trim().to_owned()),
                subject: settings.webpush_subject.clone(),
                http: users_urls.clone(),
            }),
        ));
    }
    if let Some(path) = &settings.webhook_secret_file {
        let secret = read(path, "notification.webhook_secret_file")?;
        let mut webhook = WebhookConfig::new(SecretString::from(secret.trim().to_owned()));
        webhook.http = HttpConfig {
            timeout: webhook.http.timeout,
            ..users_urls.clone()
        };
        configs.push((Platform::Webhook, ProviderConfig::Webhook(webhook)));
    }
    let mut providers = HashMap::new();
    for (platform, config) in configs {
        let provider = echo_push::build_provider(config)
            .with_context(|| format!("push provider {platform:?}"))?;
        providers.insert(platform, provider);
    }
    if let Some(web_push) = providers.get(&Platform::WebPush).cloned() {
        let unified =
            UnifiedPushProvider::new(web_push, &users_urls).context("push provider UnifiedPush")?;
        providers.insert(Platform::UnifiedPush, Arc::new(unified));
    }
    Ok(providers)
}
