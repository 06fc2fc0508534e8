//! The caller's own state in a conversation (private settings, read watermark, delivery
//! receipts) and the receipts of others.

use echo_proto::echo::message::v1 as pb;
use tonic::{Request, Status};

use super::{MessageApi, Reply};

pub(super) async fn update_member_settings(
    _api: &MessageApi,
    _request: Request<pb::UpdateMemberSettingsRequest>,
) -> Reply<pb::UpdateMemberSettingsResponse> {
    Err(Status::unimplemented(
        "UpdateMemberSettings is not built yet",
    ))
}

pub(super) async fn mark_read(
    _api: &MessageApi,
    _request: Request<pb::MarkReadRequest>,
) -> Reply<pb::MarkReadResponse> {
    Err(Status::unimplemented("MarkRead is not built yet"))
}

pub(super) async fn mark_delivered(
    _api: &MessageApi,
    _request: Request<pb::MarkDeliveredRequest>,
) -> Reply<pb::MarkDeliveredResponse> {
    Err(Status::unimplemented("MarkDelivered is not built yet"))
}

pub(super) async fn get_read_state(
    _api: &MessageApi,
    _request: Request<pb::GetReadStateRequest>,
) -> Reply<pb::GetReadStateResponse> {
    Err(Status::unimplemented("GetReadState is not built yet"))
}

pub(super) async fn list_receipts(
    _api: &MessageApi,
    _request: Request<pb::ListReceiptsRequest>,
) -> Reply<pb::ListReceiptsResponse> {
    Err(Status::unimplemented("ListReceipts is not built yet"))
}
