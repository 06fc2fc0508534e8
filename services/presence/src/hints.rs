//! The ephemeral hints presence sends between its instances (spec §A4): `PresenceChanged` on
//! `echo.live.presence.<user>` and `PresenceAclChanged` on `echo.live.presence_acl.<user>`.
//! Never stored; a lost hint is healed by the watchers' periodic reconcile.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use echo_bus::EventBus;
use echo_ids::UserId;
use echo_proto::echo::events::v1 as events;
use echo_proto::echo::presence::v1 as pb;
use prost::Message as _;

use crate::status::{Observed, View};

/// Where state hints go (`<prefix><user>`).
pub const PRESENCE: &str = "echo.live.presence.";
/// Where visibility hints go (`<prefix><user>`).
pub const ACL: &str = "echo.live.presence_acl.";
/// Longest a caller waits to publish a hint: a hint is not worth holding a request for.
const PUBLISH_WITHIN: Duration = Duration::from_millis(100);

/// A user's new view with its version, as the hint carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// The user.
    pub user: UserId,
    /// What permitted observers now see.
    pub view: View,
    /// The state's version.
    pub version: u64,
}

/// Publishes hints; failures are logged (the reconcile heals what is lost).
#[derive(Clone)]
pub struct Hints {
    bus: Arc<dyn EventBus>,
}

impl Hints {
    /// Hints on `bus`.
    pub fn new(bus: Arc<dyn EventBus>) -> Self {
        Self { bus }
    }

    /// The bus the hints travel on.
    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    async fn publish(&self, subject: String, payload: Vec<u8>) {
        if !self.bus.is_connected() {
            tracing::debug!(%subject, "bus away; presence hint dropped (the reconcile heals it)");
            return;
        }
        let publish = self.bus.publish_ephemeral(&subject, Bytes::from(payload));
        match tokio::time::timeout(PUBLISH_WITHIN, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, %subject, "presence hint not published"),
            Err(_) => tracing::warn!(%subject, "presence hint not published in time"),
        }
    }

    /// `changed.user`'s view changed.
    pub async fn changed(&self, changed: Changed) {
        let message = events::PresenceChanged {
            user_id: changed.user.to_string(),
            status: status_pb(changed.view.status) as i32,
            last_seen: changed.view.last_seen.map(timestamp),
            version: changed.version,
        };
        self.publish(
            format!("{PRESENCE}{}", changed.user),
            message.encode_to_vec(),
        )
        .await;
    }

    /// Who may see `user` changed (with respect to `other`, or to everyone when `None`).
    pub async fn acl(&self, user: UserId, other: Option<UserId>) {
        let message = events::PresenceAclChanged {
            user_id: user.to_string(),
            other_user_id: other.map(|o| o.to_string()).unwrap_or_default(),
        };
        self.publish(format!("{ACL}{user}"), message.encode_to_vec())
            .await;
    }
}

/// Decodes a `PresenceChanged` payload.
pub fn decode_changed(payload: &[u8]) -> Option<Changed> {
    let message = events::PresenceChanged::decode(payload).ok()?;
    let status = match pb::PresenceStatus::try_from(message.status).ok()? {
        pb::PresenceStatus::Online => Observed::Online,
        pb::PresenceStatus::Away => Observed::Away,
        pb::PresenceStatus::Dnd => Observed::Dnd,
        _ => Observed::Offline,
    };
    Some(Changed {
        user: message.user_id.parse().ok()?,
        view: View {
            status,
            last_seen: message.last_seen.and_then(from_timestamp),
        },
        version: message.version,
    })
}

/// Decodes a `PresenceAclChanged` payload: the user and the other side, if any.
pub fn decode_acl(payload: &[u8]) -> Option<(UserId, Option<UserId>)> {
    let message = events::PresenceAclChanged::decode(payload).ok()?;
    let user = message.user_id.parse().ok()?;
    let other = message.other_user_id.parse().ok();
    Some((user, other))
}

/// The proto status of an observed one.
pub fn status_pb(status: Observed) -> pb::PresenceStatus {
    match status {
        Observed::Online => pb::PresenceStatus::Online,
        Observed::Away => pb::PresenceStatus::Away,
        Observed::Dnd => pb::PresenceStatus::Dnd,
        Observed::Offline => pb::PresenceStatus::Offline,
    }
}

/// A protobuf timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    SystemTime::from(at).into()
}

/// A time from a protobuf timestamp.
pub fn from_timestamp(at: prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?)
}
