//! [`ReactionStore`] on sqlite.

use async_trait::async_trait;
use uuid::Uuid;

use super::SqliteMessageStore;
use crate::store::{ReactionStore, ReactionTally, StoreError};

#[async_trait]
impl ReactionStore for SqliteMessageStore {
    async fn reaction_tallies(
        &self,
        _reader: Uuid,
        _ids: &[Uuid],
    ) -> Result<Vec<ReactionTally>, StoreError> {
        // Filled in by the reactions work (reactions are not built yet).
        Ok(Vec::new())
    }

    async fn pinned_among(&self, _ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        // Filled in by the pins work (pins are not built yet).
        Ok(Vec::new())
    }
}
