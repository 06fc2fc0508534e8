//! PresenceService: who is online, last seen, and live presence streams (DESIGN §9, spec §A).
//!
//! Layout: `status` holds the rules of what an observer sees and `visibility` who may see it
//! (both pure, table-tested); `state` is the seam where device entries live (Redis with Lua,
//! or memory), `store` the database that persists the manual status and `last_seen` and keeps
//! the visibility projections; `tracker` is the write path every entry point shares (seed,
//! write, hint, persist); `sweeper` expires entries; `watch` is the instance's watcher index
//! and streams; `signals` lets open Subscribe streams keep devices present; `events` feeds
//! the projections; `api` maps the RPCs.

pub mod api;
pub mod error;
pub mod events;
pub mod hints;
pub mod internal;
mod signals;
pub mod state;
pub mod status;
pub mod store;
pub mod sweeper;
pub mod tracker;
pub mod visibility;
pub mod watch;

use std::sync::Arc;

use echo_authn::Revocations;
use echo_bus::consumer::EventHandler;
use echo_bus::{ConsumerSpec, EventBus};
use echo_cache::Cache;
use echo_config::PresenceSettings;
use echo_proto::echo::presence::v1::presence_service_server::PresenceServiceServer;
use tokio_util::sync::CancellationToken;

pub use api::PresenceApi;
pub use state::{MemoryState, PresenceState, RedisState};
pub use store::PresenceStore;
pub use tracker::Tracker;
pub use watch::Watchers;

/// Everything presence needs, built by the binary (or a test).
pub struct PresenceDeps {
    /// Where device entries live.
    pub state: Arc<dyn PresenceState>,
    /// Presence's database.
    pub store: PresenceStore,
    /// The bus (hints between instances, stream signals).
    pub bus: Arc<dyn EventBus>,
    /// Rate limits and watch-stream leases.
    pub cache: Arc<dyn Cache>,
    /// Session revocations (a revoked session's watch ends within a second).
    pub revocations: Option<Revocations>,
    /// Settings.
    pub settings: PresenceSettings,
}

/// A running presence instance: its background work (sweeper, hint listener, stream signals)
/// runs until the shutdown token given to [`Presence::start`] fires.
#[derive(Clone)]
pub struct Presence {
    api: PresenceApi,
    tracker: Tracker,
}

impl Presence {
    /// Start the instance's background work.
    pub fn start(deps: PresenceDeps, shutdown: CancellationToken) -> Self {
        let hints = hints::Hints::new(deps.bus);
        let tracker = Tracker::start(
            deps.state,
            deps.store,
            hints,
            deps.settings,
            shutdown.clone(),
        );
        let watchers = Watchers::new(tracker.clone());
        tokio::spawn(sweeper::run(tracker.clone(), shutdown.clone()));
        tokio::spawn(watch::listen(watchers.clone(), shutdown.clone()));
        tokio::spawn(signals::listen(tracker.clone(), shutdown));
        let api = PresenceApi::new(tracker.clone(), watchers, deps.cache, deps.revocations);
        Self { api, tracker }
    }

    /// The PresenceService server, refusing request messages over `max_request_bytes`.
    pub fn service(&self, max_request_bytes: usize) -> PresenceServiceServer<PresenceApi> {
        PresenceServiceServer::new(self.api.clone()).max_decoding_message_size(max_request_bytes)
    }

    /// The PresenceInternalService server (for the internal listener only, behind the
    /// service credential).
    pub fn internal_service(
        &self,
        max_request_bytes: usize,
    ) -> echo_proto::echo::presence::v1::presence_internal_service_server::PresenceInternalServiceServer<internal::PresenceInternalApi>{
        internal::PresenceInternalApi::new(self.tracker.clone()).server(max_request_bytes)
    }

    /// The durable consumers presence runs, with their handlers.
    pub fn consumers(&self) -> Vec<(ConsumerSpec, Arc<dyn EventHandler>)> {
        events::consumers(&self.tracker)
    }

    /// The shared write path (tests and the internal service read through it).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

/// PresenceService's migrations for both backends.
pub fn migrations() -> echo_store::Migrations {
    echo_store::Migrations::new(
        "presence",
        sqlx::migrate!("../../migrations/postgres/presence"),
        sqlx::migrate!("../../migrations/sqlite/presence"),
    )
}
