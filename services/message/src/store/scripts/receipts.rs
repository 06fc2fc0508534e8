//! [`ReceiptStore`] for [`MessageDb`]: still delegated to the per-backend store (being rewritten once).

#![allow(unused_imports)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_store::Tx;
use uuid::Uuid;

use super::MessageDb;
use crate::store::*;

#[async_trait]
impl ReceiptStore for MessageDb {
    async fn update_settings(
        &self,
        actor: Actor,
        conversation: Uuid,
        change: &SettingsChange,
        at: DateTime<Utc>,
    ) -> Result<SettingsUpdate, StoreError> {
        self.legacy
            .update_settings(actor, conversation, change, at)
            .await
    }

    async fn mark_read(
        &self,
        actor: Actor,
        conversation: Uuid,
        up_to: i64,
        at: DateTime<Utc>,
    ) -> Result<ReadMark, StoreError> {
        self.legacy.mark_read(actor, conversation, up_to, at).await
    }

    async fn mark_delivered(
        &self,
        actor: Actor,
        conversation: Uuid,
        up_to: i64,
        at: DateTime<Utc>,
    ) -> Result<Delivered, StoreError> {
        self.legacy
            .mark_delivered(actor, conversation, up_to, at)
            .await
    }

    async fn device_receipts(
        &self,
        conversation: Uuid,
        user: Uuid,
    ) -> Result<Vec<DeviceReceipt>, StoreError> {
        self.legacy.device_receipts(conversation, user).await
    }

    async fn member_receipts(
        &self,
        conversation: Uuid,
        except: Uuid,
        min_seq: i64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<MemberReceipt>, StoreError> {
        self.legacy
            .member_receipts(conversation, except, min_seq, after, limit)
            .await
    }
}
