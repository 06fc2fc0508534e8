//! Full-text search and threads.

use echo_proto::echo::message::v1 as pb;
use tonic::{Request, Status};

use super::{MessageApi, Reply};

pub(super) async fn list_thread(
    _api: &MessageApi,
    _request: Request<pb::ListThreadRequest>,
) -> Reply<pb::ListThreadResponse> {
    Err(Status::unimplemented("ListThread is not built yet"))
}

pub(super) async fn search_messages(
    _api: &MessageApi,
    _request: Request<pb::SearchMessagesRequest>,
) -> Reply<pb::SearchMessagesResponse> {
    Err(Status::unimplemented("SearchMessages is not built yet"))
}
