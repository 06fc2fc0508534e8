//! MessageService: conversations, members, invites, messages, reactions, pins, read state,
//! search and live delivery (DESIGN §6, §7).
//!
//! Layout: one folder per feature, along the proto files of the contract: `conversations`
//! (create, get, list, update; also the `Conversations` facade holding the service's state),
//! `members` (members, roles, invites), `messages` (send through the group-commit queue, get,
//! history, threads, edits, deletion, search), `reactions` (reactions and pins), `read_state`
//! (receipts, read marks, member settings) and `live` (Subscribe and SetTyping: hub, replay,
//! cursor, typing, membership periods). Each holds its `api` (protobuf ⇄ domain, the handler
//! bodies), its journeys and rules, its transaction scripts (`store*`: `impl MessageStore`
//! blocks written once for PostgreSQL and SQLite) and its `events`. Shared at the top: `api`
//! (the generated service, delegated to the features by one macro table), `error` (the one
//! error enum), `reading` how one reader sees messages, `rules` the field rules, `events` the
//! event envelopes and snapshots, `store` the `MessageStore` type, its shared rows and
//! encodings, `projections` what it learns from auth's and the user service's events,
//! `internal` the contract other Echo services call (notification previews, built by
//! `preview`; the operators' report queue and purges), `moderation` reports and their
//! moderation record.

pub mod api;
pub mod conversations;
pub mod convert;
pub mod error;
pub mod events;
pub mod internal;
pub mod live;
pub mod members;
pub mod messages;
pub mod moderation;
pub mod preview;
pub mod projections;
pub mod reactions;
pub mod read_state;
pub mod reading;
pub mod rules;
pub mod store;

use std::sync::Arc;

use echo_authn::Revocations;
use echo_bus::consumer::EventHandler;
use echo_bus::{ConsumerSpec, EventBus, Outbox};
use echo_cache::{Cache, Limits};
use echo_proto::echo::message::v1::message_internal_service_server::MessageInternalServiceServer;
use echo_proto::echo::message::v1::message_service_server::MessageServiceServer;

use tokio_util::sync::CancellationToken;

pub use api::MessageApi;

/// Everything MessageService needs, built by the binary (or a test).
pub struct MessageDeps {
    /// The service's outbox; its database is the service's own.
    pub outbox: Outbox,
    /// The bus (live delivery's hints and ephemeral items between instances).
    pub bus: Arc<dyn EventBus>,
    /// Rate limits.
    pub cache: Arc<dyn Cache>,
    /// Session revocations, so a revoked session's streams end within a second.
    pub revocations: Option<Revocations>,
    /// Live delivery's stream settings.
    pub live: echo_config::LiveSettings,
    /// Group commit of SendMessage.
    pub send: echo_config::SendSettings,
    /// Operator retention and the expiry sweep (disappearing messages).
    pub retention: echo_config::RetentionSettings,
}

/// A running MessageService instance: its live delivery (hub reader, ephemeral listener)
/// and its send queue run until the shutdown token given to [`Message::start`] fires.
#[derive(Clone)]
pub struct Message {
    conversations: Arc<conversations::Conversations>,
    store: Arc<store::MessageStore>,
    sweep: messages::expiry::SweepSettings,
}

impl Message {
    /// Start the instance: its store on the outbox's database, live delivery and the send
    /// queue.
    pub async fn start(
        deps: MessageDeps,
        shutdown: CancellationToken,
    ) -> Result<Self, live::LiveError> {
        let store = store::for_database(deps.outbox.database(), deps.outbox.clone());
        let sweep = messages::expiry::SweepSettings::from_config(&deps.retention);
        messages::expiry::start(store.clone(), sweep, shutdown.clone());
        let live = live::Live::start(
            live::LiveDeps {
                store: store.clone(),
                outbox: deps.outbox,
                bus: deps.bus,
                revocations: deps.revocations,
                settings: deps.live,
            },
            shutdown,
        )
        .await?;
        let conversations = conversations::Conversations {
            sends: messages::sending::SendQueue::start(store.clone(), &deps.send),
            store: store.clone(),
            limits: Limits::new(deps.cache),
            edit_window: rules::EDIT_WINDOW,
            live,
        };
        Ok(Self {
            conversations: Arc::new(conversations),
            store,
            sweep,
        })
    }

    /// Runs one expiry sweep now, as if the clock read `now` (the background sweep runs one
    /// every `retention.sweep_interval` with the real clock): every message whose
    /// `expires_at` or retention has passed at `now` is erased, in batches of
    /// `retention.batch_size`. For tests and operators' tools.
    pub async fn sweep(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<messages::expiry::SweepReport, error::MessageError> {
        messages::expiry::sweep(&self.store, &self.sweep, now, &CancellationToken::new()).await
    }

    /// The MessageService server, refusing request messages over `max_request_bytes`.
    pub fn service(&self, max_request_bytes: usize) -> MessageServiceServer<MessageApi> {
        MessageServiceServer::new(MessageApi::new(self.conversations.clone()))
            .max_decoding_message_size(max_request_bytes)
    }

    /// The MessageInternalService server (notification previews, the report queue, purges; for the internal listener
    /// only, behind the service credential), refusing request messages over
    /// `max_request_bytes`.
    pub fn internal_service(
        &self,
        max_request_bytes: usize,
    ) -> MessageInternalServiceServer<internal::MessageInternalApi> {
        internal::MessageInternalApi::new(self.store.clone(), self.sweep.batch_size)
            .server(max_request_bytes)
    }

    /// The durable consumers MessageService runs: auth's account events and the user
    /// service's block events, into its projections.
    pub fn consumers(&self) -> Vec<(ConsumerSpec, Arc<dyn EventHandler>)> {
        let projections: Arc<dyn EventHandler> =
            Arc::new(projections::Projections::new(self.store.clone()));
        vec![
            (projections::accounts_consumer(), projections.clone()),
            (projections::blocks_consumer(), projections),
        ]
    }
}

/// MessageService's migrations for both backends.
pub fn migrations() -> echo_store::Migrations {
    echo_store::Migrations::new(
        "message",
        sqlx::migrate!("../../migrations/postgres/message"),
        sqlx::migrate!("../../migrations/sqlite/message"),
    )
}
