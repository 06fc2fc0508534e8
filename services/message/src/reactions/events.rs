//! The events of reactions and pins: builders for their `ConversationEvent` kinds. They carry
//! ids, the emoji and the count after the change; never content.

use echo_ids::{MessageId, UserId};
use echo_proto::echo::message::v1 as pb;

/// ReactionAdded: `count` users now react with `emoji` (clients set, not increment).
pub fn reaction_added(
    message: MessageId,
    user: UserId,
    emoji: &str,
    count: i32,
) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::ReactionAdded(pb::ReactionAdded {
        message_id: message.to_string(),
        user_id: user.to_string(),
        emoji: emoji.to_owned(),
        count,
    })
}

/// ReactionRemoved: `count` users still react with `emoji` (0: drop it).
pub fn reaction_removed(
    message: MessageId,
    user: UserId,
    emoji: &str,
    count: i32,
) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::ReactionRemoved(pb::ReactionRemoved {
        message_id: message.to_string(),
        user_id: user.to_string(),
        emoji: emoji.to_owned(),
        count,
    })
}

/// MessagePinned (the event's actor pinned it).
pub fn message_pinned(message: MessageId) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::MessagePinned(pb::MessagePinned {
        message_id: message.to_string(),
    })
}

/// MessageUnpinned (the event's actor unpinned it).
pub fn message_unpinned(message: MessageId) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::MessageUnpinned(pb::MessageUnpinned {
        message_id: message.to_string(),
    })
}
