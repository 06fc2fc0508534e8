//! The reactions and pins part of the storage seam: set-like writes (adding what is there, or
//! taking away what is not, changes nothing and takes no seq) with their caps, and the reads
//! every view of a message needs (tallies, pins).
//!
//! Every write runs in one transaction under the conversation's lock (the seq is taken first
//! and given back by a refusal or a no-op), so two racing reactions see each other: counts in
//! events are exact, duplicates store one row, and caps cannot be overrun.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Actor, Kind, Role, StoreError};
use crate::reactions::{Pin, PinPosition, Reaction, ReactionPosition};

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

/// Reaction and pin storage (see the module doc).
///
/// The checks every write makes, in this order, under the conversation's lock:
/// `ConversationNotFound` unless the actor is a current member; `MessageNotFound` unless the
/// message belongs to the conversation, was created after the actor joined (seq above their
/// `joined_at_seq`) and is not deleted for the actor alone (`hidden_messages`).
#[async_trait]
pub trait ReactionStore: Send + Sync {
    /// Adds `actor`'s reaction `emoji` (validated) to `message`. After the common checks:
    /// `MessageDeleted` when it was deleted for everyone; `Blocked` in a DIRECT conversation
    /// with a block either way; the reaction already there: Ok(false), nothing written, no
    /// seq; `LimitExceeded("reactions")` when the actor already has
    /// [`crate::reactions::MAX_EMOJIS_PER_USER`] emojis on it; otherwise the row, the next seq (activity
    /// unchanged) and one ReactionAdded with the emoji's count after it: Ok(true).
    async fn add_reaction(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Takes back `actor`'s reaction `emoji` on `message`: `ConversationNotFound` unless
    /// `actor` is a current member; the actor's own reaction on a message of the conversation
    /// not deleted for them alone is taken back whatever their join seq (one left from an
    /// earlier membership, on a message from before the current join, is not stuck); no block
    /// check: taking back is always allowed. Then the row goes, the next seq and one
    /// ReactionRemoved with the count after it (0 when it was the last): Ok(true). No such
    /// reaction: the common checks refuse (`MessageNotFound` for a message the actor cannot
    /// see), or Ok(false), no seq (a message deleted for everyone has none).
    async fn remove_reaction(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The reactions to `message`, oldest first by (created_at, user_id, emoji), only
    /// `emoji` when given, after `after`; at most `limit`. Who may read them is decided
    /// above.
    async fn reactions(
        &self,
        message: Uuid,
        emoji: Option<&str>,
        after: Option<&ReactionPosition>,
        limit: usize,
    ) -> Result<Vec<Reaction>, StoreError>;

    /// The tallies of the messages `ids` as `reader` sees them, in any order.
    async fn reaction_tallies(
        &self,
        reader: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<ReactionTally>, StoreError>;

    /// Pins `message` in `conversation`. After the common checks: `NotAllowed` for a MEMBER
    /// of a GROUP or CHANNEL (any member of a DIRECT may pin); `MessageDeleted` when it was
    /// deleted for everyone; already pinned: the existing pin and false, nothing written, no
    /// seq; `LimitExceeded("pins")` when the conversation has [`crate::reactions::MAX_PINS`] pins; otherwise
    /// the pin, the next seq (activity unchanged) and one MessagePinned: the new pin and true.
    async fn pin(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(Pin, bool), StoreError>;

    /// Unpins `message`. The same checks as [`ReactionStore::pin`] but for deletion (a
    /// message deleted for everyone lost its pin): not pinned: Ok(false), no seq; otherwise
    /// the pin goes, the next seq and one MessageUnpinned: Ok(true).
    async fn unpin(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The pins of `conversation` whose messages have a seq above `above_seq` (what a member
    /// who joined then may see), newest pin first by (pinned_at, message_id) descending,
    /// after `after`; at most `limit`.
    async fn pins(
        &self,
        conversation: Uuid,
        above_seq: i64,
        after: Option<&PinPosition>,
        limit: usize,
    ) -> Result<Vec<Pin>, StoreError>;

    /// Of `ids`, the messages currently pinned in their conversation.
    async fn pinned_among(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError>;
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
