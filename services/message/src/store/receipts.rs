//! The read state part of the storage seam: each member's private settings (mute, pin,
//! archive), read watermarks with the unread and mention counters they reset, and per-device
//! delivery receipts.
//!
//! Settings and the read watermark are private to the member: a change takes the member's
//! next user seq and appends one per-user event. Delivery receipts and the read watermarks of
//! others are merged state (latest wins, DESIGN §6): MarkDelivered writes no durable event.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Actor, Member, StoreError};

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

/// What [`ReceiptStore::update_settings`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingsUpdate {
    /// The member row after the call.
    pub member: Member,
    /// The settings that changed (`MemberSettings` paths, in the order mute_until, pinned,
    /// archived); empty when nothing changed (no user seq taken, no event).
    pub changed: Vec<&'static str>,
}

/// What [`ReceiptStore::mark_read`] did.
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

/// What [`ReceiptStore::mark_delivered`] did.
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

/// Read state storage (see the module doc).
#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// Changes `actor`'s own settings in `conversation` (any kind), in one transaction under
    /// the member row's lock: `ConversationNotFound` unless `actor` is a current member. A
    /// setting is changed only when its new value differs from the stored one (pinning an
    /// already pinned conversation keeps its `pinned_at`); nothing changed: the current row,
    /// no user seq, no event. Pinning sets `pinned_at = at` (the pin order); when the user
    /// already has [`MAX_PINNED_CONVERSATIONS`] other current conversations pinned it is
    /// refused with `LimitExceeded(PINNED_LIMIT)`, counted under the user's `user_sequences`
    /// row lock (PostgreSQL) or the single writer (SQLite), so concurrent pins of one user
    /// cannot overshoot. Otherwise: the row updated, the user's next seq, one
    /// MemberSettingsChanged (all settings after, mask of what changed).
    async fn update_settings(
        &self,
        actor: Actor,
        conversation: Uuid,
        change: &SettingsChange,
        at: DateTime<Utc>,
    ) -> Result<SettingsUpdate, StoreError>;

    /// Moves `actor`'s read watermark in `conversation` to `up_to` (≥ 0), lowered to the
    /// conversation's `last_seq`, under the member row's lock (so a concurrent send's counter
    /// increment is either seen by the recount or applied after it): `ConversationNotFound`
    /// unless a current member. At or below the current watermark: nothing changes (`moved`
    /// false, no seq, no event). Otherwise `last_read_seq`, `read_at = at`, and the counters
    /// recounted from the messages above the new watermark and after the member's join, sent
    /// by others, not deleted for everyone nor hidden for the member (`mention_count`: those
    /// with a mention row for the member); the user's next seq and one ReadMarkerMoved.
    async fn mark_read(
        &self,
        actor: Actor,
        conversation: Uuid,
        up_to: i64,
        at: DateTime<Utc>,
    ) -> Result<ReadMark, StoreError>;

    /// Moves the delivered watermark of `actor.device_id` in `conversation` to `up_to` (≥ 0),
    /// lowered to `last_seq`, forward only: `ConversationNotFound` unless a current member.
    /// No durable event (receipts are merged state). `moved` when it went up.
    async fn mark_delivered(
        &self,
        actor: Actor,
        conversation: Uuid,
        up_to: i64,
        at: DateTime<Utc>,
    ) -> Result<Delivered, StoreError>;

    /// The delivery receipts of `user`'s devices in `conversation`, by device id.
    async fn device_receipts(
        &self,
        conversation: Uuid,
        user: Uuid,
    ) -> Result<Vec<DeviceReceipt>, StoreError>;

    /// The receipts of the current members of `conversation` other than `except` who
    /// acknowledged anything (read or delivered above 0), delivered at least `min_seq` (when
    /// > 0), ordered by user id after `after`; at most `limit`. The delivered watermark is the
    /// maximum over the member's devices. A member has read only once their watermark is above
    /// their `joined_at_seq` (joining sets it there, which is not a read): until then
    /// `last_read_seq` is 0 and `read_at` None. Delivery receipts of an earlier membership do
    /// not count: joining again deletes them (see `MemberStore::add_members`).
    async fn member_receipts(
        &self,
        conversation: Uuid,
        except: Uuid,
        min_seq: i64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<MemberReceipt>, StoreError>;
}

/// `member` with `change` applied at `at`, and the settings that changed (see
/// [`ReceiptStore::update_settings`]): both implementations decide the same way.
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
