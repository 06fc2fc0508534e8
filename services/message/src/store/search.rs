//! The search and thread part of the storage seam: full-text search over what a user may read
//! (PostgreSQL tsvector, SQLite FTS5), and the replies of a thread.
//!
//! The index follows `messages.body` by itself (a generated column on PostgreSQL, triggers on
//! SQLite; see `migrations/*/message/0007_search.sql`): a send indexes the text, an edit
//! replaces it, and delete-for-everyone (body NULL) removes every term of it from the index
//! (FTS5 `secure-delete`), so no write path has anything to do for search.

use async_trait::async_trait;
use uuid::Uuid;

use super::{Message, StoreError};
use crate::search::{SearchHit, SearchPosition, SearchQuery};

/// Search and thread storage (see the module doc). Reads only: nothing here takes a seq or
/// writes an event.
#[async_trait]
pub trait SearchStore: Send + Sync {
    /// The messages `reader` may read that match every phrase of `query`, best first: by
    /// rank descending (PostgreSQL `ts_rank`, SQLite `-bm25`), then created_at and id
    /// descending; after `after` (a keyset on those three); at most `limit`.
    ///
    /// A message is returned only when it is ACTIVE (`deleted_at` NULL), in a conversation
    /// `reader` is a current member of (`left_at_seq` NULL; only `conversation` when given),
    /// with a seq above their `joined_at_seq`, and not deleted for `reader` alone
    /// (`hidden_messages`). Each hit carries a snippet of its text around the match with the
    /// matches between `crate::search::HIGHLIGHT_START` and `HIGHLIGHT_END` (the caller
    /// clips it).
    async fn search(
        &self,
        reader: Uuid,
        query: &SearchQuery,
        conversation: Option<Uuid>,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError>;

    /// The replies in the thread of `root` in `conversation` with a seq above `after`, oldest
    /// first, tombstones included; at most `limit`. Who may read them is decided above.
    async fn thread_replies(
        &self,
        conversation: Uuid,
        root: Uuid,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;
}
