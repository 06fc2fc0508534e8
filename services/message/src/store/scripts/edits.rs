//! [`EditStore`] for [`MessageDb`]: still delegated to the per-backend store (being rewritten once).

#![allow(unused_imports)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_store::Tx;
use uuid::Uuid;

use super::MessageDb;
use crate::store::*;

#[async_trait]
impl EditStore for MessageDb {
    async fn deleted_for(
        &self,
        user: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError> {
        self.legacy.deleted_for(user, ids).await
    }

    async fn edit(
        &self,
        actor: Actor,
        edit: &Edit,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<Edited, StoreError> {
        self.legacy.edit(actor, edit, at, window).await
    }

    async fn edit_history(
        &self,
        conversation: Uuid,
        id: Uuid,
    ) -> Result<Vec<EditVersion>, StoreError> {
        self.legacy.edit_history(conversation, id).await
    }

    async fn delete_for_me(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.legacy.delete_for_me(actor, conversation, id, at).await
    }

    async fn delete_for_everyone(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.legacy
            .delete_for_everyone(actor, conversation, id, at)
            .await
    }
}
