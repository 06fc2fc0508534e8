//! The seam: what one push is, whom it goes to, and what came of it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A push delivery platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    /// Firebase Cloud Messaging, HTTP v1 API.
    Fcm,
    /// Apple Push Notification service, token-based (JWT) authentication over HTTP/2.
    Apns,
    /// Web Push (RFC 8030/8291/8292).
    WebPush,
    /// UnifiedPush: sent as Web Push, to an endpoint that answered UnifiedPush's discovery.
    UnifiedPush,
    /// An HTTPS endpoint of the user's, sent signed JSON.
    Webhook,
}

impl Platform {
    /// Lowercase name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Fcm => "fcm",
            Platform::Apns => "apns",
            Platform::WebPush => "webpush",
            Platform::UnifiedPush => "unifiedpush",
            Platform::Webhook => "webhook",
        }
    }
}

/// What a push does on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// A visible notification (title, body, badge, sound unless silent).
    Alert,
    /// Only sets the app badge (after a read lowered it), shows nothing.
    BadgeOnly,
    /// Tells the app to remove notifications already shown (a conversation read elsewhere, a
    /// message deleted for everyone). Background, shows nothing.
    Dismiss,
}

impl PushKind {
    /// The value of the `type` data field the apps switch on.
    pub fn as_str(self) -> &'static str {
        match self {
            PushKind::Alert => "alert",
            PushKind::BadgeOnly => "badge",
            PushKind::Dismiss => "dismiss",
        }
    }
}

/// One notification for one device, platform-neutral.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// Alert, badge-only or dismiss.
    pub kind: PushKind,
    /// Title; the caller already replaced it when previews are hidden.
    pub title: Option<String>,
    /// Body text; `None` when previews are hidden (`show_previews=false`).
    pub body: Option<String>,
    /// The absolute badge count (APNs keeps only the last push for an offline device, so a
    /// relative count would drift).
    pub badge: u32,
    /// Groups notifications per conversation: APNs `thread-id`, FCM `collapse_key`.
    pub conversation_id: Option<Uuid>,
    /// The device-side dedupe key's source: a provider call is at-least-once, so a resend after
    /// a crash must collapse into the first (APNs `apns-collapse-id`, FCM `tag`, Web Push
    /// `Topic`, webhook `Echo-Delivery-Id`).
    pub message_id: Option<Uuid>,
    /// The message's sequence number in its conversation.
    pub seq: Option<u64>,
    /// DND or quiet hours: no sound, APNs `interruption-level: passive`; the badge still counts.
    pub silent: bool,
    /// The push job's id: APNs `apns-id`, and the webhook's delivery id when there is no message.
    pub job_id: Uuid,
    /// Extra data fields for the app (string values). The fields this crate sets itself
    /// (`type`, `conversation_id`, `message_id`, `seq`, `badge`, `silent`) win over these.
    pub data: BTreeMap<String, String>,
}

impl Push {
    /// The 32-character dedupe key for FCM `android.notification.tag` and the Web Push `Topic`:
    /// base64url(sha256(message id as its hyphenated lowercase string))[..32]. Web Push topics
    /// are limited to 32 base64url characters, which is why the id is hashed at all.
    pub fn dedupe_tag(&self) -> Option<String> {
        let id = self.message_id?;
        let digest = Sha256::digest(id.to_string().as_bytes());
        let mut tag = URL_SAFE_NO_PAD.encode(digest);
        tag.truncate(32);
        Some(tag)
    }

    /// The data fields every platform carries: the caller's, then ours over them.
    pub(crate) fn data_fields(&self) -> BTreeMap<String, String> {
        let mut data = self.data.clone();
        data.insert("type".into(), self.kind.as_str().into());
        data.insert("badge".into(), self.badge.to_string());
        if let Some(id) = self.conversation_id {
            data.insert("conversation_id".into(), id.to_string());
        }
        if let Some(id) = self.message_id {
            data.insert("message_id".into(), id.to_string());
        }
        if let Some(seq) = self.seq {
            data.insert("seq".into(), seq.to_string());
        }
        if self.silent {
            data.insert("silent".into(), "true".into());
        }
        data
    }

