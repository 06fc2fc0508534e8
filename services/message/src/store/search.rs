//! The search and thread part of the storage seam: full-text search over what a user may read
//! (PostgreSQL tsvector, SQLite FTS5), and the replies of a thread.
//!
//! The index follows `messages.body` by itself (a generated column on PostgreSQL, triggers on
//! SQLite; see `migrations/*/message/0007_search.sql`): a send indexes the text, an edit
//! replaces it, and delete-for-everyone (body NULL) removes every term of it from the index
//! (FTS5 `secure-delete`), so no write path has anything to do for search.
