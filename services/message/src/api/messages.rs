//! Sending and reading messages.

use echo_proto::echo::message::v1 as pb;
use tonic::{Request, Response};
use uuid::Uuid;

use echo_runtime::Check;
use sha2::{Digest, Sha256};

use super::{MessageApi, Reply, actor, finish, message_target, optional_id};
use crate::conversations::Anchor;
use crate::rules::{self, MESSAGE_PAGE};
use crate::store::NewMessage;

pub(super) async fn send_message(
    api: &MessageApi,
    request: Request<pb::SendMessageRequest>,
) -> Reply<pb::SendMessageResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let conversation_id = check.id("conversation_id", &body.conversation_id);
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
        id: Uuid::now_v7(),
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
        message: Some(message),
    }))
}

pub(super) async fn get_message(
    api: &MessageApi,
    request: Request<pb::GetMessageRequest>,
) -> Reply<pb::GetMessageResponse> {
    let actor = actor(&request)?;
    let mut check = Check::new();
    let body = request.get_ref();
    let (conversation_id, message_id) =
        message_target(&mut check, &body.conversation_id, &body.message_id);
    finish(check)?;
    let message = api
        .conversations
        .message(actor.user_id, conversation_id, message_id)
        .await?;
    let seen = api.conversations.present(actor.user_id, &[message]).await?;
    Ok(Response::new(pb::GetMessageResponse {
        message: seen.into_iter().next(),
    }))
}

pub(super) async fn list_messages(
    api: &MessageApi,
    request: Request<pb::ListMessagesRequest>,
) -> Reply<pb::ListMessagesResponse> {
    use pb::list_messages_request::Anchor as Wire;
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let conversation_id = check.id("conversation_id", &body.conversation_id);
    let anchor = match body.anchor {
        None => Anchor::Latest,
        Some(Wire::BeforeSeq(seq)) if seq > 0 => Anchor::Before(seq),
        Some(Wire::AfterSeq(seq)) if seq >= 0 => Anchor::After(seq),
        Some(Wire::AroundMessageId(id)) => match check.id("around_message_id", &id) {
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
        messages: api
            .conversations
            .present(actor.user_id, &history.messages)
            .await?,
        next_page_token: history.next_page_token,
        has_more_before: history.has_more_before,
        has_more_after: history.has_more_after,
    }))
}

/// What a retry must repeat exactly: the content, the reply target and the thread.
fn request_hash(
    content: &pb::MessageContent,
    reply_to: Option<Uuid>,
    thread_root: Option<Uuid>,
) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(prost::Message::encode_to_vec(content));
    for id in [reply_to, thread_root] {
        hash.update(id.map_or([0; 16], |id| id.into_bytes()));
    }
    hash.finalize().into()
}