    /// The JSON document Web Push encrypts and the webhook signs: the data fields, plus the
    /// title and body, with the numbers as numbers.
    pub(crate) fn json_document(&self) -> serde_json::Value {
        serde_json::json!({
            "type": self.kind.as_str(),
            "job_id": self.job_id,
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "seq": self.seq,
            "badge": self.badge,
            "silent": self.silent,
            "title": self.title,
            "body": self.body,
            "data": self.data,
        })
    }
}

/// One registered destination, as the notification service stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// The platform's token: FCM registration token, APNs device token (hex), the Web Push
    /// subscription JSON (`endpoint`, `keys.p256dh`, `keys.auth`) or the webhook URL.
    pub token: String,
    /// App identifier (APNs topic / bundle id); `None` uses the provider's configured one.
    pub app_id: Option<String>,
    /// APNs only: the token belongs to the sandbox environment.
    pub sandbox: bool,
    /// When the token was last registered: an APNs 410 older than this is not a reason to
    /// prune (the app registered the token again after APNs saw it unregistered).
    pub updated_at: DateTime<Utc>,
}

impl Target {
    /// A production target with no app id.
    pub fn new(token: impl Into<String>, updated_at: DateTime<Utc>) -> Self {
        Target {
            token: token.into(),
            app_id: None,
            sandbox: false,
            updated_at,
        }
    }

    /// The last 8 characters, as ListPushTokens shows them: the token is a credential.
    pub fn suffix(&self) -> &str {
        let start = self
            .token
            .char_indices()
            .rev()
            .nth(7)
            .map_or(0, |(index, _)| index);
        &self.token[start..]
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("token", &format_args!("…{}", self.suffix()))
            .field("app_id", &self.app_id)
            .field("sandbox", &self.sandbox)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// What came of one provider call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The platform accepted the push.
    Delivered,
    /// A transient failure (429, 5xx, timeout, connection error): try again later, no sooner
    /// than `after` when the platform said so (`Retry-After`).
    Retry {
        /// The platform's `Retry-After`, a floor for the backoff.
        after: Option<Duration>,
    },
    /// The token is dead (spec §B3's prune column): delete it.
    Prune {
        /// The platform's reason, for the log.
        reason: String,
    },
    /// This push can never be delivered as it is, but the token stays: usually our payload is
    /// wrong (dead-letter and alert). Also an APNs 410 older than the token's registration.
    Drop {
        /// Why, for the dead letter.
        reason: String,
    },
    /// Our credentials were refused even after one re-mint: circuit-break and alert, never
    /// prune.
    CredentialError {
        /// The platform's reason, for the alert.
        reason: String,
    },
}

/// The seam the notification service sends through: one implementation per platform.
#[async_trait::async_trait]
pub trait PushProvider: Send + Sync + 'static {
    /// The platform this provider delivers to.
    fn platform(&self) -> Platform;

    /// Sends one push to one target and classifies the answer. Never panics on a bad answer.
    async fn send(&self, push: &Push, token: &Target) -> Outcome;

    /// Asks the destination, at registration, whether `target` may be registered: for the
    /// platforms whose protocol says to (UnifiedPush's discovery GET). `Err` says why not, as a
    /// sentence for the `token` field violation. The default asks nothing.
    async fn check_registration(&self, target: &Target) -> Result<(), String> {
        let _ = target;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_tag_is_32_base64url_characters_of_the_message_ids_sha256() {
        let id = Uuid::parse_str("0190f5c2-8a7b-7c3d-9e1f-000000000001").unwrap();
        let push = Push {
            kind: PushKind::Alert,
            title: None,
            body: None,
            badge: 0,
            conversation_id: None,
            message_id: Some(id),
            seq: None,
            silent: false,
            job_id: Uuid::nil(),
            data: BTreeMap::new(),
        };
        let tag = push.dedupe_tag().unwrap();
        assert_eq!(tag.len(), 32);
        let full = URL_SAFE_NO_PAD.encode(Sha256::digest(id.to_string()));
        assert!(full.starts_with(&tag));
    }

    #[test]
    fn target_debug_shows_only_the_suffix() {
        let target = Target::new("a".repeat(56) + "12345678", Utc::now());
        let shown = format!("{target:?}");
        assert!(shown.contains("…12345678"), "{shown}");
        assert!(!shown.contains("aaaa"), "{shown}");
    }
}
