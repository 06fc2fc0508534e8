//! Stored values as their `echo.message.v1` messages.

use echo_proto::echo::message::v1 as pb;

use crate::events::timestamp;
use crate::store::Message;
use echo_ids::UserId;

/// A message as `reader` sees it before what lives beside it (reactions, pins, deletion for
/// the reader; see `crate::reading`): the idempotency key only for the sender's own user.
pub fn message_for(message: &Message, reader: UserId) -> pb::Message {
    let mut seen = self::message(message);
    if message.sender_id != reader {
        seen.client_message_id.clear();
    }
    seen
}

/// A message as stored, before any reader's view of it (events start from this).
pub fn message(message: &Message) -> pb::Message {
    let state = if message.deleted_at.is_some() {
        pb::MessageState::DeletedForEveryone
    } else {
        pb::MessageState::Active
    };
    pb::Message {
        message_id: message.id.to_string(),
        conversation_id: message.conversation_id.to_string(),
        seq: message.seq,
        sender_user_id: message.sender_id.to_string(),
        sender_device_id: message.sender_device_id.to_string(),
        client_message_id: message.client_message_id.clone(),
        content: message.content.clone(),
        created_at: Some(timestamp(message.created_at)),
        edited_at: message.edited_at.map(timestamp),
        edit_count: message.edit_count,
        state: state.into(),
        deleted_at: message.deleted_at.map(timestamp),
        reply_to_message_id: message
            .reply_to_message_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        thread_root_message_id: message
            .thread_root_message_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        reply_count: message.reply_count,
        reactions: Vec::new(),
        pinned: false,
    }
}
