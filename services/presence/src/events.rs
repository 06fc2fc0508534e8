//! The events presence consumes (spec §A3): its visibility projections from the user and
//! message services, and sessions and accounts from auth. Each effect commits with the event
//! id (the consumer framework), and once committed an ACL hint tells every instance to
//! re-check the watchers it concerns.

use std::sync::Arc;

use async_trait::async_trait;
use echo_bus::consumer::{EventHandler, HandlerError};
use echo_bus::{ConsumerSpec, Event};
use echo_ids::UserId;
use echo_proto::echo::events::v1 as events;
use echo_proto::echo::message::v1::{ConversationType, user_event};
use echo_proto::echo::user::v1::Visibility;
use echo_store::Tx;
use prost::Message as _;

use crate::store::projection;
use crate::tracker::Tracker;
use crate::visibility::Audience;

/// The durable consumers presence runs (one filter each: NATS 2.9).
pub fn consumers(tracker: &Tracker) -> Vec<(ConsumerSpec, Arc<dyn EventHandler>)> {
    let handler: Arc<dyn EventHandler> = Arc::new(PresenceEvents {
        tracker: tracker.clone(),
    });
    vec![
        (
            ConsumerSpec::new("presence.users", "echo.user.>"),
            handler.clone(),
        ),
        (
            ConsumerSpec::new("presence.membership", "echo.message.user_event.>"),
            handler.clone(),
        ),
        (ConsumerSpec::new("presence.auth", "echo.auth.>"), handler),
    ]
}

/// Applies every event presence consumes.
struct PresenceEvents {
    tracker: Tracker,
}

fn id<T: std::str::FromStr<Err = uuid::Error>>(text: &str) -> Result<T, HandlerError> {
    text.parse::<T>()
        .map_err(|e| format!("bad id {text:?}: {e}").into())
}

/// Whose visibility an event changes: (user, the other side or everyone).
fn acl_of(event: &Event) -> Option<(UserId, Option<UserId>)> {
    let payload = event.payload.as_ref();
    let pair = |a: &str, b: &str| Some((a.parse().ok()?, b.parse().ok()));
    match event.event_type.as_str() {
        "echo.events.v1.UserBlocked" => {
            let m = events::UserBlocked::decode(payload).ok()?;
            pair(&m.blocker_user_id, &m.blocked_user_id)
        }
        "echo.events.v1.UserUnblocked" => {
            let m = events::UserUnblocked::decode(payload).ok()?;
            pair(&m.blocker_user_id, &m.blocked_user_id)
        }
        "echo.events.v1.ContactAdded" => {
            let m = events::ContactAdded::decode(payload).ok()?;
            pair(&m.owner_user_id, &m.contact_user_id)
        }
        "echo.events.v1.ContactRemoved" => {
            let m = events::ContactRemoved::decode(payload).ok()?;
            pair(&m.owner_user_id, &m.contact_user_id)
        }
        "echo.events.v1.PrivacyChanged" => {
            let m = events::PrivacyChanged::decode(payload).ok()?;
            Some((m.user_id.parse().ok()?, None))
        }
        "echo.events.v1.UserDeleted" => {
            let m = events::UserDeleted::decode(payload).ok()?;
            Some((m.user_id.parse().ok()?, None))
        }
        "echo.events.v1.UserEventRecorded" => {
            let m = events::UserEventRecorded::decode(payload).ok()?;
            let event = m.event?;
            match event.kind? {
                user_event::Kind::ConversationJoined(_) | user_event::Kind::ConversationLeft(_) => {
                    Some((event.user_id.parse().ok()?, None))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn audience(visibility: i32) -> Audience {
    match Visibility::try_from(visibility) {
        Ok(Visibility::Everyone) => Audience::Everyone,
        Ok(Visibility::Nobody) => Audience::Nobody,
        _ => Audience::Contacts,
    }
}

#[async_trait]
impl EventHandler for PresenceEvents {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> Result<(), HandlerError> {
        let payload = event.payload.as_ref();
        match event.event_type.as_str() {
            "echo.events.v1.UserBlocked" => {
                let m = events::UserBlocked::decode(payload)?;
                projection::block(tx, id(&m.blocker_user_id)?, id(&m.blocked_user_id)?).await?;
            }
            "echo.events.v1.UserUnblocked" => {
                let m = events::UserUnblocked::decode(payload)?;
                projection::unblock(tx, id(&m.blocker_user_id)?, id(&m.blocked_user_id)?).await?;
            }
            "echo.events.v1.ContactAdded" => {
                let m = events::ContactAdded::decode(payload)?;
                projection::add_contact(tx, id(&m.owner_user_id)?, id(&m.contact_user_id)?).await?;
            }
            "echo.events.v1.ContactRemoved" => {
                let m = events::ContactRemoved::decode(payload)?;
                projection::remove_contact(tx, id(&m.owner_user_id)?, id(&m.contact_user_id)?)
                    .await?;
            }
            "echo.events.v1.PrivacyChanged" => {
                let m = events::PrivacyChanged::decode(payload)?;
                let last_seen = m.settings.map(|s| s.last_seen).unwrap_or_default();
                projection::privacy(tx, id(&m.user_id)?, audience(last_seen)).await?;
            }
            "echo.events.v1.UserEventRecorded" => {
                let m = events::UserEventRecorded::decode(payload)?;
                let Some(event) = m.event else { return Ok(()) };
                let user = id(&event.user_id)?;
                match event.kind {
                    Some(user_event::Kind::ConversationJoined(joined)) => {
                        let Some(conversation) = joined.conversation else {
                            return Ok(());
                        };
                        // Channels hide their members from each other: no presence through them.
                        let shares = matches!(
                            ConversationType::try_from(conversation.r#type),
                            Ok(ConversationType::Direct | ConversationType::Group)
                        );
                        if shares {
                            projection::join(tx, id(&conversation.conversation_id)?, user).await?;
                        }
                    }
                    Some(user_event::Kind::ConversationLeft(left)) => {
                        projection::leave(tx, id(&left.conversation_id)?, user).await?;
                    }
                    _ => {}
                }
            }
            "echo.events.v1.SessionRevoked" => {
                let m = events::SessionRevoked::decode(payload)?;
                // The device's entry goes at once (its watch streams end through the
                // revocation channel within a second already).
                self.tracker
                    .remove_device(id(&m.user_id)?, id(&m.device_id)?)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            "echo.events.v1.UserDeleted" => {
                let m = events::UserDeleted::decode(payload)?;
                let user = id(&m.user_id)?;
                projection::erase_user(tx, user).await?;
                self.tracker
                    .state
                    .forget(user)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn committed(&self, event: &Event) {
        if let Some((user, other)) = acl_of(event) {
            self.tracker.hints.acl(user, other).await;
        }
    }
}
