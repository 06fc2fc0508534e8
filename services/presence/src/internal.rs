//! PresenceInternalService (spec §0.2): delivery state for other Echo services — which devices
//! are ONLINE and the manual status — with no privacy rules applied. Served on the internal
//! listener only, behind the service credential; the public port refuses the path.

use echo_proto::echo::presence::v1 as pb;
use echo_proto::echo::presence::v1::presence_internal_service_server::{
    PresenceInternalService, PresenceInternalServiceServer,
};
use tonic::{Request, Response, Status};

use crate::hints::timestamp;
use crate::status::Manual;
use crate::tracker::Tracker;

/// Most users one GetDeliveryState reads.
pub const MAX_USERS: usize = 1000;

/// The internal handlers.
#[derive(Clone)]
pub struct PresenceInternalApi {
    tracker: Tracker,
}

impl PresenceInternalApi {
    /// Handlers over `tracker`.
    pub fn new(tracker: Tracker) -> Self {
        Self { tracker }
    }

    /// The server, refusing request messages over `max_request_bytes`.
    pub fn server(self, max_request_bytes: usize) -> PresenceInternalServiceServer<Self> {
        PresenceInternalServiceServer::new(self).max_decoding_message_size(max_request_bytes)
    }
}

fn manual_pb(manual: Option<Manual>) -> pb::PresenceStatus {
    match manual {
        None => pb::PresenceStatus::Unspecified,
        Some(Manual::Away) => pb::PresenceStatus::Away,
        Some(Manual::Dnd) => pb::PresenceStatus::Dnd,
        Some(Manual::Invisible) => pb::PresenceStatus::Invisible,
    }
}

#[tonic::async_trait]
impl PresenceInternalService for PresenceInternalApi {
    async fn get_delivery_state(
        &self,
        request: Request<pb::GetDeliveryStateRequest>,
    ) -> Result<Response<pb::GetDeliveryStateResponse>, Status> {
        let ids = crate::api::user_ids(&request.get_ref().user_ids, MAX_USERS)?;
        let states = self.tracker.read(&ids).await.map_err(Status::from)?;
        let states = states
            .into_iter()
            .map(|state| pb::DeliveryState {
                user_id: state.user_id.to_string(),
                online_device_ids: state.online_devices().map(|d| d.to_string()).collect(),
                manual_status: manual_pb(state.manual.map(|m| m.status)) as i32,
                clears_at: state.manual.and_then(|m| m.clears_at).map(timestamp),
            })
            .collect();
        Ok(Response::new(pb::GetDeliveryStateResponse { states }))
    }
}
