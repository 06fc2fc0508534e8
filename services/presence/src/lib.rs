//! PresenceService: per-device presence with heartbeats, statuses and watch streams (DESIGN §9).
//!
//! Not implemented yet: every RPC answers UNIMPLEMENTED through the generated default stubs,
//! which is honest only while its issue ("presence (after live delivery)") is open. The platform around it (its
//! database, outbox, health, reflection and serving) is already live.

use echo_proto::echo::presence::v1::presence_service_server::{
    PresenceService, PresenceServiceServer,
};

/// The PresenceService handlers.
#[derive(Debug, Default)]
pub struct PresenceServiceApi;

#[tonic::async_trait]
impl PresenceService for PresenceServiceApi {}

/// The PresenceService server, refusing request messages over `max_request_bytes`.
pub fn service(max_request_bytes: usize) -> PresenceServiceServer<PresenceServiceApi> {
    PresenceServiceServer::new(PresenceServiceApi).max_decoding_message_size(max_request_bytes)
}
