//! [`EditStore`] on sqlite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SqliteMessageStore;
use crate::store::{EditStore, StoreError};

#[async_trait]
impl EditStore for SqliteMessageStore {
    async fn deleted_for(
        &self,
        _user: Uuid,
        _ids: &[Uuid],
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError> {
        // Filled in by the edit/delete work (deletion for one user is not built yet).
        Ok(Vec::new())
    }
}
