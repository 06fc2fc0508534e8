//! The events of members: builders for their `ConversationEvent` / `UserEvent` kinds.

use echo_ids::{ConversationId, UserId};
use echo_proto::echo::message::v1 as pb;
use uuid::Uuid;

use crate::events::member_snapshot;
use crate::store::{Member, Role};

/// MemberJoined of a user who came with invite `invite_id`.
pub fn member_joined_by_invite(member: &Member, invite_id: Uuid) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::MemberJoined(pb::MemberJoined {
        member: Some(member_snapshot(member)),
        method: pb::JoinMethod::Invite.into(),
        invite_id: invite_id.to_string(),
    })
}

/// MemberLeft.
pub fn member_left(user: UserId) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::MemberLeft(pb::MemberLeft {
        user_id: user.to_string(),
    })
}

/// MemberRemoved.
pub fn member_removed(user: UserId) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::MemberRemoved(pb::MemberRemoved {
        user_id: user.to_string(),
    })
}

/// MemberRoleChanged.
pub fn member_role_changed(
    user: UserId,
    previous: Role,
    role: Role,
) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::MemberRoleChanged(pb::MemberRoleChanged {
        user_id: user.to_string(),
        previous_role: i32::from(previous.code()),
        role: i32::from(role.code()),
    })
}

/// ConversationLeft (the leaving user's own event).
pub fn conversation_left(
    conversation: ConversationId,
    left_at_seq: i64,
    reason: pb::LeaveReason,
) -> pb::user_event::Kind {
    pb::user_event::Kind::ConversationLeft(pb::ConversationLeft {
        conversation_id: conversation.to_string(),
        left_at_seq,
        reason: reason.into(),
    })
}
