//! [`MessageStore`] for [`MessageDb`]: still delegated to the per-backend store (being rewritten once).

#![allow(unused_imports)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_store::Tx;
use uuid::Uuid;

use super::MessageDb;
use crate::store::*;

#[async_trait]
impl MessageStore for MessageDb {
    async fn record_user(
        &self,
        tx: &mut Tx,
        user_id: Uuid,
        deleted_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.legacy.record_user(tx, user_id, deleted_at).await
    }

    async fn record_block(
        &self,
        tx: &mut Tx,
        blocker: Uuid,
        blocked: Uuid,
        blocking: bool,
    ) -> Result<(), StoreError> {
        self.legacy
            .record_block(tx, blocker, blocked, blocking)
            .await
    }

    async fn create_direct(
        &self,
        actor: Actor,
        peer: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(Conversation, bool), StoreError> {
        self.legacy.create_direct(actor, peer, id, at).await
    }

    async fn create_conversation(
        &self,
        actor: Actor,
        new: &NewConversation,
        at: DateTime<Utc>,
    ) -> Result<(Conversation, bool), StoreError> {
        self.legacy.create_conversation(actor, new, at).await
    }

    async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>, StoreError> {
        self.legacy.conversation(id).await
    }

    async fn member(&self, conversation: Uuid, user: Uuid) -> Result<Option<Member>, StoreError> {
        self.legacy.member(conversation, user).await
    }

    async fn list_conversations(
        &self,
        user: Uuid,
        filter: ListFilter,
        after: Option<&ConversationPosition>,
        limit: usize,
    ) -> Result<Vec<(Conversation, Member)>, StoreError> {
        self.legacy
            .list_conversations(user, filter, after, limit)
            .await
    }

    async fn send_batch(&self, sends: &[SendRequest<'_>]) -> BatchOutcome {
        self.legacy.send_batch(sends).await
    }

    fn single_writer(&self) -> bool {
        self.legacy.single_writer()
    }

    async fn message(&self, conversation: Uuid, id: Uuid) -> Result<Option<Message>, StoreError> {
        self.legacy.message(conversation, id).await
    }

    async fn messages_by_id(&self, ids: &[Uuid]) -> Result<Vec<Message>, StoreError> {
        self.legacy.messages_by_id(ids).await
    }

    async fn messages(
        &self,
        conversation: Uuid,
        window: SeqWindow,
    ) -> Result<Vec<Message>, StoreError> {
        self.legacy.messages(conversation, window).await
    }
}
