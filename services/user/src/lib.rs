//! UserService: profiles, usernames, search, contacts and contact requests, blocking, and
//! privacy settings.
//!
//! Layout: `api` parses and maps; `people` holds the journeys and decides who may see and do
//! what (with `visibility` and `rules`); `store` is the storage seam with its PostgreSQL and
//! SQLite implementations; `events` builds what the service publishes (blocks, profile and
//! privacy changes, contact-list changes) and applies auth's account events (a profile is born
//! from `user_registered` and erased on `user_deleted`).

pub mod api;
pub mod error;
pub mod events;
pub mod people;
pub mod rules;
pub mod store;
pub mod visibility;

use std::sync::Arc;

use echo_bus::ConsumerSpec;
use echo_bus::consumer::EventHandler;
use echo_cache::{Cache, Limits};
use echo_proto::echo::user::v1::user_service_server::UserServiceServer;

pub use api::UserApi;

/// Everything UserService needs, built by the binary (or the testkit).
pub struct UserDeps {
    /// Storage (writes its events to the service's outbox).
    pub store: Arc<store::UserStore>,
    /// Rate limits.
    pub cache: Arc<dyn Cache>,
}

/// The UserService server, refusing request messages over `max_request_bytes`.
pub fn service(deps: UserDeps, max_request_bytes: usize) -> UserServiceServer<UserApi> {
    let people = people::People {
        store: deps.store,
        limits: Limits::new(deps.cache),
    };
    UserServiceServer::new(UserApi::new(Arc::new(people)))
        .max_decoding_message_size(max_request_bytes)
}

/// The durable consumers UserService runs, with their handlers: auth's account events.
pub fn consumers(store: Arc<store::UserStore>) -> Vec<(ConsumerSpec, Arc<dyn EventHandler>)> {
    vec![(
        events::accounts_consumer(),
        Arc::new(events::AccountEvents::new(store)),
    )]
}

/// UserService's migrations for both backends.
pub fn migrations() -> echo_store::Migrations {
    echo_store::Migrations::new(
        "user",
        sqlx::migrate!("../../migrations/postgres/user"),
        sqlx::migrate!("../../migrations/sqlite/user"),
    )
}
