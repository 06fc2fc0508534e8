//! UserService's storage: one store over both backends (STYLE 15), one conformance suite
//! (`tests/store_conformance.rs`) running every case on PostgreSQL and SQLite.
//!
//! Each operation is ONE transaction script, in the file of its concept (`accounts` for
//! auth's events, `blocks`, `contacts`, `requests`, `profiles`, `search`): read, refuse in
//! contract order, write, append the event, over the shared encodings and the few
//! dialect-specific primitives of `codec` (PostgreSQL's row and advisory locks, which SQLite's
//! single writer makes unnecessary; the username violation each dialect reports its own way is
//! read in `profiles`).
//!
//! The store keeps data and enforces what must hold atomically (unique usernames, the contact
//! quota, one open request per direction, a block cancelling requests). Who may see what
//! (privacy, blocks) is decided above it, in `crate::people`, from the [`Relation`]s it
//! returns. Every change other services must learn about takes its event and appends it
//! to the outbox in the SAME transaction: blocks and profile changes get theirs from the
//! caller; privacy and contact-list changes build theirs in `changes` from what the
//! statements actually changed.
//!
//! Scripts answer the service's one error, [`UserError`](crate::error::UserError): the
//! refusals decided at the write (`UsernameTaken`, `UserNotFound`, `Blocked`,
//! `AlreadyContacts`, `LimitExceeded` for the contacts quota), or the database or outbox
//! failure with its cause.
//!
//! Concurrency: on PostgreSQL (READ COMMITTED) sending, accepting and blocking first lock the
//! profile rows of both users in user id order (`codec::lock_pair`), so calls about one pair
//! run one after the other and calls about two pairs sharing a user cannot deadlock; the
//! `contact_requests_open` index backs up one open request per direction; the contact quota is
//! checked under a per-owner advisory lock; unique usernames rest on the
//! `profiles_username_key` constraint. On SQLite every write goes through the single writer in
//! a `BEGIN IMMEDIATE` transaction, which serialises the same checks.

mod accounts;
mod blocks;
mod changes;
mod codec;
mod contacts;
mod profile;
mod profiles;
mod relations;
mod requests;
mod search;

use echo_bus::Outbox;
use echo_store::Database;

pub use profile::*;
pub use relations::*;

/// UserService's storage: the database and the outbox its changes publish through (whose
/// database is the same, so each change and its event commit together).
///
/// One concrete type rather than a trait with a backend per implementation: every operation
/// is one script over both backends (`accounts`, `blocks`, `contacts`, `requests`,
/// `profiles`, `search`, each adding its methods here), so there is nothing left for a second
/// implementation to vary, and callers hold an `Arc<UserStore>`.
#[derive(Clone)]
pub struct UserStore {
    db: Database,
    outbox: Outbox,
}

impl UserStore {
    /// The store on `db` (user and bus migrations applied), appending events to `outbox`.
    pub fn new(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

/// The store for `db`, appending events to `outbox` (whose database is `db`).
pub fn for_database(db: &Database, outbox: Outbox) -> std::sync::Arc<UserStore> {
    std::sync::Arc::new(UserStore::new(db.clone(), outbox))
}
