//! The events of messages: builders for their `ConversationEvent` / `UserEvent` kinds
//! (MessageCreated, MessageEdited, MessageDeleted, MessageDeletedForMe). None of them carries
//! content (an edit's new content is fetched with GetMessage), so delete-for-everyone has
//! nothing to scrub in the outbox.

use crate::events::message_snapshot;
use crate::store::Message;
use echo_ids::{ConversationId, MessageId, UserId};
use echo_proto::echo::message::v1 as pb;

/// MessageCreated.
pub fn message_created(message: &Message, mentioned: &[UserId]) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::MessageCreated(pb::MessageCreated {
        message: Some(message_snapshot(message)),
        mentioned_user_ids: mentioned.iter().map(UserId::to_string).collect(),
    })
}

/// MessageEdited: the message after the edit (without content) and who is mentioned now but
/// was not before.
pub fn message_edited(
    message: &Message,
    newly_mentioned: &[UserId],
) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::MessageEdited(pb::MessageEdited {
        message: Some(message_snapshot(message)),
        newly_mentioned_user_ids: newly_mentioned.iter().map(UserId::to_string).collect(),
    })
}

/// MessageDeleted (for everyone): ids only.
pub fn message_deleted(
    message_id: MessageId,
    thread_root: Option<MessageId>,
) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::MessageDeleted(pb::MessageDeleted {
        message_id: message_id.to_string(),
        thread_root_message_id: thread_root.map(|id| id.to_string()).unwrap_or_default(),
    })
}

/// MessageDeletedForMe: the user's own deletion, with their counters after it.
pub fn message_deleted_for_me(
    conversation_id: ConversationId,
    message_id: MessageId,
    unread_count: i32,
    mention_count: i32,
) -> pb::user_event::Kind {
    pb::user_event::Kind::MessageDeletedForMe(pb::MessageDeletedForMe {
        conversation_id: conversation_id.to_string(),
        message_id: message_id.to_string(),
        unread_count,
        mention_count,
    })
}

/// MessagesExpired: the messages of one conversation one sweep batch erased (ids and thread
/// roots only, in seq order), and why.
pub fn messages_expired(
    messages: &[crate::store::Message],
    reason: pb::ExpiryReason,
) -> pb::conversation_event::Kind {
    let deleted = |m: &crate::store::Message| pb::MessageDeleted {
        message_id: m.id.to_string(),
        thread_root_message_id: m
            .thread_root_message_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    };
    pb::conversation_event::Kind::MessagesExpired(pb::MessagesExpired {
        messages: messages.iter().map(deleted).collect(),
        reason: reason.into(),
    })
}
