//! The reactions and pins part of the storage seam.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;

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
#[async_trait]
pub trait ReactionStore: Send + Sync {
    /// The tallies of the messages `ids` as `reader` sees them, in any order.
    async fn reaction_tallies(
        &self,
        reader: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<ReactionTally>, StoreError>;

    /// Of `ids`, the messages currently pinned in their conversation.
    async fn pinned_among(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError>;
}
