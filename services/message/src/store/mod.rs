//! MessageService's storage seam (DESIGN §6): the traits below say what each operation does;
//! [`MessageStore`] implements them once for both backends (each operation one transaction
//! script, `scripts/`), and one conformance suite (`tests/store_conformance.rs`) runs every
//! case on PostgreSQL and SQLite.
//!
//! The store owns what must hold atomically: sequences (every durable change all members see
//! takes the conversation's next `seq` under its row lock, inside the transaction; changes only
//! one user sees take that user's next `seq`), membership and role checks at the moment of the
//! write, idempotent creation and sending, and the outbox: every sequenced change appends
//! exactly one event (built by `crate::events`) in the same transaction. Which caller may read
//! what is decided above it, in `crate::conversations`, from the [`Member`] rows it returns.
//!
//! Live delivery (DESIGN §7) reads the outbox as a log in commit-safe position order and needs
//! two more things from the store:
//! - position order = seq order, per conversation and per user. SQLite has it by construction
//!   (one writer, `BEGIN IMMEDIATE`: id order is commit order is seq order). On PostgreSQL the
//!   position is `(tx_id, id)` and a transaction's xid is assigned at its first write, before
//!   it waits for the row lock that orders seqs; so every event-producing transaction first
//!   takes transaction-scoped advisory locks (which assign no xid) on its conversation and on
//!   every user whose user seq it may take, and only then writes. A later transaction on the
//!   same key then gets its xid after the earlier one committed (see `codec::order_writes`).
//! - membership periods ([`MembershipPeriod`], [`MessageStore`]), written in the transaction of
//!   every join and leave, so who may see the event at seq s is answered exactly, at any time.

mod codec;
mod edits;
mod error;
mod live;
mod members;
mod reactions;
mod receipts;
mod scripts;
mod search;
mod sending;

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1::MessageContent;
use echo_store::Database;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use edits::{Edit, EditVersion, Edited, MAX_EDITS};
pub(crate) use edits::{counted_mentions, repeated};
pub use error::StoreError;
pub use live::MembershipPeriod;
pub use members::{ConversationUpdate, Invite, MemberPosition, NewInvite, may_invite, member_cap};
pub use reactions::ReactionTally;
pub use receipts::{
    Delivered, DeviceReceipt, MAX_PINNED_CONVERSATIONS, MemberReceipt, PINNED_LIMIT, ReadMark,
    SettingsChange, SettingsUpdate,
};
pub use scripts::MessageStore;
pub(crate) use sending::Stored;
pub use sending::{BatchOutcome, SendRequest};

/// `ConversationType` (stored as its wire value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Exactly two users (1).
    Direct,
    /// Everyone posts (2).
    Group,
    /// Only owners and admins post (3).
    Channel,
}

impl Kind {
    /// The stored (and wire) value.
    pub fn code(self) -> i16 {
        match self {
            Kind::Direct => 1,
            Kind::Group => 2,
            Kind::Channel => 3,
        }
    }

    /// The kind stored as `code`.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            1 => Kind::Direct,
            2 => Kind::Group,
            3 => Kind::Channel,
            _ => return None,
        })
    }
}

/// `MemberRole` (stored as its wire value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// (1)
    Owner,
    /// (2)
    Admin,
    /// (3)
    Member,
}

impl Role {
    /// The stored (and wire) value.
    pub fn code(self) -> i16 {
        match self {
            Role::Owner => 1,
            Role::Admin => 2,
            Role::Member => 3,
        }
    }

    /// The role stored as `code`.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            1 => Role::Owner,
            2 => Role::Admin,
            3 => Role::Member,
            _ => return None,
        })
    }

    /// Owners and admins moderate.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// Who acts: the token's user and device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The user.
    pub user_id: Uuid,
    /// The server-issued device.
    pub device_id: Uuid,
}

/// A conversation as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    /// UUIDv7.
    pub id: Uuid,
    /// Direct, group or channel.
    pub kind: Kind,
    /// '' for direct conversations.
    pub title: String,
    /// '' when none.
    pub description: String,
    /// None when none.
    pub avatar: Option<Media>,
    /// `ConversationSettings.only_admins_edit_info`.
    pub only_admins_edit_info: bool,
    /// `ConversationSettings.only_admins_add_members`.
    pub only_admins_add_members: bool,
    /// Who created it.
    pub created_by: Uuid,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Direct only: the two users, smaller id first.
    pub direct_pair: Option<(Uuid, Uuid)>,
    /// Current members.
    pub member_count: i32,
    /// The seq of the latest sequenced change.
    pub last_seq: i64,
    /// When the latest sequenced change committed (list order).
    pub last_activity_at: DateTime<Utc>,
    /// The newest message not deleted for everyone.
    pub last_message_id: Option<Uuid>,
}

