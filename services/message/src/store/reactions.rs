//! The reactions and pins part of the storage seam: set-like writes (adding what is there, or
//! taking away what is not, changes nothing and takes no seq) with their caps, and the reads
//! every view of a message needs (tallies, pins).
//!
//! Every write runs in one transaction under the conversation's lock (the seq is taken first
//! and given back by a refusal or a no-op), so two racing reactions see each other: counts in
//! events are exact, duplicates store one row, and caps cannot be overrun.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Kind, Role, StoreError};

/// How many users reacted to one message with one emoji, as one reader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionTally {
    /// The message.
    pub message_id: Uuid,
    /// The emoji.
    pub emoji: String,
    /// How many users reacted with it (> 0).
    pub count: i32,
    /// Whether the reader is one of them.
    pub reacted_by_reader: bool,
    /// When the first of them reacted (a message's tallies are shown in this order).
    pub first_at: DateTime<Utc>,
}

/// Whether a member with `role` may pin or unpin in a conversation of `kind`: anyone in a
/// DIRECT one, OWNER/ADMIN in a GROUP or CHANNEL (`NotAllowed` otherwise). Both
/// implementations decide the same way.
pub(crate) fn may_pin(kind: Kind, role: Role) -> Result<(), StoreError> {
    if kind != Kind::Direct && !role.is_admin() {
        return Err(StoreError::NotAllowed);
    }
    Ok(())
}
