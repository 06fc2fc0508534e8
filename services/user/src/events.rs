//! The events UserService publishes (through its outbox) and the auth events it applies.
//!
//! Blocks and profile changes are built by `people` and handed to the store; privacy and
//! contact events are built by the store itself (`store::changes`), which alone knows whether
//! its statements changed anything.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::consumer::{EventHandler, HandlerError};
use echo_bus::{ConsumerSpec, Event};
use echo_ids::UserId;
use echo_proto::echo::events::v1 as pb;
use echo_store::Tx;
use prost::Message;
use uuid::Uuid;

use crate::store::{Profile, Registration, UserStore};

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    SystemTime::from(at).into()
}

/// `echo.user.blocked.<blocker>`: messaging and presence stop between the two.
pub fn user_blocked(blocker: UserId, blocked: UserId) -> Event {
    let id = Uuid::now_v7();
    let message = pb::UserBlocked {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        blocker_user_id: blocker.to_string(),
        blocked_user_id: blocked.to_string(),
    };
    let subject = format!("echo.user.blocked.{blocker}");
    Event::now(
        id,
        subject,
        "echo.events.v1.UserBlocked",
        message.encode_to_vec(),
    )
}

/// `echo.user.unblocked.<blocker>`.
pub fn user_unblocked(blocker: UserId, blocked: UserId) -> Event {
    let id = Uuid::now_v7();
    let message = pb::UserUnblocked {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        blocker_user_id: blocker.to_string(),
        blocked_user_id: blocked.to_string(),
    };
    let subject = format!("echo.user.unblocked.{blocker}");
    Event::now(
        id,
        subject,
        "echo.events.v1.UserUnblocked",
        message.encode_to_vec(),
    )
}

/// `echo.user.profile_updated.<user>`: the public fields other services cache.
pub fn profile_updated(profile: &Profile, paths: &[String]) -> Event {
    let id = Uuid::now_v7();
    let message = pb::ProfileUpdated {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(profile.updated_at)),
        user_id: profile.user_id.to_string(),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.to_vec(),
        }),
        display_name: profile.display_name.clone(),
        avatar: profile.avatar.as_ref().map(crate::rules::media),
    };
    let subject = format!("echo.user.profile_updated.{}", profile.user_id);
    Event::now(
        id,
        subject,
        "echo.events.v1.ProfileUpdated",
        message.encode_to_vec(),
    )
}

/// `echo.user.privacy_changed.<user>`: every setting after the change (presence applies
/// `last_seen`), from the profile after it.
pub fn privacy_changed(profile: &Profile) -> Event {
    let id = Uuid::now_v7();
    let message = pb::PrivacyChanged {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(profile.updated_at)),
        user_id: profile.user_id.to_string(),
        settings: Some(crate::rules::privacy_settings(profile.privacy)),
    };
    let subject = format!("echo.user.privacy_changed.{}", profile.user_id);
    Event::now(
        id,
        subject,
        "echo.events.v1.PrivacyChanged",
        message.encode_to_vec(),
    )
}

/// `echo.user.contact_added.<owner>`: `owner` now has `contact` in their contacts.
pub fn contact_added(owner: UserId, contact: UserId) -> Event {
    let id = Uuid::now_v7();
    let message = pb::ContactAdded {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        owner_user_id: owner.to_string(),
        contact_user_id: contact.to_string(),
    };
    let subject = format!("echo.user.contact_added.{owner}");
    Event::now(
        id,
        subject,
        "echo.events.v1.ContactAdded",
        message.encode_to_vec(),
    )
}

/// `echo.user.contact_removed.<owner>`: `owner` no longer has `contact` in their contacts.
pub fn contact_removed(owner: UserId, contact: UserId) -> Event {
    let id = Uuid::now_v7();
    let message = pb::ContactRemoved {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        owner_user_id: owner.to_string(),
        contact_user_id: contact.to_string(),
    };
    let subject = format!("echo.user.contact_removed.{owner}");
    Event::now(
        id,
        subject,
        "echo.events.v1.ContactRemoved",
        message.encode_to_vec(),
    )
}

/// The durable consumer of auth's account events: one consumer for both kinds, so a deletion
/// is never applied before the registration it follows.
pub fn accounts_consumer() -> ConsumerSpec {
    ConsumerSpec::new("user.accounts", "echo.auth.>")
}

/// Applies `user_registered` (create or complete the profile) and `user_deleted` (erase the
/// user's profile, contacts, requests and blocks) in the consumer's transaction.
pub struct AccountEvents {
    store: Arc<UserStore>,
}

impl AccountEvents {
    /// Applies account events to `store`.
    pub fn new(store: Arc<UserStore>) -> Self {
        Self { store }
    }
}

fn user_id(id: &str) -> Result<UserId, HandlerError> {
    id.parse()
        .map_err(|e| format!("bad user_id {id:?}: {e}").into())
}

fn time(at: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    at.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.try_into().ok()?))
}

#[async_trait]
impl EventHandler for AccountEvents {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            "echo.events.v1.UserRegistered" => {
                let registered = pb::UserRegistered::decode(event.payload.as_ref())?;
                let registration = Registration {
                    user_id: user_id(&registered.user_id)?,
                    display_name: registered.display_name,
                    phone_number: registered.phone_number,
                    registered_at: time(registered.phone_verified_at).unwrap_or(event.occurred_at),
                };
                self.store.record_registration(tx, &registration).await?;
            }
            "echo.events.v1.UserDeleted" => {
                let deleted = pb::UserDeleted::decode(event.payload.as_ref())?;
                let at = time(deleted.occurred_at).unwrap_or(event.occurred_at);
                self.store
                    .erase_user(tx, user_id(&deleted.user_id)?, at)
                    .await?;
            }
            // Other auth events (sessions) are not the user service's business.
            _ => {}
        }
        Ok(())
    }
}
