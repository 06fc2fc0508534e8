//! Reactions and pins (reaction_api.proto): parse and validate, take the caller, call the
//! journey, map the result.

use echo_proto::echo::message::v1 as pb;
use echo_runtime::Check;
use tonic::{Request, Response};

use crate::api::{MessageApi, Reply, actor, finish, message_target};
use crate::events::timestamp;
use crate::reactions::{self, PIN_PAGE, REACTION_PAGE};

pub(crate) async fn add_reaction(
    api: &MessageApi,
    request: Request<pb::AddReactionRequest>,
) -> Reply<pb::AddReactionResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let (conversation, message) =
        message_target(&mut check, &body.conversation_id, &body.message_id);
    let emoji = reactions::emoji(&mut check, "emoji", &body.emoji);
    finish(check)?;
    let reactions = api
        .conversations
        .add_reaction(actor, conversation, message, emoji)
        .await?;
    Ok(Response::new(pb::AddReactionResponse { reactions }))
}

pub(crate) async fn remove_reaction(
    api: &MessageApi,
    request: Request<pb::RemoveReactionRequest>,
) -> Reply<pb::RemoveReactionResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let (conversation, message) =
        message_target(&mut check, &body.conversation_id, &body.message_id);
    let emoji = reactions::emoji(&mut check, "emoji", &body.emoji);
    finish(check)?;
    let reactions = api
        .conversations
        .remove_reaction(actor, conversation, message, emoji)
        .await?;
    Ok(Response::new(pb::RemoveReactionResponse { reactions }))
}

pub(crate) async fn list_reactions(
    api: &MessageApi,
    request: Request<pb::ListReactionsRequest>,
) -> Reply<pb::ListReactionsResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let (conversation, message) =
        message_target(&mut check, &body.conversation_id, &body.message_id);
    let filter =
        (!body.emoji.is_empty()).then(|| reactions::emoji(&mut check, "emoji", &body.emoji));
    let page = check.page(body.page_size, &body.page_token, REACTION_PAGE);
    finish(check)?;
    let (rows, next_page_token) = api
        .conversations
        .reactions(actor.user_id, conversation, message, filter, &page)
        .await?;
    Ok(Response::new(pb::ListReactionsResponse {
        reactions: rows
            .into_iter()
            .map(|r| pb::Reaction {
                user_id: r.user_id.to_string(),
                emoji: r.emoji,
                created_at: Some(timestamp(r.created_at)),
            })
            .collect(),
        next_page_token,
    }))
}

pub(crate) async fn pin_message(
    api: &MessageApi,
    request: Request<pb::PinMessageRequest>,
) -> Reply<pb::PinMessageResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let (conversation, message) =
        message_target(&mut check, &body.conversation_id, &body.message_id);
    finish(check)?;
    let pin = api.conversations.pin(actor, conversation, message).await?;
    Ok(Response::new(pb::PinMessageResponse { pin: Some(pin) }))
}

pub(crate) async fn unpin_message(
    api: &MessageApi,
    request: Request<pb::UnpinMessageRequest>,
) -> Reply<pb::UnpinMessageResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let (conversation, message) =
        message_target(&mut check, &body.conversation_id, &body.message_id);
    finish(check)?;
    api.conversations
        .unpin(actor, conversation, message)
        .await?;
    Ok(Response::new(pb::UnpinMessageResponse {}))
}

pub(crate) async fn list_pins(
    api: &MessageApi,
    request: Request<pb::ListPinsRequest>,
) -> Reply<pb::ListPinsResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let conversation = check.id_of("conversation_id", &body.conversation_id);
    let page = check.page(body.page_size, &body.page_token, PIN_PAGE);
    finish(check)?;
    let (pins, next_page_token) = api
        .conversations
        .pins(actor.user_id, conversation.expect("checked"), &page)
        .await?;
    Ok(Response::new(pb::ListPinsResponse {
        pins,
        next_page_token,
    }))
}
