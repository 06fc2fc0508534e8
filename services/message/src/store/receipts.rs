//! The read state part of the storage seam: each member's private settings (mute, pin,
//! archive), read watermarks with the unread and mention counters they reset, and per-device
//! delivery receipts.
//!
//! Settings and the read watermark are private to the member: a change takes the member's
//! next user seq and appends one per-user event. Delivery receipts and the read watermarks of
//! others are merged state (latest wins, DESIGN §6): MarkDelivered writes no durable event.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Member;

/// Most conversations one user may have pinned at once (member_api.proto).
pub const MAX_PINNED_CONVERSATIONS: i64 = 10;

/// The name of the pinned-conversations limit (`LIMIT_EXCEEDED` metadata).
pub const PINNED_LIMIT: &str = "pinned conversations";

/// A change of a member's settings: `None` leaves a setting as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingsChange {
    /// Some(None) unmutes; Some(Some(t)) mutes until t (callers turn past times into None).
    pub mute_until: Option<Option<DateTime<Utc>>>,
    /// Pin (true) or unpin (false) the conversation in the member's list.
    pub pinned: Option<bool>,
    /// Archive (true) or unarchive (false).
    pub archived: Option<bool>,
}

/// What [`MessageStore::update_settings`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingsUpdate {
    /// The member row after the call.
    pub member: Member,
    /// The settings that changed (`MemberSettings` paths, in the order mute_until, pinned,
    /// archived); empty when nothing changed (no user seq taken, no event).
    pub changed: Vec<&'static str>,
}

/// What [`MessageStore::mark_read`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadMark {
    /// The member row after the call.
    pub member: Member,
    /// Whether the watermark moved (and a ReadMarkerMoved event was appended).
    pub moved: bool,
}

/// One device's delivery watermark in a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceReceipt {
    /// The device.
    pub device_id: Uuid,
    /// Every seq up to this one reached the device (0: nothing acknowledged yet).
    pub delivered_up_to_seq: i64,
    /// When it last moved (None while 0).
    pub delivered_at: Option<DateTime<Utc>>,
}

/// What [`MessageStore::mark_delivered`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The device's receipt after the call.
    pub receipt: DeviceReceipt,
    /// Whether the watermark moved (the live ReceiptUpdate goes out only then).
    pub moved: bool,
}

/// Another member's receipt as others see it ("seen by", "delivered to").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberReceipt {
    /// The member.
    pub user_id: Uuid,
    /// Their read watermark.
    pub last_read_seq: i64,
    /// When it last moved.
    pub read_at: Option<DateTime<Utc>>,
    /// The highest delivered watermark of their devices (0: none).
    pub delivered_up_to_seq: i64,
    /// When that highest watermark was first reached.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// `member` with `change` applied at `at`, and the settings that changed (see
/// [`MessageStore::update_settings`]): both implementations decide the same way.
pub(crate) fn apply(
    member: &Member,
    change: &SettingsChange,
    at: DateTime<Utc>,
) -> (Member, Vec<&'static str>) {
    let mut next = member.clone();
    let mut changed = Vec::new();
    if let Some(mute_until) = change.mute_until
        && mute_until != member.mute_until
    {
        next.mute_until = mute_until;
        changed.push("mute_until");
    }
    if let Some(pinned) = change.pinned
        && pinned != member.pinned_at.is_some()
    {
        next.pinned_at = pinned.then_some(at);
        changed.push("pinned");
    }
    if let Some(archived) = change.archived
        && archived != member.archived
    {
        next.archived = archived;
        changed.push("archived");
    }
    (next, changed)
}

/// Whether applying a change pins a conversation that was not pinned (the cap applies).
pub(crate) fn newly_pinned(before: &Member, after: &Member) -> bool {
    before.pinned_at.is_none() && after.pinned_at.is_some()
}
