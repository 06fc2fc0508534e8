//! Messages (message_api.proto): sending and reading, threads, edits and deletion, and
//! full-text search. Each handler parses and validates, takes the caller, calls the journey
//! and maps the result.

use super::edits::{ContentPatch, DeleteScope, EDITABLE_PATHS};
use super::history::Anchor;
use super::search::{SEARCH_PAGE, SearchPosition, SearchQuery, THREAD_PAGE, ThreadPosition};
use crate::api::{
    MessageApi, Reply, actor, finish, message_target, only_target, optional_id, presented,
};
use crate::events::timestamp;
use crate::rules::{self, MESSAGE_PAGE};
use crate::store::NewMessage;
use echo_ids::MessageId;
use echo_proto::echo::message::v1 as pb;
use echo_runtime::Check;
use sha2::{Digest, Sha256};
use tonic::{Request, Response};

pub(crate) async fn send_message(
    api: &MessageApi,
    request: Request<pb::SendMessageRequest>,
) -> Reply<pb::SendMessageResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let conversation_id = check.id_of("conversation_id", &body.conversation_id);
    let client_message_id =
        rules::client_key(&mut check, "client_message_id", &body.client_message_id);
    let content = body.content.unwrap_or_default();
    let mentioned = rules::content(&mut check, "content", &content);
    let reply_to = optional_id(&mut check, "reply_to_message_id", &body.reply_to_message_id);
    let thread_root = optional_id(
        &mut check,
        "thread_root_message_id",
        &body.thread_root_message_id,
    );
    finish(check)?;
    let new = NewMessage {
        id: MessageId::new_v7(),
        conversation_id: conversation_id.expect("checked"),
        client_message_id,
        request_hash: request_hash(&content, reply_to, thread_root),
        content,
        mentioned,
        reply_to_message_id: reply_to,
        thread_root_message_id: thread_root,
    };
    let message = api.conversations.send(actor, new).await?;
    Ok(Response::new(pb::SendMessageResponse {
        message: Some(crate::convert::seen(message)),
    }))
}

pub(crate) async fn get_message(
    api: &MessageApi,
    request: Request<pb::GetMessageRequest>,
) -> Reply<pb::GetMessageResponse> {
    let actor = actor(&request)?;
    let body = request.get_ref();
    let (conversation_id, message_id) = only_target(&body.conversation_id, &body.message_id)?;
    let message = api
        .conversations
        .message(actor.user_id, conversation_id, message_id)
        .await?;
    let seen = presented(api, actor.user_id, &[message]).await?;
    Ok(Response::new(pb::GetMessageResponse {
        message: seen.into_iter().next(),
    }))
}

pub(crate) async fn list_messages(
    api: &MessageApi,
    request: Request<pb::ListMessagesRequest>,
) -> Reply<pb::ListMessagesResponse> {
    use pb::list_messages_request::Anchor as Wire;
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let conversation_id = check.id_of("conversation_id", &body.conversation_id);
    let anchor = match body.anchor {
        None => Anchor::Latest,
        Some(Wire::BeforeSeq(seq)) if seq > 0 => Anchor::Before(seq),
        Some(Wire::AfterSeq(seq)) if seq >= 0 => Anchor::After(seq),
        Some(Wire::AroundMessageId(id)) => match check.id_of("around_message_id", &id) {
            Some(id) => Anchor::Around(id),
            None => Anchor::Latest,
        },
        Some(Wire::BeforeSeq(_)) => {
            check.push("before_seq", "must be above 0");
            Anchor::Latest
        }
        Some(Wire::AfterSeq(_)) => {
            check.push("after_seq", "must not be negative");
            Anchor::Latest
        }
    };
    let page = check.page(body.page_size, &body.page_token, MESSAGE_PAGE);
    finish(check)?;
    let history = api
        .conversations
        .history(
            actor.user_id,
            conversation_id.expect("checked"),
            anchor,
            &page,
            body.top_level_only,
        )
        .await?;
    Ok(Response::new(pb::ListMessagesResponse {
        messages: presented(api, actor.user_id, &history.messages).await?,
        next_page_token: history.next_page_token,
        has_more_before: history.has_more_before,
        has_more_after: history.has_more_after,
    }))
}

/// What a retry must repeat exactly: the content, the reply target and the thread.
fn request_hash(
    content: &pb::MessageContent,
    reply_to: Option<MessageId>,
    thread_root: Option<MessageId>,
) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(prost::Message::encode_to_vec(content));
    for id in [reply_to, thread_root] {
        hash.update(id.map_or([0; 16], |id| id.as_uuid().into_bytes()));
    }
    hash.finalize().into()
}

pub(crate) async fn edit_message(
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
    let seen = presented(api, actor.user_id, &[message]).await?;
    Ok(Response::new(pb::EditMessageResponse {
        message: seen.into_iter().next(),
    }))
}

pub(crate) async fn get_edit_history(
    api: &MessageApi,
    request: Request<pb::GetEditHistoryRequest>,
) -> Reply<pb::GetEditHistoryResponse> {
    let actor = actor(&request)?;
    let body = request.get_ref();
    let (conversation_id, message_id) = only_target(&body.conversation_id, &body.message_id)?;
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

pub(crate) async fn delete_message(
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
    let seen = presented(api, actor.user_id, &[message]).await?;
    Ok(Response::new(pb::DeleteMessageResponse {
        message: seen.into_iter().next(),
    }))
}

pub(crate) async fn list_thread(
    api: &MessageApi,
    request: Request<pb::ListThreadRequest>,
) -> Reply<pb::ListThreadResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let conversation = check.id_of("conversation_id", &body.conversation_id);
    let root = check.id_of("root_message_id", &body.root_message_id);
    let page = check.page::<ThreadPosition>(body.page_size, &body.page_token, THREAD_PAGE);
    finish(check)?;
    let thread = api
        .conversations
        .thread(
            actor.user_id,
            conversation.expect("checked"),
            root.expect("checked"),
            &page,
        )
        .await?;
    let root = presented(api, actor.user_id, std::slice::from_ref(&thread.root)).await?;
    Ok(Response::new(pb::ListThreadResponse {
        root: root.into_iter().next(),
        replies: presented(api, actor.user_id, &thread.replies).await?,
        next_page_token: thread.next_page_token,
    }))
}

pub(crate) async fn search_messages(
    api: &MessageApi,
    request: Request<pb::SearchMessagesRequest>,
) -> Reply<pb::SearchMessagesResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let query = check.parse("query", SearchQuery::parse(&body.query));
    let conversation = optional_id(&mut check, "conversation_id", &body.conversation_id);
    let page = check.page::<SearchPosition>(body.page_size, &body.page_token, SEARCH_PAGE);
    finish(check)?;
    let query = query.expect("checked");
    let (hits, next_page_token) = api
        .conversations
        .search(actor, &query, conversation, &page)
        .await?;
    let messages: Vec<_> = hits.iter().map(|hit| hit.message.clone()).collect();
    let seen = presented(api, actor.user_id, &messages).await?;
    let results = seen
        .into_iter()
        .zip(hits)
        .map(|(message, hit)| pb::SearchResult {
            message: Some(message),
            snippet: hit.snippet,
        })
        .collect();
    Ok(Response::new(pb::SearchMessagesResponse {
        results,
        next_page_token,
    }))
}
