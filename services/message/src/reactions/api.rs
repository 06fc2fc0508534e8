//! Reactions and pins (reaction_api.proto): parse and validate, take the caller, call the
//! journey, map the result.

use echo_ids::{ConversationId, MessageId};
use echo_proto::echo::message::v1 as pb;
use echo_runtime::Check;
use tonic::{Request, Response, Status};

use crate::api::{
    MessageApi, Reply, actor, conversation_page, finish, message_target, only_target,
};
use crate::convert::{reaction_count, seen};
use crate::events::timestamp;
use crate::reactions::{self, PIN_PAGE, Pinned, REACTION_PAGE, Toggle};
use crate::store::Actor;

pub(crate) async fn add_reaction(
    api: &MessageApi,
    request: Request<pb::AddReactionRequest>,
) -> Reply<pb::AddReactionResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let target = (body.conversation_id, body.message_id, body.emoji);
    let reactions = react(api, actor, target, Toggle::Add).await?;
    Ok(Response::new(pb::AddReactionResponse { reactions }))
}

pub(crate) async fn remove_reaction(
    api: &MessageApi,
    request: Request<pb::RemoveReactionRequest>,
) -> Reply<pb::RemoveReactionResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let target = (body.conversation_id, body.message_id, body.emoji);
    let reactions = react(api, actor, target, Toggle::Remove).await?;
    Ok(Response::new(pb::RemoveReactionResponse { reactions }))
}

/// AddReaction and RemoveReaction past their request types: the message and emoji
/// (`conversation_id`, `message_id`, `emoji`) checked, the reactions after the write.
async fn react(
    api: &MessageApi,
    actor: Actor,
    (conversation_id, message_id, emoji): (String, String, String),
    toggle: Toggle,
) -> Result<Vec<pb::ReactionCount>, Status> {
    let mut check = Check::new();
    let (conversation, message): (ConversationId, MessageId) =
        message_target(&mut check, &conversation_id, &message_id);
    let emoji = reactions::emoji(&mut check, "emoji", &emoji);
    finish(check)?;
    let tallies = api
        .conversations
        .react(actor, conversation, message, emoji, toggle)
        .await?;
    Ok(tallies.into_iter().map(reaction_count).collect())
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
    let body = request.get_ref();
    let (conversation, message) = only_target(&body.conversation_id, &body.message_id)?;
    let pinned = api.conversations.pin(actor, conversation, message).await?;
    Ok(Response::new(pb::PinMessageResponse {
        pin: Some(pinned_message(pinned)),
    }))
}

pub(crate) async fn unpin_message(
    api: &MessageApi,
    request: Request<pb::UnpinMessageRequest>,
) -> Reply<pb::UnpinMessageResponse> {
    let actor = actor(&request)?;
    let body = request.get_ref();
    let (conversation, message) = only_target(&body.conversation_id, &body.message_id)?;
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
    let body = request.get_ref();
    let (conversation, page) = conversation_page(
        &body.conversation_id,
        body.page_size,
        &body.page_token,
        PIN_PAGE,
    )?;
    let (pins, next_page_token) = api
        .conversations
        .pins(actor.user_id, conversation, &page)
        .await?;
    Ok(Response::new(pb::ListPinsResponse {
        pins: pins.into_iter().map(pinned_message).collect(),
        next_page_token,
    }))
}

/// A pin and its message as the caller sees it.
fn pinned_message(pinned: Pinned) -> pb::PinnedMessage {
    pb::PinnedMessage {
        pinned_by_user_id: pinned.pin.pinned_by.to_string(),
        pinned_at: Some(timestamp(pinned.pin.pinned_at)),
        message: Some(seen(pinned.message)),
    }
}
