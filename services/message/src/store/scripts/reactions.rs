//! [`ReactionStore`] for [`MessageDb`]: still delegated to the per-backend store (being rewritten once).

#![allow(unused_imports)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_store::Tx;
use uuid::Uuid;

use super::MessageDb;
use crate::reactions::{Pin, PinPosition, Reaction, ReactionPosition};
use crate::store::*;

#[async_trait]
impl ReactionStore for MessageDb {
    async fn add_reaction(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.legacy
            .add_reaction(actor, conversation, message, emoji, at)
            .await
    }

    async fn remove_reaction(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.legacy
            .remove_reaction(actor, conversation, message, emoji, at)
            .await
    }

    async fn reactions(
        &self,
        message: Uuid,
        emoji: Option<&str>,
        after: Option<&ReactionPosition>,
        limit: usize,
    ) -> Result<Vec<Reaction>, StoreError> {
        self.legacy.reactions(message, emoji, after, limit).await
    }

    async fn reaction_tallies(
        &self,
        reader: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<ReactionTally>, StoreError> {
        self.legacy.reaction_tallies(reader, ids).await
    }

    async fn pin(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(Pin, bool), StoreError> {
        self.legacy.pin(actor, conversation, message, at).await
    }

    async fn unpin(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.legacy.unpin(actor, conversation, message, at).await
    }

    async fn pins(
        &self,
        conversation: Uuid,
        above_seq: i64,
        after: Option<&PinPosition>,
        limit: usize,
    ) -> Result<Vec<Pin>, StoreError> {
        self.legacy
            .pins(conversation, above_seq, after, limit)
            .await
    }

    async fn pinned_among(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        self.legacy.pinned_among(ids).await
    }
}
