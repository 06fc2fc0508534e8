//! UserService: profiles, usernames, contacts and contact requests, blocking, privacy settings.
//!
//! Not implemented yet: every RPC answers UNIMPLEMENTED through the generated default stubs,
//! which is honest only while its issue ("UserService: profiles, usernames, contacts, contact requests, blocking, privacy") is open. The platform around it (its
//! database, outbox, health, reflection and serving) is already live.

pub mod store;

use echo_proto::echo::user::v1::user_service_server::{UserService, UserServiceServer};

/// The UserService handlers.
#[derive(Debug, Default)]
pub struct UserServiceApi;

#[tonic::async_trait]
impl UserService for UserServiceApi {}

/// The UserService server, refusing request messages over `max_request_bytes`.
pub fn service(max_request_bytes: usize) -> UserServiceServer<UserServiceApi> {
    UserServiceServer::new(UserServiceApi).max_decoding_message_size(max_request_bytes)
}

/// UserService's migrations for both backends.
pub fn migrations() -> echo_store::Migrations {
    echo_store::Migrations::new(
        "user",
        sqlx::migrate!("../../migrations/postgres/user"),
        sqlx::migrate!("../../migrations/sqlite/user"),
    )
}
