//! NotificationService: push tokens, the notification inbox, badge counts and notification
//! settings (DESIGN §9, spec §B).
//!
//! Layout, one folder per feature (STYLE 16): `tokens/` (RegisterPushToken,
//! UnregisterPushToken, ListPushTokens: token formats, the cap and rate limit, replace and
//! move), `inbox/` (ListInbox, MarkInboxRead), `badge.rs` (GetBadgeCount and the counts it
//! reads), `settings/` (Get/UpdateNotificationSettings and quiet hours). Each feature holds its
//! rules, its proto mapping and its statements; `store` is the shared database handle and
//! encodings, `error` the one error enum, `api` the handlers.
//!
//! The delivery pipeline: `pipeline/` (the consumers, projections and the decision table of
//! spec §B2, writing inbox entries and push jobs in the event's transaction), `jobs` (the
//! push queue), `dispatch/` (claims due jobs, rechecks, composes and sends them through
//! `echo_push` providers, retries, prunes), `upstream` (presence's delivery state and the
//! message service's previews, over their internal contracts).

pub mod api;
pub mod badge;
pub mod dispatch;
pub mod error;
pub mod fixture;
pub mod inbox;
pub mod jobs;
pub mod pipeline;
pub mod receipts;
pub mod settings;
pub mod store;
pub mod tokens;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;

use echo_bus::ConsumerSpec;
use echo_bus::consumer::EventHandler;
use echo_cache::{Cache, Limits};
use echo_config::NotificationSettings;
use echo_proto::echo::notification::v1::notification_service_server::NotificationServiceServer;
use echo_push::PushProvider;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use api::NotificationApi;
pub use error::NotificationError;
pub use store::NotificationStore;
pub use tokens::Platform;

/// Everything NotificationService needs, built by the binary (or a test).
pub struct NotificationDeps {
    /// Notification's database.
    pub store: NotificationStore,
    /// The bus, for the devices' delivery receipts (ephemeral updates).
    pub bus: Arc<dyn echo_bus::EventBus>,
    /// Rate limits (registrations per device).
    pub cache: Arc<dyn Cache>,
    /// The providers of the configured platforms; registering a token for another platform
    /// answers FAILED_PRECONDITION `PUSH_PLATFORM_UNAVAILABLE`. A provider also checks a
    /// registration before it is stored (UnifiedPush's discovery GET).
    pub providers: HashMap<Platform, Arc<dyn PushProvider>>,
    /// Production mode: Web Push and webhook URLs must not point at private, loopback or
    /// link-local addresses.
    pub production: bool,
    /// Presence's delivery state and the message service's previews.
    pub upstream: Arc<dyn upstream::Upstream>,
    /// Delivery timing.
    pub settings: NotificationSettings,
}

/// A running NotificationService: its dispatcher started, its server and consumers to add.
pub struct Notification {
    deps: NotificationDeps,
    pipeline: pipeline::Pipeline,
}

impl Notification {
    /// Starts the dispatcher, the channel fan-out worker and the receipt listener on `tasks`
    /// (until `shutdown`; the caller waits for `tasks` before closing the database).
    pub fn start(deps: NotificationDeps, shutdown: CancellationToken, tasks: &TaskTracker) -> Self {
        let wake = Arc::new(Notify::new());
        let fanout = Arc::new(Notify::new());
        let pipeline = pipeline::Pipeline {
            upstream: deps.upstream.clone(),
            job_expiry: deps.settings.job_expiry,
            badge_interval: deps.settings.badge_interval,
            wake: wake.clone(),
            fanout: fanout.clone(),
        };
        tasks.spawn(pipeline::fanout::run(
            pipeline.clone(),
            deps.store.database().clone(),
            deps.settings.fanout_chunk,
            fanout,
            shutdown.clone(),
        ));
        let settings = &deps.settings;
        let dispatcher = dispatch::Dispatcher::new(
            deps.store.clone(),
            deps.upstream.clone(),
            deps.providers.clone(),
            dispatch::DispatchSettings {
                recheck_delay: settings.recheck_delay,
                claim_lease: settings.claim_lease,
                poll_every: settings.poll_every,
                batch: settings.dispatch_batch,
                concurrency: settings.dispatch_concurrency,
                credential_pause: settings.credential_pause,
            },
            wake,
        );
        tasks.spawn(receipts::listen(
            deps.bus.clone(),
            deps.store.database().clone(),
            shutdown.clone(),
        ));
        tasks.spawn(dispatcher.run(shutdown));
        Self { deps, pipeline }
    }

    /// The durable consumers of the pipeline (run them on notification's database).
    pub fn consumers(&self) -> Vec<(ConsumerSpec, Arc<dyn EventHandler>)> {
        self.pipeline.consumers()
    }

    /// The NotificationService server, refusing request messages over `max_request_bytes`.
    pub fn service(&self, max_request_bytes: usize) -> NotificationServiceServer<NotificationApi> {
        let tokens = tokens::Tokens::with_providers(
            self.deps.store.clone(),
            Limits::new(self.deps.cache.clone()),
            self.deps.providers.clone(),
            self.deps.production,
        );
        NotificationServiceServer::new(NotificationApi::new(tokens, self.deps.store.clone()))
            .max_decoding_message_size(max_request_bytes)
    }
}

/// NotificationService's migrations for both backends.
pub fn migrations() -> echo_store::Migrations {
    echo_store::Migrations::new(
        "notification",
        sqlx::migrate!("../../migrations/postgres/notification"),
        sqlx::migrate!("../../migrations/sqlite/notification"),
    )
}
