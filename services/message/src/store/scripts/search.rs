//! [`SearchStore`] for [`MessageDb`]: still delegated to the per-backend store (being rewritten once).

#![allow(unused_imports)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_store::Tx;
use uuid::Uuid;

use super::MessageDb;
use crate::search::{SearchHit, SearchPosition, SearchQuery};
use crate::store::*;

#[async_trait]
impl SearchStore for MessageDb {
    async fn search(
        &self,
        reader: Uuid,
        query: &SearchQuery,
        conversation: Option<Uuid>,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        self.legacy
            .search(reader, query, conversation, after, limit)
            .await
    }

    async fn thread_replies(
        &self,
        conversation: Uuid,
        root: Uuid,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.legacy
            .thread_replies(conversation, root, after, limit)
            .await
    }
}
