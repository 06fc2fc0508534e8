//! Editing and deleting messages.

use echo_proto::echo::message::v1 as pb;
use echo_runtime::Check;
use tonic::{Request, Response};

use super::{MessageApi, Reply, actor, finish, message_target};
use crate::edits::{ContentPatch, DeleteScope, EDITABLE_PATHS};
use crate::events::timestamp;

pub(super) async fn edit_message(
    api: &MessageApi,
    request: Request<pb::EditMessageRequest>,
) -> Reply<pb::EditMessageResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let (conversation_id, message_id) =
        message_target(&mut check, &body.conversation_id, &body.message_id);
    let paths = check.mask(body.update_mask, &EDITABLE_PATHS);
    finish(check)?;
    // The resulting content is checked against the message rules once merged (in the domain).
    let patch = ContentPatch::from_mask(body.content.unwrap_or_default(), &paths);
    let message = api
        .conversations
        .edit(actor, conversation_id, message_id, &patch)
        .await?;
    let seen = api.conversations.present(actor.user_id, &[message]).await?;
    Ok(Response::new(pb::EditMessageResponse {
        message: seen.into_iter().next(),
    }))
}

pub(super) async fn get_edit_history(
    api: &MessageApi,
    request: Request<pb::GetEditHistoryRequest>,
) -> Reply<pb::GetEditHistoryResponse> {
    let actor = actor(&request)?;
    let mut check = Check::new();
    let body = request.get_ref();
    let (conversation_id, message_id) =
        message_target(&mut check, &body.conversation_id, &body.message_id);
    finish(check)?;
    let versions = api
        .conversations
        .edit_history(actor.user_id, conversation_id, message_id)
        .await?;
    Ok(Response::new(pb::GetEditHistoryResponse {
        edits: versions
            .into_iter()
            .map(|version| pb::MessageEdit {
                content: Some(version.content),
                version: version.version,
                created_at: Some(timestamp(version.created_at)),
            })
            .collect(),
    }))
}

pub(super) async fn delete_message(
    api: &MessageApi,
    request: Request<pb::DeleteMessageRequest>,
) -> Reply<pb::DeleteMessageResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let (conversation_id, message_id) =
        message_target(&mut check, &body.conversation_id, &body.message_id);
    let scope = match pb::DeleteScope::try_from(body.scope) {
        Ok(pb::DeleteScope::ForMe) => Some(DeleteScope::ForMe),
        Ok(pb::DeleteScope::ForEveryone) => Some(DeleteScope::ForEveryone),
        Ok(pb::DeleteScope::Unspecified) | Err(_) => {
            check.push(
                "scope",
                "must be DELETE_SCOPE_FOR_ME or DELETE_SCOPE_FOR_EVERYONE",
            );
            None
        }
    };
    finish(check)?;
    let message = api
        .conversations
        .delete(actor, conversation_id, message_id, scope.expect("checked"))
        .await?;
    let seen = api.conversations.present(actor.user_id, &[message]).await?;
    Ok(Response::new(pb::DeleteMessageResponse {
        message: seen.into_iter().next(),
    }))
}
