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
    } else if seen.message.is_expired(chrono::Utc::now()) {
        // Its time is up and the sweep (every `retention.sweep_interval`) has not erased it
        // yet: no reader sees its content from the moment it expires.
        out.state = pb::MessageState::DeletedForEveryone.into();
        out.deleted_at = seen.message.expires_at.map(timestamp);
        out.content = None;
        out.reactions.clear();
        out.pinned = false;
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

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};
    use echo_ids::{ConversationId, DeviceId, MessageId, UserId};

    use super::*;

    fn stored(expires_in: Option<TimeDelta>) -> Message {
        let now = Utc::now();
        Message {
            id: MessageId::new_v7(),
            conversation_id: ConversationId::new_v7(),
            seq: 7,
            sender_id: UserId::new_v7(),
            sender_device_id: DeviceId::new_v7(),
            client_message_id: "k".into(),
            content: Some(pb::MessageContent {
                text: "gone soon".into(),
                ..Default::default()
            }),
            reply_to_message_id: None,
            thread_root_message_id: None,
            reply_count: 0,
            created_at: now - TimeDelta::hours(2),
            edited_at: None,
            edit_count: 0,
            deleted_at: None,
            expires_at: expires_in.map(|d| now + d),
        }
    }

    fn read(message: Message) -> pb::Message {
        let reader = UserId::new_v7();
        seen(Seen {
            pinned: true,
            ..Seen::fresh(message, reader)
        })
    }

    #[test]
    fn an_expired_message_reads_as_erased_before_the_sweep() {
        let due = stored(Some(-TimeDelta::seconds(1)));
        let expires_at = due.expires_at;
        let out = read(due);
        assert_eq!(out.state, pb::MessageState::DeletedForEveryone as i32);
        assert_eq!(out.content, None);
        assert!(!out.pinned);
        assert_eq!(out.deleted_at, expires_at.map(timestamp));

        for kept in [stored(Some(TimeDelta::hours(1))), stored(None)] {
            let out = read(kept);
            assert_eq!(out.state, pb::MessageState::Active as i32);
            assert_eq!(out.content.map(|c| c.text), Some("gone soon".to_owned()));
        }
    }
}
