//! The edit and delete part of the storage seam: edits with their history, deletion for one
//! user and for everyone (with the counters that must stay right across it).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;

/// Edit and delete storage (see the module doc).
#[async_trait]
pub trait EditStore: Send + Sync {
    /// Of `ids`, the messages `user` deleted for themselves, with when.
    async fn deleted_for(
        &self,
        user: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError>;
}
