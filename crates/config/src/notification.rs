//! Notification settings (DESIGN §9, spec §B): the push providers, where notification reaches
//! the internal contracts it reads, and the delivery pipeline's timing.
//!
//! A platform is configured when its credentials are: FCM by a service-account JSON file, APNs
//! by a `.p8` key file with its key id, team id and topic, Web Push by a VAPID private key
//! file, webhooks by a signing-secret file. Registering a token for a platform that is not
//! configured answers FAILED_PRECONDITION `PUSH_PLATFORM_UNAVAILABLE`. Secrets come only from
//! files (mounted Kubernetes Secrets, compose secrets), so they never sit in the environment.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::humantime_secs;

/// How notification delivers. Defaults are the spec's; tests shrink the recheck delay.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// A recipient with an ONLINE device is rechecked this long after the message; the push
    /// goes only if the message is still unread then.
    #[serde(with = "humantime_secs")]
    pub recheck_delay: Duration,
    /// A push not delivered this long after it was created expires (counted, never sent).
    #[serde(with = "humantime_secs")]
    pub job_expiry: Duration,
    /// How long a push platform is paused after it refused our credentials (spec §B3's
    /// circuit breaker; doubling while it keeps refusing, up to 5 minutes).
    #[serde(with = "humantime_secs")]
    pub credential_pause: Duration,
    /// At most one badge-only push per user per this long (spec §B5): a badge change sooner
    /// after the last one waits, and sends the number current when it goes. 0: no limit.
    #[serde(with = "humantime_secs")]
    pub badge_interval: Duration,
    /// How long a claimed push job is held by the instance that claimed it; a crash releases
    /// it after this (the resend carries the same device-side dedupe key).
    #[serde(with = "humantime_secs")]
    pub claim_lease: Duration,
    /// How often an idle dispatcher looks for due jobs (a committed event wakes it at once).
    #[serde(with = "humantime_secs")]
    pub poll_every: Duration,
    /// Jobs claimed at once.
    pub dispatch_batch: usize,
    /// Provider requests in flight per instance.
    pub dispatch_concurrency: usize,
    /// Members a channel post's fan-out notifies per transaction (its own queue, so a large
    /// channel never holds back the events behind it).
    pub fanout_chunk: usize,
    /// MessageService's internal port (`http://host:port`) in split mode; the whole mesh uses
    /// its own internal port.
    pub message_internal_url: Option<String>,
    /// PresenceService's internal port (`http://host:port`) in split mode; the whole mesh uses
    /// its own internal port. Unset in split mode: every recipient counts as offline (pushed
    /// at once).
    pub presence_internal_url: Option<String>,
    /// FCM: a Google service-account JSON key file (project id, client email, private key,
    /// token URI).
    pub fcm_service_account_file: Option<PathBuf>,
    /// FCM's base URL (tests point it at a fake).
    pub fcm_base_url: Option<String>,
    /// FCM send requests per minute this instance makes at most: 80 % of FCM's default
    /// project quota (600,000 a minute). Instances share the project's quota: with N
    /// instances, give each its share.
    pub fcm_max_requests_per_minute: u32,
    /// APNs: the `.p8` signing key file (P-256, PKCS#8 PEM).
    pub apns_key_file: Option<PathBuf>,
    /// APNs: the key's id (JWT `kid`).
    pub apns_key_id: String,
    /// APNs: the developer team id (JWT `iss`).
    pub apns_team_id: String,
    /// APNs: the app's bundle id (`apns-topic`).
    pub apns_topic: String,
    /// APNs production base URL (tests point it at a fake).
    pub apns_production_url: Option<String>,
    /// APNs sandbox base URL.
    pub apns_sandbox_url: Option<String>,
    /// Web Push: the VAPID private key file (base64url raw scalar or PEM).
    pub webpush_vapid_key_file: Option<PathBuf>,
    /// Web Push: the VAPID `sub` claim (`mailto:` an operator address).
    pub webpush_subject: String,
    /// Webhooks: the file holding the HMAC secret receivers check `Echo-Signature` with.
    pub webhook_secret_file: Option<PathBuf>,
    /// PEM certificates trusted as roots for provider connections besides the system's (a
    /// corporate proxy's CA; the fake's CA in tests).
    pub extra_ca_file: Option<PathBuf>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            recheck_delay: Duration::from_secs(10),
            job_expiry: Duration::from_secs(600),
            credential_pause: Duration::from_secs(30),
            badge_interval: Duration::from_secs(10),
            claim_lease: Duration::from_secs(30),
            poll_every: Duration::from_millis(250),
            dispatch_batch: 512,
            dispatch_concurrency: 256,
            fanout_chunk: 1_000,
            message_internal_url: None,
            presence_internal_url: None,
            fcm_service_account_file: None,
            fcm_base_url: None,
            fcm_max_requests_per_minute: 480_000,
            apns_key_file: None,
            apns_key_id: String::new(),
            apns_team_id: String::new(),
            apns_topic: String::new(),
            apns_production_url: None,
            apns_sandbox_url: None,
            webpush_vapid_key_file: None,
            webpush_subject: String::new(),
            webhook_secret_file: None,
            extra_ca_file: None,
        }
    }
}

impl NotificationSettings {
    /// Why these settings cannot work, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.dispatch_batch == 0 || self.dispatch_concurrency == 0 || self.fanout_chunk == 0 {
            return Some(
                "notification.dispatch_batch, notification.dispatch_concurrency and \
                 notification.fanout_chunk must be at least 1"
                    .into(),
            );
        }
        if self.fcm_max_requests_per_minute < 60 {
            return Some("notification.fcm_max_requests_per_minute must be at least 60".into());
        }
        if self.fanout_chunk > 10_000 {
            // Entries and jobs go in as multi-row INSERTs and the tokens are read with an IN
            // list of the chunk's members: SQLite binds at most 32,766 values per statement.
            return Some("notification.fanout_chunk must be at most 10000".into());
        }
        if self.dispatch_batch > 10_000 {
            // A claimed batch's inbox entries are read by (user, message) key: two bound
            // values per job, under SQLite's 32,766.
            return Some("notification.dispatch_batch must be at most 10000".into());
        }
        let zero = [
            ("notification.job_expiry", self.job_expiry),
            ("notification.claim_lease", self.claim_lease),
            ("notification.poll_every", self.poll_every),
            ("notification.credential_pause", self.credential_pause),
        ]
        .into_iter()
        .find(|(_, value)| value.is_zero());
        if let Some((name, _)) = zero {
            return Some(format!("{name} must be above zero"));
        }
        if self.apns_key_file.is_some()
            && (self.apns_key_id.is_empty()
                || self.apns_team_id.is_empty()
                || self.apns_topic.is_empty())
        {
            return Some(
                "notification.apns_key_file needs notification.apns_key_id, apns_team_id and \
                 apns_topic"
                    .into(),
            );
        }
        if self.webpush_vapid_key_file.is_some()
            && !self.webpush_subject.starts_with("mailto:")
            && !self.webpush_subject.starts_with("https:")
        {
            return Some(
                "notification.webpush_vapid_key_file needs notification.webpush_subject \
                 (mailto: an operator address, or an https: URL)"
                    .into(),
            );
        }
        None
    }
}
