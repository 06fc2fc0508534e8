//! The events MessageService writes to its outbox (DESIGN §6, §8): one per sequenced change,
//! `echo.message.conversation_event.<conversation_id>` for what all members see and
//! `echo.message.user_event.<user_id>` for what only one user sees. Bus events carry ids and
//! metadata, never message content (see message_events.proto): snapshots here leave
//! `content` and `client_message_id` empty, so delete-for-everyone has nothing to scrub in the
//! outbox or the stream.
//!
//! What every feature shares lives here: the two envelopes, the snapshots, and the joins that
//! both creation (`conversations`) and membership (`members`) emit. Each feature builds its
//! own event kinds in its `events` module.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use echo_bus::Event;
use echo_ids::{ConversationId, DeviceId, UserId};
use echo_proto::echo::events::v1::{ConversationEventRecorded, UserEventRecorded};
use echo_proto::echo::message::v1 as pb;
use prost::Message as _;
use uuid::Uuid;

use crate::store::{Actor, Conversation, Member, Message};

/// A wire timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    SystemTime::from(at).into()
}

/// The event for conversation change number `seq`.
pub fn conversation_event(
    conversation_id: ConversationId,
    seq: i64,
    at: DateTime<Utc>,
    actor: Actor,
    kind: pb::conversation_event::Kind,
) -> Event {
    recorded_conversation_event(conversation_id, seq, at, Some(actor), kind)
}

/// The event for conversation change number `seq` that the server caused (expiry, retention):
/// its actor fields are empty.
pub fn server_conversation_event(
    conversation_id: ConversationId,
    seq: i64,
    at: DateTime<Utc>,
    kind: pb::conversation_event::Kind,
) -> Event {
    recorded_conversation_event(conversation_id, seq, at, None, kind)
}

fn recorded_conversation_event(
    conversation_id: ConversationId,
    seq: i64,
    at: DateTime<Utc>,
    actor: Option<Actor>,
    kind: pb::conversation_event::Kind,
) -> Event {
    let id = Uuid::now_v7();
    let event = pb::ConversationEvent {
        conversation_id: conversation_id.to_string(),
        seq,
        occurred_at: Some(timestamp(at)),
        actor_user_id: actor.map(|a| a.user_id.to_string()).unwrap_or_default(),
        actor_device_id: actor.map(|a| a.device_id.to_string()).unwrap_or_default(),
        kind: Some(kind),
    };
    let recorded = ConversationEventRecorded {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(at)),
        event: Some(event),
    };
    Event::now(
        id,
        format!("echo.message.conversation_event.{conversation_id}"),
        "echo.events.v1.ConversationEventRecorded",
        recorded.encode_to_vec(),
    )
}

/// The event for `user_id`'s own change number `seq`.
pub fn user_event(
    user_id: UserId,
    seq: i64,
    at: DateTime<Utc>,
    actor_device: Option<DeviceId>,
    kind: pb::user_event::Kind,
) -> Event {
    let id = Uuid::now_v7();
    let event = pb::UserEvent {
        user_id: user_id.to_string(),
        seq,
        occurred_at: Some(timestamp(at)),
        actor_device_id: actor_device.map(|d| d.to_string()).unwrap_or_default(),
        kind: Some(kind),
    };
    let recorded = UserEventRecorded {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(at)),
        event: Some(event),
    };
    Event::now(
        id,
        format!("echo.message.user_event.{user_id}"),
        "echo.events.v1.UserEventRecorded",
        recorded.encode_to_vec(),
    )
}

/// A conversation as events carry it: no caller-specific state, no last message.
pub fn conversation_snapshot(conversation: &Conversation) -> pb::Conversation {
    pb::Conversation {
        conversation_id: conversation.id.to_string(),
        r#type: i32::from(conversation.kind.code()),
        title: conversation.title.clone(),
        description: conversation.description.clone(),
        avatar: conversation.avatar.clone(),
        settings: Some(pb::ConversationSettings {
            only_admins_edit_info: conversation.only_admins_edit_info,
            only_admins_add_members: conversation.only_admins_add_members,
        }),
        created_by_user_id: conversation.created_by.to_string(),
        created_at: Some(timestamp(conversation.created_at)),
        member_count: conversation.member_count,
        last_seq: conversation.last_seq,
        last_activity_at: Some(timestamp(conversation.last_activity_at)),
        last_message: None,
        peer_user_id: String::new(),
        my_state: None,
        message_ttl: conversation.message_ttl.map(ttl_duration),
    }
}

/// A conversation's message ttl on the wire.
pub fn ttl_duration(ttl: chrono::TimeDelta) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ttl.num_seconds(),
        nanos: 0,
    }
}

/// A member as events and lists carry it.
pub fn member_snapshot(member: &Member) -> pb::Member {
    pb::Member {
        user_id: member.user_id.to_string(),
        role: i32::from(member.role.code()),
        joined_at: Some(timestamp(member.joined_at)),
        joined_at_seq: member.joined_at_seq,
        added_by_user_id: member.added_by.map(|u| u.to_string()).unwrap_or_default(),
    }
}

/// A message as events carry it: content and idempotency key removed.
pub fn message_snapshot(message: &Message) -> pb::Message {
    pb::Message {
        content: None,
        client_message_id: String::new(),
        ..crate::convert::message(message)
    }
}

/// MemberJoined.
pub fn member_joined(member: &Member, method: pb::JoinMethod) -> pb::conversation_event::Kind {
    pb::conversation_event::Kind::MemberJoined(pb::MemberJoined {
        member: Some(member_snapshot(member)),
        method: method.into(),
        invite_id: String::new(),
    })
}

/// ConversationJoined (the joining user's own event).
pub fn conversation_joined(
    conversation: &Conversation,
    joined_at_seq: i64,
) -> pb::user_event::Kind {
    pb::user_event::Kind::ConversationJoined(pb::ConversationJoined {
        conversation: Some(conversation_snapshot(conversation)),
        joined_at_seq,
    })
}
