//! What MessageService learns from other services' events, to authorize without calling them:
//! which users exist (auth's account events) and who blocks whom (the user service's block
//! events). Each is a durable, idempotent consumer whose effect commits with the event id.

use std::sync::Arc;

use async_trait::async_trait;
use echo_bus::consumer::{EventHandler, HandlerError};
use echo_bus::{ConsumerSpec, Event};
use echo_proto::echo::events::v1 as pb;
use echo_store::Tx;
use prost::Message;
use uuid::Uuid;

use crate::store::MessageStore;

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

fn id(text: &str) -> Result<Uuid, HandlerError> {
    Uuid::try_parse(text).map_err(|e| format!("bad user id {text:?}: {e}").into())
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
