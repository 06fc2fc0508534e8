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

use echo_bus::consumer::EventHandler;
use echo_bus::{ConsumerSpec, Outbox};
use echo_cache::{Cache, Limits};
use echo_proto::echo::user::v1::user_service_server::UserServiceServer;

pub use api::UserApi;

/// Everything UserService needs, built by the binary (or a test).
pub struct UserDeps {
    /// The service's outbox; its database is the service's own.
    pub outbox: Outbox,
    /// Rate limits.
    pub cache: Arc<dyn Cache>,
}

/// A UserService instance (it runs no background work of its own: its consumers are run by
/// the binary).
#[derive(Clone)]
pub struct User {
    people: Arc<people::People>,
    store: Arc<store::UserStore>,
}

impl User {
    /// The instance: its store on the outbox's database.
    pub fn start(deps: UserDeps) -> Self {
        let store = store::for_database(deps.outbox.database(), deps.outbox.clone());
        let people = people::People {
            store: store.clone(),
            limits: Limits::new(deps.cache),
        };
        Self {
            people: Arc::new(people),
            store,
        }
    }

    /// The UserService server, refusing request messages over `max_request_bytes`.
    pub fn service(&self, max_request_bytes: usize) -> UserServiceServer<UserApi> {
        UserServiceServer::new(UserApi::new(self.people.clone()))
            .max_decoding_message_size(max_request_bytes)
    }

    /// The durable consumers UserService runs, with their handlers: auth's account events.
    pub fn consumers(&self) -> Vec<(ConsumerSpec, Arc<dyn EventHandler>)> {
        vec![(
            events::accounts_consumer(),
            Arc::new(events::AccountEvents::new(self.store.clone())),
        )]
    }
}

/// UserService's migrations for both backends.
pub fn migrations() -> echo_store::Migrations {
    echo_store::Migrations::new(
        "user",
        sqlx::migrate!("../../migrations/postgres/user"),
        sqlx::migrate!("../../migrations/sqlite/user"),
    )
}
