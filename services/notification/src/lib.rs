//! NotificationService: the notification inbox, push tokens and badge counts (DESIGN §9).
//!
//! Not implemented yet: every RPC answers UNIMPLEMENTED through the generated default stubs,
//! which is honest only while its issue ("notifications (after live delivery)") is open. The platform around it (its
//! database, outbox, health, reflection and serving) is already live.

use echo_proto::echo::notification::v1::notification_service_server::{
    NotificationService, NotificationServiceServer,
};

/// The NotificationService handlers.
#[derive(Debug, Default)]
pub struct NotificationServiceApi;

#[tonic::async_trait]
impl NotificationService for NotificationServiceApi {}

/// The NotificationService server, refusing request messages over `max_request_bytes`.
pub fn service(max_request_bytes: usize) -> NotificationServiceServer<NotificationServiceApi> {
    NotificationServiceServer::new(NotificationServiceApi)
        .max_decoding_message_size(max_request_bytes)
}
