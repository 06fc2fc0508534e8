//! Reactions and pins.

use echo_proto::echo::message::v1 as pb;
use tonic::{Request, Status};

use super::{MessageApi, Reply};

pub(super) async fn add_reaction(
    _api: &MessageApi,
    _request: Request<pb::AddReactionRequest>,
) -> Reply<pb::AddReactionResponse> {
    Err(Status::unimplemented("AddReaction is not built yet"))
}

pub(super) async fn remove_reaction(
    _api: &MessageApi,
    _request: Request<pb::RemoveReactionRequest>,
) -> Reply<pb::RemoveReactionResponse> {
    Err(Status::unimplemented("RemoveReaction is not built yet"))
}

pub(super) async fn list_reactions(
    _api: &MessageApi,
    _request: Request<pb::ListReactionsRequest>,
) -> Reply<pb::ListReactionsResponse> {
    Err(Status::unimplemented("ListReactions is not built yet"))
}

pub(super) async fn pin_message(
    _api: &MessageApi,
    _request: Request<pb::PinMessageRequest>,
) -> Reply<pb::PinMessageResponse> {
    Err(Status::unimplemented("PinMessage is not built yet"))
}

pub(super) async fn unpin_message(
    _api: &MessageApi,
    _request: Request<pb::UnpinMessageRequest>,
) -> Reply<pb::UnpinMessageResponse> {
    Err(Status::unimplemented("UnpinMessage is not built yet"))
}

pub(super) async fn list_pins(
    _api: &MessageApi,
    _request: Request<pb::ListPinsRequest>,
) -> Reply<pb::ListPinsResponse> {
    Err(Status::unimplemented("ListPins is not built yet"))
}
