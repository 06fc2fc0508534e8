//! Stored and seen values as their `echo.message.v1` messages: the one mapping of a message,
//! shared by every feature's `api` (a message is answered by most RPCs), the events and live
//! delivery.

use echo_proto::echo::message::v1 as pb;

use crate::events::timestamp;
use crate::reading::Seen;
use crate::store::{Message, ReactionTally};
use echo_ids::UserId;

/// A message as its reader sees it (see `crate::reading`).
pub fn seen(seen: Seen) -> pb::Message {
    let mut out = message_for(&seen.message, seen.reader);
    out.pinned = seen.pinned;
    out.reactions = seen.reactions.into_iter().map(reaction_count).collect();
    if let Some(at) = seen.deleted_for_reader {
        out.state = pb::MessageState::DeletedForMe.into();
        out.deleted_at = Some(timestamp(at));
        out.content = None;
        out.reactions.clear();
    }
    out
}

/// One reaction tally as messages carry it.
pub fn reaction_count(tally: ReactionTally) -> pb::ReactionCount {
    pb::ReactionCount {
        emoji: tally.emoji,
        count: tally.count,
        reacted_by_me: tally.reacted_by_reader,
    }
}

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
        expires_at: message.expires_at.map(timestamp),
    }
}
