//! The caller's own state in a conversation (private settings, read watermark, delivery
//! receipts) and the receipts of others.
//!
//! Watermarks only move forward and are lowered to the conversation's `last_seq`, so a retry
//! or a late call from a slower device never moves anything back. Settings are set-like: the
//! same request twice changes nothing the second time. When a watermark moves, the other
//! members' streams get the ephemeral ReadMarkerUpdate / ReceiptUpdate (DIRECT and GROUP
//! conversations up to `live.receipt_max_members` only; never channels, live.proto).
//!
//! The feature's folder: `api` (read_state_api.proto, and UpdateMemberSettings of
//! member_api.proto, since member settings are the member's private state beside the read
//! watermark), this module (the journeys, and the store-facing types below), `store` (the
//! transaction scripts, written once for both backends) and `events` (the outbox events).
//!
//! The store keeps each member's private settings (mute, pin, archive), read watermarks with
//! the unread and mention counters they reset, and per-device delivery receipts.
//!
//! Settings and the read watermark are private to the member: a change takes the member's
//! next user seq and appends one per-user event. Delivery receipts and the read watermarks of
//! others are merged state (latest wins, DESIGN §6): MarkDelivered writes no durable event.

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, DeviceId, UserId};
use echo_runtime::Page;
use serde::{Deserialize, Serialize};

pub(crate) mod api;
pub(crate) mod events;
mod store;

use crate::conversations::Conversations;
use crate::error::MessageError;
use crate::store::{Actor, Kind, Member};

/// The caller's read and delivery state in one conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadState {
    /// The caller's member row (watermark, counters).
    pub member: Member,
    /// The conversation's highest seq.
    pub last_seq: i64,
    /// The caller's devices that acknowledged anything, by device id.
    pub devices: Vec<DeviceReceipt>,
}

/// Where a ListReceipts page continues: after this user, for the same conversation and
/// `min_seq` (a token from another query is refused).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptPosition {
    /// The conversation the token belongs to.
    pub conversation_id: ConversationId,
    /// The filter the token belongs to.
    pub min_seq: i64,
    /// The last user served.
    pub user_id: UserId,
}

/// ListReceipts pages: default 100, at most 500 (read_state_api.proto).
pub const RECEIPT_PAGE: echo_runtime::PageSize = echo_runtime::PageSize {
    default: 100,
    max: 500,
};

/// The latest `mute_until` accepted: the end of year 9999 ("muted forever", conversation.proto).
pub const MUTE_FOREVER_SECONDS: i64 = 253_402_300_799;

/// A `mute_until` request value as stored: unset or not in the future means "not muted".
pub fn effective_mute(until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    until.filter(|until| *until > now)
}

impl Conversations {
    /// Changes the caller's private settings; the member row after it.
    pub async fn update_settings(
        &self,
        actor: Actor,
        conversation: ConversationId,
        change: SettingsChange,
    ) -> Result<Member, MessageError> {
        let now = Utc::now();
        let change = SettingsChange {
            mute_until: change.mute_until.map(|until| effective_mute(until, now)),
            ..change
        };
        let update = self
            .store
            .update_settings(actor, conversation, &change, now)
            .await?;
        Ok(update.member)
    }

    /// Moves the caller's read watermark forward; the member row after it.
    pub async fn mark_read(
        &self,
        actor: Actor,
        conversation: ConversationId,
        up_to: i64,
    ) -> Result<Member, MessageError> {
        let mark = self
            .store
            .mark_read(actor, conversation, up_to, Utc::now())
            .await?;
        if mark.moved && self.receipts_go_live(conversation).await {
            let (user, seq) = (actor.user_id, mark.member.last_read_seq);
            self.live
                .publisher()
                .read_marker(conversation, user, seq, Utc::now())
                .await;
        }
        Ok(mark.member)
    }