/// A member row: current members have `left_at_seq` None; former members keep their row so
/// reads know where their view ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The user.
    pub user_id: Uuid,
    /// Their role.
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// The seq of their MemberJoined event: they see history from here on.
    pub joined_at_seq: i64,
    /// Who added them (None for the creator and joins by invite).
    pub added_by: Option<Uuid>,
    /// The seq of their MemberLeft/MemberRemoved event; None while a member.
    pub left_at_seq: Option<i64>,
    /// Their read watermark (only moves forward).
    pub last_read_seq: i64,
    /// Other members' messages above the watermark, not deleted.
    pub unread_count: i32,
    /// Of those, the ones mentioning them.
    pub mention_count: i32,
    /// Muted until then.
    pub mute_until: Option<DateTime<Utc>>,
    /// Pinned in their list since then.
    pub pinned_at: Option<DateTime<Utc>>,
    /// Archived in their list.
    pub archived: bool,
}

impl Member {
    /// Still a member.
    pub fn is_current(&self) -> bool {
        self.left_at_seq.is_none()
    }
}

/// A GROUP or CHANNEL to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewConversation {
    /// The id to give it (if it is new).
    pub id: Uuid,
    /// Group or channel.
    pub kind: Kind,
    /// 1-256 UTF-8 bytes, not blank.
    pub title: String,
    /// 0-2048 UTF-8 bytes.
    pub description: String,
    /// None when none.
    pub avatar: Option<Media>,
    /// Settings.
    pub only_admins_edit_info: bool,
    /// Settings.
    pub only_admins_add_members: bool,
    /// The other initial members (distinct, not the creator), who join as MEMBER.
    pub members: Vec<Uuid>,
    /// The creator's idempotency key; a repeat returns the conversation it created.
    pub client_request_id: String,
}

/// A message as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// UUIDv7.
    pub id: Uuid,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// The seq of its creation.
    pub seq: i64,
    /// Who sent it.
    pub sender_id: Uuid,
    /// From which device.
    pub sender_device_id: Uuid,
    /// The device's idempotency key.
    pub client_message_id: String,
    /// None once deleted for everyone.
    pub content: Option<MessageContent>,
    /// The message it answers.
    pub reply_to_message_id: Option<Uuid>,
    /// The thread it belongs to.
    pub thread_root_message_id: Option<Uuid>,
    /// Replies in its thread (for roots).
    pub reply_count: i32,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// Last edit.
    pub edited_at: Option<DateTime<Utc>>,
    /// Edits so far.
    pub edit_count: i32,
    /// When it was deleted for everyone.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A message to send (validated: text, mentions against the text, attachments, location;
/// membership is checked by the store at write time).
#[derive(Clone, Debug, PartialEq)]
pub struct NewMessage {
    /// The id to give it (if it is new).
    pub id: Uuid,
    /// Where.
    pub conversation_id: Uuid,
    /// The device's idempotency key.
    pub client_message_id: String,
    /// SHA-256 over the content, reply and thread: a retry with the same key must match it.
    pub request_hash: [u8; 32],
    /// What.
    pub content: MessageContent,
    /// The distinct users mentioned in `content`. Anyone may be mentioned (the mention stays in
    /// the content); only current members other than the sender are counted and notified.
    pub mentioned: Vec<Uuid>,
    /// The message it answers (must be visible in the conversation).
    pub reply_to_message_id: Option<Uuid>,
    /// The thread it belongs to (must be a visible top-level message of the conversation).
    pub thread_root_message_id: Option<Uuid>,
}

/// What [`MessageStore::send`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Sent {
    /// Stored now, with the next seq (its event appended).
    Created(Message),
    /// A retry: the message stored by the first call with this key and payload.
    Repeated(Message),
}

/// Which of a user's conversations to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Some(false): not archived; Some(true): archived only; None: both.
    pub archived: Option<bool>,
    /// Only those the user pinned.
    pub pinned_only: bool,
}

/// Where a conversation list page starts: after this entry (lists are newest activity first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPosition {
    /// The last entry's `last_activity_at`, unix microseconds.
    pub last_activity_micros: i64,
    /// The last entry's id (ties).
    pub conversation_id: Uuid,
}

/// A window of a conversation's messages by seq: strictly between `after` and `before`,
/// `newest_first` or oldest first, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqWindow {
    /// Exclusive lower bound.
    pub after: i64,
    /// Exclusive upper bound.
    pub before: i64,
    /// Order.
    pub newest_first: bool,
    /// At most this many.
    pub limit: usize,
    /// Only messages that are not thread replies.
    pub top_level_only: bool,
}

/// The store for `db`, appending events to `outbox` (whose database is `db`).
pub fn for_database(db: &Database, outbox: Outbox) -> std::sync::Arc<MessageStore> {
    std::sync::Arc::new(MessageStore::new(db.clone(), outbox))
}

/// The `direct_key` of a pair: the smaller id first, so both users compute the same.
pub fn direct_key(a: Uuid, b: Uuid) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("{low}:{high}")
}

/// The `creation_key` of a group or channel: the creator and their idempotency key.
pub fn creation_key(creator: Uuid, client_request_id: &str) -> String {
    format!("{creator}:{client_request_id}")
}
