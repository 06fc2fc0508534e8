//! [`MemberStore`] for [`MessageDb`]: still delegated to the per-backend store (being rewritten once).

#![allow(unused_imports)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_store::Tx;
use uuid::Uuid;

use super::MessageDb;
use crate::store::*;

#[async_trait]
impl MemberStore for MessageDb {
    async fn update_conversation(
        &self,
        actor: Actor,
        id: Uuid,
        update: &ConversationUpdate,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, StoreError> {
        self.legacy.update_conversation(actor, id, update, at).await
    }

    async fn add_members(
        &self,
        actor: Actor,
        conversation: Uuid,
        users: &[Uuid],
        at: DateTime<Utc>,
    ) -> Result<Vec<Member>, StoreError> {
        self.legacy
            .add_members(actor, conversation, users, at)
            .await
    }

    async fn remove_member(
        &self,
        actor: Actor,
        conversation: Uuid,
        user: Uuid,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.legacy
            .remove_member(actor, conversation, user, at)
            .await
    }

    async fn leave(
        &self,
        actor: Actor,
        conversation: Uuid,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.legacy.leave(actor, conversation, at).await
    }

    async fn set_role(
        &self,
        actor: Actor,
        conversation: Uuid,
        user: Uuid,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<Member, StoreError> {
        self.legacy
            .set_role(actor, conversation, user, role, at)
            .await
    }

    async fn members(
        &self,
        conversation: Uuid,
        admins_and: Option<Uuid>,
        after: Option<&MemberPosition>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        self.legacy
            .members(conversation, admins_and, after, limit)
            .await
    }

    async fn create_invite(
        &self,
        actor: Actor,
        new: &NewInvite,
        at: DateTime<Utc>,
    ) -> Result<Invite, StoreError> {
        self.legacy.create_invite(actor, new, at).await
    }

    async fn revoke_invite(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Invite, StoreError> {
        self.legacy.revoke_invite(actor, conversation, id, at).await
    }

    async fn invites(
        &self,
        conversation: Uuid,
        include_inactive: bool,
        before: Option<Uuid>,
        limit: usize,
        at: DateTime<Utc>,
    ) -> Result<Vec<Invite>, StoreError> {
        self.legacy
            .invites(conversation, include_inactive, before, limit, at)
            .await
    }

    async fn join_by_invite(
        &self,
        actor: Actor,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<(Uuid, bool), StoreError> {
        self.legacy.join_by_invite(actor, code, at).await
    }
}
