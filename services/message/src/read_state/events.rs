//! The events of the caller's own state in a conversation: per-user MemberSettingsChanged and
//! ReadMarkerMoved (delivery receipts and others' read markers are merged state, delivered
//! live, never sequenced).

use echo_proto::echo::message::v1 as pb;

use crate::events::timestamp;
use crate::store::Member;

/// A member's private settings as the wire carries them (the same in responses, events and
/// `MyConversationState`).
pub fn member_settings(member: &Member) -> pb::MemberSettings {
    pb::MemberSettings {
        mute_until: member.mute_until.map(timestamp),
        pinned: member.pinned_at.is_some(),
        archived: member.archived,
    }
}

/// MemberSettingsChanged: every setting after the change, and which ones changed.
pub fn member_settings_changed(member: &Member, changed: &[&str]) -> pb::user_event::Kind {
    pb::user_event::Kind::MemberSettingsChanged(pb::MemberSettingsChanged {
        conversation_id: member.conversation_id.to_string(),
        settings: Some(member_settings(member)),
        update_mask: Some(prost_types::FieldMask {
            paths: changed.iter().map(|path| (*path).to_owned()).collect(),
        }),
    })
}

/// ReadMarkerMoved: the new watermark with the counters it left.
pub fn read_marker_moved(member: &Member) -> pb::user_event::Kind {
    pb::user_event::Kind::ReadMarkerMoved(pb::ReadMarkerMoved {
        conversation_id: member.conversation_id.to_string(),
        last_read_seq: member.last_read_seq,
        unread_count: member.unread_count,
        mention_count: member.mention_count,
    })
}
