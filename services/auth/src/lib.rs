//! AuthService: accounts, phone verification by OTP, passwords, access and refresh tokens, sessions and devices, signing keys (DESIGN §5).
//!
//! Not implemented yet: every RPC answers UNIMPLEMENTED through the generated default stubs,
//! which is honest only while its issue ("AuthService end to end, the authn layer, and a split-mode mesh") is open. The platform around it (its
//! database, outbox, health, reflection and serving) is already live.

use echo_proto::echo::auth::v1::auth_service_server::{AuthService, AuthServiceServer};

/// The AuthService handlers.
#[derive(Debug, Default)]
pub struct AuthServiceApi;

#[tonic::async_trait]
impl AuthService for AuthServiceApi {}

/// The AuthService server, refusing request messages over `max_request_bytes`.
pub fn service(max_request_bytes: usize) -> AuthServiceServer<AuthServiceApi> {
    AuthServiceServer::new(AuthServiceApi).max_decoding_message_size(max_request_bytes)
}
