//! Editing and deleting messages.

use echo_proto::echo::message::v1 as pb;
use tonic::{Request, Status};

use super::{MessageApi, Reply};

pub(super) async fn edit_message(
    _api: &MessageApi,
    _request: Request<pb::EditMessageRequest>,
) -> Reply<pb::EditMessageResponse> {
    Err(Status::unimplemented("EditMessage is not built yet"))
}

pub(super) async fn get_edit_history(
    _api: &MessageApi,
    _request: Request<pb::GetEditHistoryRequest>,
) -> Reply<pb::GetEditHistoryResponse> {
    Err(Status::unimplemented("GetEditHistory is not built yet"))
}

pub(super) async fn delete_message(
    _api: &MessageApi,
    _request: Request<pb::DeleteMessageRequest>,
) -> Reply<pb::DeleteMessageResponse> {
    Err(Status::unimplemented("DeleteMessage is not built yet"))
}
