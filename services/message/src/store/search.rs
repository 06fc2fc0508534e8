//! The search and thread part of the storage seam: full-text search over what a user may read
//! (PostgreSQL tsvector, SQLite FTS5), and the replies of a thread.

use async_trait::async_trait;

/// Search and thread storage (see the module doc).
#[async_trait]
pub trait SearchStore: Send + Sync {}
