//! [`LiveStore`] for [`MessageDb`]: still delegated to the per-backend store (being rewritten once).

#![allow(unused_imports)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_store::Tx;
use uuid::Uuid;

use super::MessageDb;
use crate::store::*;

#[async_trait]
impl LiveStore for MessageDb {
    async fn periods_of_user(
        &self,
        user: Uuid,
        closed_since: DateTime<Utc>,
    ) -> Result<Vec<MembershipPeriod>, StoreError> {
        self.legacy.periods_of_user(user, closed_since).await
    }

    async fn periods_of_conversation(
        &self,
        conversation: Uuid,
        from_seq: i64,
    ) -> Result<Vec<MembershipPeriod>, StoreError> {
        self.legacy
            .periods_of_conversation(conversation, from_seq)
            .await
    }

    async fn postable(&self, actor: Actor, conversation: Uuid) -> Result<Conversation, StoreError> {
        self.legacy.postable(actor, conversation).await
    }

    async fn hidden_by(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        self.legacy.hidden_by(ids).await
    }
}
