//! NotificationService: push tokens, the notification inbox, badge counts and notification
//! settings (DESIGN §9, spec §B).
//!
//! Layout, one folder per feature (STYLE 16): `tokens/` (RegisterPushToken,
//! UnregisterPushToken, ListPushTokens: token formats, the cap and rate limit, replace and
//! move), `inbox/` (ListInbox, MarkInboxRead), `badge.rs` (GetBadgeCount and the counts it
//! reads), `settings/` (Get/UpdateNotificationSettings and quiet hours). Each feature holds its
//! rules, its proto mapping and its statements; `store` is the shared database handle and
//! encodings, `jobs` the push queue's hook, `error` the one error enum, `api` the handlers.
//!
//! Not built yet: the delivery pipeline (spec §B2–§B5: consumers, projections, push jobs and
//! providers). Its tables exist (see the migrations), and the writes it will share with the
//! RPCs live here: [`inbox::store::write_entry`], [`badge::set_counts`], [`badge::set_muted`],
//! [`jobs::cancel_pending`], and [`settings::in_quiet_hours`] for each push.

pub mod api;
pub mod badge;
pub mod error;
pub mod inbox;
pub mod jobs;
pub mod settings;
pub mod store;
pub mod tokens;

use std::collections::HashSet;
use std::sync::Arc;

use echo_cache::{Cache, Limits};
use echo_proto::echo::notification::v1::notification_service_server::NotificationServiceServer;

pub use api::NotificationApi;
pub use error::NotificationError;
pub use store::NotificationStore;
pub use tokens::Platform;

/// Everything NotificationService needs, built by the binary (or a test).
pub struct NotificationDeps {
    /// Notification's database.
    pub store: NotificationStore,
    /// Rate limits (registrations per device).
    pub cache: Arc<dyn Cache>,
    /// Platforms with delivery configured; registering a token for another one answers
    /// FAILED_PRECONDITION `PUSH_PLATFORM_UNAVAILABLE`.
    pub configured: HashSet<Platform>,
    /// Production mode: Web Push and webhook URLs must not point at private, loopback or
    /// link-local addresses.
    pub production: bool,
}

/// The NotificationService server, refusing request messages over `max_request_bytes`.
pub fn service(
    deps: NotificationDeps,
    max_request_bytes: usize,
) -> NotificationServiceServer<NotificationApi> {
    let tokens = tokens::Tokens::new(
        deps.store.clone(),
        Limits::new(deps.cache),
        deps.configured,
        deps.production,
    );
    NotificationServiceServer::new(NotificationApi::new(tokens, deps.store))
        .max_decoding_message_size(max_request_bytes)
}

/// NotificationService's migrations for both backends.
pub fn migrations() -> echo_store::Migrations {
    echo_store::Migrations::new(
        "notification",
        sqlx::migrate!("../../migrations/postgres/notification"),
        sqlx::migrate!("../../migrations/sqlite/notification"),
    )
}