    /// Moves the calling device's delivered watermark forward.
    pub async fn mark_delivered(
        &self,
        actor: Actor,
        conversation: ConversationId,
        up_to: i64,
    ) -> Result<Delivered, MessageError> {
        let delivered = self
            .store
            .mark_delivered(actor, conversation, up_to, Utc::now())
            .await?;
        if delivered.moved && self.receipts_go_live(conversation).await {
            let receipt = &delivered.receipt;
            self.live
                .publisher()
                .receipt(
                    conversation,
                    actor.user_id,
                    receipt.device_id,
                    receipt.delivered_up_to_seq,
                    receipt.delivered_at,
                )
                .await;
        }
        Ok(delivered)
    }

    /// Whether receipts of `conversation` go to other members' streams: DIRECT and GROUP
    /// conversations up to `live.receipt_max_members` (a 100,000-member channel would turn
    /// every read into 100,000 stream items).
    async fn receipts_go_live(&self, conversation: ConversationId) -> bool {
        match self.store.conversation(conversation).await {
            Ok(Some(found)) => {
                found.kind != Kind::Channel
                    && i64::from(found.member_count) <= self.live.settings().receipt_max_members
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%error, "receipt not sent live");
                false
            }
        }
    }

    /// The caller's read state and their devices' delivery state.
    pub async fn read_state(
        &self,
        caller: UserId,
        conversation: ConversationId,
    ) -> Result<ReadState, MessageError> {
        let member = self.current_member(conversation, caller).await?;
        let last_seq = self
            .store
            .conversation(conversation)
            .await?
            .ok_or(MessageError::ConversationNotFound)?
            .last_seq;
        let devices = self.store.device_receipts(conversation, caller).await?;
        Ok(ReadState {
            member,
            last_seq,
            devices,
        })
    }

    /// Other members' receipts, by user id: any member of a DIRECT or GROUP, OWNER/ADMIN of a
    /// CHANNEL (whose members do not see each other).
    pub async fn receipts(
        &self,
        caller: UserId,
        conversation: ConversationId,
        min_seq: i64,
        page: &Page<ReceiptPosition>,
    ) -> Result<(Vec<MemberReceipt>, String), MessageError> {
        let member = self.current_member(conversation, caller).await?;
        let kind = self
            .store
            .conversation(conversation)
            .await?
            .ok_or(MessageError::ConversationNotFound)?
            .kind;
        if kind == Kind::Channel && !member.role.is_admin() {
            return Err(MessageError::NotAllowed);
        }
        if let Some(position) = &page.after
            && (position.conversation_id != conversation || position.min_seq != min_seq)
        {
            return Err(MessageError::Invalid(vec![echo_runtime::Violation::new(
                "page_token",
                "belongs to another conversation or min_seq",
            )]));
        }
        let rows = self
            .store
            .member_receipts(
                conversation,
                caller,
                min_seq,
                page.after.as_ref().map(|p| p.user_id),
                page.fetch_limit(),
            )
            .await?;
        Ok(page.finish(rows, |receipt| ReceiptPosition {
            conversation_id: conversation,
            min_seq,
            user_id: receipt.user_id,
        }))
    }
}

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

/// What [`MessageStore::update_settings`](crate::store::MessageStore::update_settings) did.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingsUpdate {
    /// The member row after the call.
    pub member: Member,
    /// The settings that changed (`MemberSettings` paths, in the order mute_until, pinned,
    /// archived); empty when nothing changed (no user seq taken, no event).
    pub changed: Vec<&'static str>,
}

/// What [`MessageStore::mark_read`](crate::store::MessageStore::mark_read) did.
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
    pub device_id: DeviceId,
    /// Every seq up to this one reached the device (0: nothing acknowledged yet).
    pub delivered_up_to_seq: i64,
    /// When it last moved (None while 0).
    pub delivered_at: Option<DateTime<Utc>>,
}

/// What [`MessageStore::mark_delivered`](crate::store::MessageStore::mark_delivered) did.
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
    pub user_id: UserId,
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
/// [`MessageStore::update_settings`](crate::store::MessageStore::update_settings)): both implementations decide the same way.
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
