//! The events of conversations: builders for ConversationCreated and ConversationUpdated.

use echo_proto::echo::message::v1 as pb;

use crate::events::conversation_snapshot;
use crate::store::Conversation;

/// ConversationCreated.
pub fn conversation_created(conversation: &Conversation) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::ConversationCreated(pb::ConversationCreated {
        conversation: Some(conversation_snapshot(conversation)),
    })
}

/// ConversationUpdated, naming the paths that changed.
pub fn conversation_updated(
    conversation: &Conversation,
    paths: &[&str],
) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::ConversationUpdated(pb::ConversationUpdated {
        conversation: Some(conversation_snapshot(conversation)),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    })
}
