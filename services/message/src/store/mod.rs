//! MessageService's storage (DESIGN §6): [`MessageStore`], one concrete type whose every
//! operation is one transaction script written once for both backends. The scripts live with
//! their features (`impl MessageStore` blocks in `conversations/store*.rs`, `members/store*.rs`,
//! `messages/store*.rs`, `reactions/store*.rs`, `read_state/store.rs`, `live/store.rs`, and the
//! projections' writes in `projections.rs`); this module holds the type, the rows every feature
//! shares ([`Conversation`], [`Member`], [`Message`], …) and, in `codec`, the shared encodings
//! and primitives (ids and times, row decoding, write order, seqs). The features' store-facing
//! types are re-exported here, so the conformance suite (`tests/store_conformance.rs`, every
//! case on PostgreSQL and SQLite) sees the store's whole surface in one place.
//!
//! The store owns what must hold atomically: sequences (every durable change all members see
//! takes the conversation's next `seq` under its row lock, inside the transaction; changes only
//! one user sees take that user's next `seq`), membership and role checks at the moment of the
//! write, idempotent creation and sending, and the outbox: every sequenced change appends
//! exactly one event (built by each feature's `events`) in the same transaction. Which caller may
//! read what is decided above it, in the features' journeys, from the [`Member`] rows it
//! returns.
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
//!
//! Two protobuf types stay in the rows on purpose: a message's content is [`MessageContent`]
//! and a group's avatar is [`Media`], because that is what the store keeps (each is a `BYTEA`/
//! `BLOB` column holding the message's protobuf encoding, edit history included), so the
//! content a client sent comes back field for field without a domain copy of the contract to
//! keep in step. Everything else in the rows is a domain type.

pub(crate) mod codec;

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use echo_ids::{ConversationId, DeviceId, MessageId, UserId};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1::MessageContent;
use echo_store::Database;

pub use crate::conversations::store::{NewConversation, creation_key, direct_key};
pub use crate::conversations::store_list::{ConversationPosition, ListFilter};
pub use crate::conversations::store_update::{
    ConversationUpdate, MAX_MESSAGE_TTL, MIN_MESSAGE_TTL,
};
use crate::error::MessageError;
pub use crate::live::store::MembershipPeriod;
pub use crate::members::rules::{Invite, MemberPosition, NewInvite, may_invite, member_cap};
pub use crate::messages::edits::{Edit, EditVersion, Edited, MAX_EDITS};
pub use crate::messages::sending::{BatchOutcome, NewMessage, SendRequest, Sent};
pub use crate::messages::store::SeqWindow;
pub use crate::messages::store_expiry::{ExpiryBatch, MAX_EXPIRY_BATCH, Retention};
pub use crate::reactions::ReactionTally;
pub use crate::read_state::{
    Delivered, DeviceReceipt, MAX_PINNED_CONVERSATIONS, MemberReceipt, PINNED_LIMIT, ReadMark,
    SettingsChange, SettingsUpdate,
};

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
    pub user_id: UserId,
    /// The server-issued device.
    pub device_id: DeviceId,
}

/// A conversation as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    /// UUIDv7.
    pub id: ConversationId,
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
    pub created_by: UserId,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Direct only: the two users, smaller id first.
    pub direct_pair: Option<(UserId, UserId)>,
    /// Current members.
    pub member_count: i32,
    /// The seq of the latest sequenced change.
    pub last_seq: i64,
    /// When the latest sequenced change committed (list order).
    pub last_activity_at: DateTime<Utc>,
    /// The newest message not deleted for everyone.
    pub last_message_id: Option<MessageId>,
    /// Disappearing messages: how long each message sent from now on is kept; None: off.
    pub message_ttl: Option<chrono::TimeDelta>,
}

/// A member row: current members have `left_at_seq` None; former members keep their row so
/// reads know where their view ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The user.
    pub user_id: UserId,
    /// Their role.
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// The seq of their MemberJoined event: they see history from here on.
    pub joined_at_seq: i64,
    /// Who added them (None for the creator and joins by invite).
    pub added_by: Option<UserId>,
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

/// A message as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// UUIDv7.
    pub id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// The seq of its creation.
    pub seq: i64,
    /// Who sent it.
    pub sender_id: UserId,
    /// From which device.
    pub sender_device_id: DeviceId,
    /// The device's idempotency key.
    pub client_message_id: String,
    /// None once deleted for everyone.
    pub content: Option<MessageContent>,
    /// The message it answers.
    pub reply_to_message_id: Option<MessageId>,
    /// The thread it belongs to.
    pub thread_root_message_id: Option<MessageId>,
    /// Replies in its thread (for roots).
    pub reply_count: i32,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// Last edit.
    pub edited_at: Option<DateTime<Utc>>,
    /// Edits so far.
    pub edit_count: i32,
    /// When it was deleted for everyone (or erased by expiry or retention).
    pub deleted_at: Option<DateTime<Utc>>,
    /// When the sweep erases it (send time + the conversation's ttl then); None: never.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Message {
    /// Its time is up at `now` (`expires_at` passed) but the sweep has not erased it yet:
    /// every reader sees it as erased already (docs/lifecycle.md, "The sweep").
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.deleted_at.is_none() && self.expires_at.is_some_and(|at| at <= now)
    }
}

/// The store for `db`, appending events to `outbox` (whose database is `db`).
pub fn for_database(db: &Database, outbox: Outbox) -> std::sync::Arc<MessageStore> {
    std::sync::Arc::new(MessageStore::new(db.clone(), outbox))
}

/// MessageService's storage: the database and the outbox its changes publish through (whose
/// database is the same, so each change and its events commit together).
pub struct MessageStore {
    pub(crate) db: Database,
    pub(crate) outbox: Outbox,
}

impl MessageStore {
    /// The store on `db` (message and bus migrations applied), appending events to `outbox`.
    pub fn new(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}
