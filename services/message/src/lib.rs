//! MessageService: conversations, members, invites, messages, reactions, pins, read state, search and live delivery (DESIGN §6, §7).
//!
//! Not implemented yet: every RPC answers UNIMPLEMENTED through the generated default stubs,
//! which is honest only while its issue ("MessageService core, then Live delivery") is open. The platform around it (its
//! database, outbox, health, reflection and serving) is already live.

use echo_proto::echo::message::v1::message_service_server::{MessageService, MessageServiceServer};

/// The MessageService handlers.
#[derive(Debug, Default)]
pub struct MessageServiceApi;

#[tonic::async_trait]
impl MessageService for MessageServiceApi {}

/// The MessageService server, refusing request messages over `max_request_bytes`.
pub fn service(max_request_bytes: usize) -> MessageServiceServer<MessageServiceApi> {
    MessageServiceServer::new(MessageServiceApi).max_decoding_message_size(max_request_bytes)
}
