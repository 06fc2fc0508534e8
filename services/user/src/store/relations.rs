//! How users relate: contacts, contact requests and blocks as stored, and the [`Relation`]
//! between a viewer and another user that visibility is decided from.

use chrono::{DateTime, Utc};
use echo_ids::{ContactRequestId, UserId};
use serde::{Deserialize, Serialize};

/// How a viewer relates to another user, both ways. Never shown whole to the viewer: whether
/// the other user blocked the viewer or has them as a contact only shapes what is visible.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relation {
    /// The viewer's alias for the other user, when the other user is in the viewer's contacts.
    pub contact_alias: Option<String>,
    /// The other user has the viewer in THEIR contacts.
    pub in_their_contacts: bool,
    /// The viewer blocked the other user.
    pub blocked: bool,
    /// The other user blocked the viewer.
    pub blocked_by: bool,
}

impl Relation {
    /// The viewer has the other user as a contact.
    pub fn is_contact(&self) -> bool {
        self.contact_alias.is_some()
    }
}

/// One entry of an address book.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactEntry {
    /// The contact.
    pub user_id: UserId,
    /// The owner's private name for them ('' when none).
    pub alias: String,
    /// When the entry was added.
    pub created_at: DateTime<Utc>,
    /// The list's sort key: the lowercased alias, else the contact's lowercased display name.
    pub sort_key: String,
}

/// Where a contact list page starts: after this entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPosition {
    /// The last entry's sort key.
    pub sort_key: String,
    /// The last entry's user id (ties).
    pub user_id: UserId,
}

/// The state of a contact request (the `ContactRequestState` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting (1).
    Pending,
    /// Accepted: mutual contacts (2).
    Accepted,
    /// Declined by the recipient; the sender still sees it pending (3).
    Declined,
    /// Withdrawn by the sender, or cancelled by a block (4).
    Cancelled,
}

impl RequestState {
    /// The stored (and wire) value.
    pub fn code(self) -> i16 {
        match self {
            RequestState::Pending => 1,
            RequestState::Accepted => 2,
            RequestState::Declined => 3,
            RequestState::Cancelled => 4,
        }
    }

    /// The state stored as `code`.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            1 => RequestState::Pending,
            2 => RequestState::Accepted,
            3 => RequestState::Declined,
            4 => RequestState::Cancelled,
            _ => return None,
        })
    }
}

/// A contact request as stored (the real state; `crate::people` shows the sender a declined
/// request as pending).
#[derive(Clone, Debug, PartialEq)]
pub struct ContactRequest {
    /// UUIDv7 (so newest-first is id order).
    pub id: ContactRequestId,
    /// Who asked.
    pub sender_id: UserId,
    /// Who was asked.
    pub recipient_id: UserId,
    /// 0-200 characters.
    pub message: String,
    /// The real state.
    pub state: RequestState,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When the state last changed.
    pub updated_at: DateTime<Utc>,
}

/// Which contact requests of a user to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Addressed to the user and PENDING (declined ones are gone from the recipient's list).
    Incoming,
    /// Sent by the user and PENDING or DECLINED (a decline is silent).
    Outgoing,
}

/// One user the owner blocked.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockEntry {
    /// The blocked user.
    pub user_id: UserId,
    /// When the block was made.
    pub blocked_at: DateTime<Utc>,
}

/// Where a blocked-users page starts: after this entry (lists are newest first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockPosition {
    /// The last entry's `blocked_at`, in unix microseconds.
    pub blocked_at_micros: i64,
    /// The last entry's user id (ties).
    pub user_id: UserId,
}
