//! MessageService: conversations, members, invites, messages, reactions, pins, read state,
//! search and live delivery (DESIGN §6, §7).
//!
//! Built so far: direct conversations, groups and channels (create, get, list), sending with
//! gap-free sequences and idempotency, reading single messages and history. The other RPCs
//! still answer UNIMPLEMENTED through the generated stubs, which is honest only while their
//! issues ("MessageService core", then "Live delivery") are open.
//!
//! Layout: `api` parses and maps; `conversations` holds the journeys; `rules` the field rules;
//! `store` the storage seam with its PostgreSQL and SQLite implementations; `events` the
//! outbox events; `projections` what it learns from auth's and the user service's events.

pub mod api;
pub mod conversations;
pub mod convert;
pub mod edits;
pub mod error;
pub mod events;
pub mod members;
pub mod projections;
pub mod reactions;
pub mod reading;
pub mod receipts;
pub mod rules;
pub mod search;
pub mod store;

use std::sync::Arc;

use echo_bus::ConsumerSpec;
use echo_bus::consumer::EventHandler;
use echo_cache::{Cache, Limits};
use echo_proto::echo::message::v1::message_service_server::MessageServiceServer;

pub use api::MessageApi;

/// Everything MessageService needs, built by the binary (or the testkit).
pub struct MessageDeps {
    /// Storage (writes its events to the service's outbox).
    pub store: Arc<dyn store::MessageStore>,
    /// Rate limits.
    pub cache: Arc<dyn Cache>,
}

/// The MessageService server, refusing request messages over `max_request_bytes`.
pub fn service(deps: MessageDeps, max_request_bytes: usize) -> MessageServiceServer<MessageApi> {
    let conversations = conversations::Conversations {
        store: deps.store,
        limits: Limits::new(deps.cache),
        edit_window: rules::EDIT_WINDOW,
    };
    MessageServiceServer::new(MessageApi::new(Arc::new(conversations)))
        .max_decoding_message_size(max_request_bytes)
}

/// The durable consumers MessageService runs: auth's account events and the user service's
/// block events, into its projections.
pub fn consumers(
    store: Arc<dyn store::MessageStore>,
) -> Vec<(ConsumerSpec, Arc<dyn EventHandler>)> {
    let projections: Arc<dyn EventHandler> = Arc::new(projections::Projections::new(store));
    vec![
        (projections::accounts_consumer(), projections.clone()),
        (projections::blocks_consumer(), projections),
    ]
}

/// MessageService's migrations for both backends.
pub fn migrations() -> echo_store::Migrations {
    echo_store::Migrations::new(
        "message",
        sqlx::migrate!("../../migrations/postgres/message"),
        sqlx::migrate!("../../migrations/sqlite/message"),
    )
}
