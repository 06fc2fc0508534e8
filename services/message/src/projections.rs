//! What MessageService learns from other services' events, to authorize without calling them:
//! which users exist (auth's account events) and who blocks whom (the user service's block
//! events). Each is a durable, idempotent consumer whose effect commits with the event id.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::consumer::{EventHandler, HandlerError};
use echo_bus::{ConsumerSpec, Event};
use echo_ids::UserId;
use echo_proto::echo::events::v1 as pb;
use echo_store::{Tx, with_tx};
use prost::Message;

use crate::error::MessageError;
use crate::store::MessageStore;
use crate::store::codec::{At, Id};

/// The consumer of auth's account events (one consumer, so a deletion never overtakes its
/// registration).
pub fn accounts_consumer() -> ConsumerSpec {
    ConsumerSpec::new("message.accounts", "echo.auth.>")
}

/// The consumer of the user service's block events.
pub fn blocks_consumer() -> ConsumerSpec {
    ConsumerSpec::new("message.blocks", "echo.user.>")
}

/// Applies account and block events to the store's projections.
pub struct Projections {
    store: Arc<MessageStore>,
}

impl Projections {
    /// Projections kept in `store`.
    pub fn new(store: Arc<MessageStore>) -> Self {
        Self { store }
    }
}

fn id(text: &str) -> Result<UserId, HandlerError> {
    text.parse::<UserId>()
        .map_err(|e| format!("bad user id {text:?}: {e}").into())
}

#[async_trait]
impl EventHandler for Projections {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> Result<(), HandlerError> {
        let payload = event.payload.as_ref();
        match event.event_type.as_str() {
            "echo.events.v1.UserRegistered" => {
                let registered = pb::UserRegistered::decode(payload)?;
                self.store
                    .record_user(tx, id(&registered.user_id)?, None)
                    .await?;
            }
            "echo.events.v1.UserDeleted" => {
                let deleted = pb::UserDeleted::decode(payload)?;
                self.store
                    .record_user(tx, id(&deleted.user_id)?, Some(event.occurred_at))
                    .await?;
            }
            "echo.events.v1.UserBlocked" => {
                let blocked = pb::UserBlocked::decode(payload)?;
                let (blocker, blocked) =
                    (id(&blocked.blocker_user_id)?, id(&blocked.blocked_user_id)?);
                self.store.record_block(tx, blocker, blocked, true).await?;
            }
            "echo.events.v1.UserUnblocked" => {
                let unblocked = pb::UserUnblocked::decode(payload)?;
                let blocker = id(&unblocked.blocker_user_id)?;
                let blocked = id(&unblocked.blocked_user_id)?;
                self.store.record_block(tx, blocker, blocked, false).await?;
            }
            // Sessions, profile changes: not the message service's business.
            _ => {}
        }
        Ok(())
    }
}

/// The projections' writes, in the consumer's transaction (written once for both backends).
impl MessageStore {
    /// Records that `user_id` exists (`deleted_at` None) or was deleted. A deletion is final: a
    /// late "exists" does not revive the user.
    pub async fn record_user(
        &self,
        tx: &mut Tx,
        user_id: UserId,
        deleted_at: Option<DateTime<Utc>>,
    ) -> Result<(), MessageError> {
        // A deletion is final: a late or redelivered "exists" keeps the tombstone, and a
        // redelivered deletion keeps the first time.
        with_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO known_users (user_id, deleted_at) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE \
                 SET deleted_at = COALESCE(known_users.deleted_at, excluded.deleted_at)",
            )
            .bind(Id(user_id.into()))
            .bind(deleted_at.map(At))
            .execute(c)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Records that `blocker` blocks `blocked` (`blocking` true) or no longer does.
    pub async fn record_block(
        &self,
        tx: &mut Tx,
        blocker: UserId,
        blocked: UserId,
        blocking: bool,
    ) -> Result<(), MessageError> {
        let sql = if blocking {
            "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2) \
             ON CONFLICT (blocker_id, blocked_id) DO NOTHING"
        } else {
            "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2"
        };
        with_tx!(tx, |c| {
            sqlx::query(sql)
                .bind(Id(blocker.into()))
                .bind(Id(blocked.into()))
                .execute(c)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}
