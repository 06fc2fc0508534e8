//! Messages: sending (through the group-commit queue), reading one message, history pages
//! and threads, edits with their history, deletion for one user or for everyone, and
//! full-text search.
//!
//! The feature's folder: `api` (message_api.proto: proto ⇄ domain), the journeys (`history`,
//! `edits`, `search`), `sending` (the group-commit queue and what a batch is), the
//! transaction scripts written once for both backends (`store` with the reads, `store_sending`
//! with `store_sending_writes`, `store_edits` with `store_deletes`, `store_search`,
//! `store_expiry` the erasure of expired and retained-out messages, see `expiry`) and
//! `events` (the outbox events).

pub(crate) mod api;
pub mod edits;
pub(crate) mod events;
pub mod expiry;
pub mod history;
pub mod search;
pub mod sending;
pub(crate) mod store;
mod store_edits;
pub(crate) mod store_expiry;
mod store_search;
mod store_sending;
mod store_sending_writes;
