//! MessageService: conversations, members, invites, messages, reactions, pins, read state,
//! search and live delivery (DESIGN §6, §7).
//!
//! Layout: `api` parses and maps (one file per part); `conversations` and one module per part
//! (`members`, `edits`, `reactions`, `receipts`, `search`, `typing`) hold the journeys; `live`
//! the Subscribe streams (hub, replay, cursor); `reading` how one reader sees messages; `rules`
//! the field rules; `store` the storage seam (one sub-trait per part) with its PostgreSQL and
//! SQLite implementations; `events` the outbox events; `projections` what it learns from
//! auth's and the user service's events; `internal` the contract other Echo services call
//! (notification previews, built by `preview`).

pub mod api;
pub mod conversations;
pub mod convert;
pub mod edits;
pub mod error;
pub mod events;
pub mod internal;
pub mod live;
pub mod members;
pub mod preview;
pub mod projections;
pub mod reactions;
pub mod reading;
pub mod receipts;
pub mod rules;
pub mod search;
pub mod sending;
pub mod store;
pub mod typing;

use std::sync::Arc;

use echo_bus::ConsumerSpec;
use echo_bus::consumer::EventHandler;
use echo_cache::{Cache, Limits};
use echo_proto::echo::message::v1::message_internal_service_server::MessageInternalServiceServer;
use echo_proto::echo::message::v1::message_service_server::MessageServiceServer;

pub use api::MessageApi;

/// Everything MessageService needs, built by the binary (or the testkit).
pub struct MessageDeps {
    /// Storage (writes its events to the service's outbox).
    pub store: Arc<dyn store::MessageStore>,
    /// Rate limits.
    pub cache: Arc<dyn Cache>,
    /// Live delivery, started by the caller ([`live::Live::start`]).
    pub live: live::Live,
    /// Group commit of SendMessage.
    pub send: echo_config::SendSettings,
}

/// The MessageService server, refusing request messages over `max_request_bytes`.
pub fn service(deps: MessageDeps, max_request_bytes: usize) -> MessageServiceServer<MessageApi> {
    let conversations = conversations::Conversations {
        sends: sending::SendQueue::start(deps.store.clone(), &deps.send),
        store: deps.store,
        limits: Limits::new(deps.cache),
        edit_window: rules::EDIT_WINDOW,
        live: deps.live,
    };
    MessageServiceServer::new(MessageApi::new(Arc::new(conversations)))
        .max_decoding_message_size(max_request_bytes)
}

/// The MessageInternalService server (notification previews; for the internal listener only,
/// behind the service credential) over the store of `deps`, refusing request messages over
/// `max_request_bytes`.
pub fn internal_service(
    deps: &MessageDeps,
    max_request_bytes: usize,
) -> MessageInternalServiceServer<internal::MessageInternalApi> {
    internal::MessageInternalApi::new(deps.store.clone()).server(max_request_bytes)
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
