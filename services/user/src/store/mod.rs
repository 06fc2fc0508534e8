//! UserService's storage seam: one trait, a PostgreSQL and a SQLite implementation, one
//! conformance suite (`tests/store_conformance.rs`).
//!
//! The store keeps data and enforces what must hold atomically (unique usernames, the contact
//! quota, one open request per direction, a block cancelling requests). Who may see what
//! (privacy, blocks) is decided above it, in `crate::people`, from the [`Relation`]s it
//! returns. Every change other services must learn about takes its [`Event`] and appends it
//! to the outbox in the SAME transaction: blocks and profile changes get theirs from the
//! caller; privacy and contact-list changes build theirs in `changes`, once for both backends,
//! from what the statements actually changed.

mod changes;
mod postgres;
mod profile;
mod relations;
mod sqlite;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_store::{Database, Tx};
use uuid::Uuid;

pub use postgres::PostgresUserStore;
pub use profile::*;
pub use relations::*;
pub use sqlite::SqliteUserStore;

/// What a storage call can fail with. The refusals are outcomes the caller maps to an answer;
/// `Database` and `Bus` are failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The username is held by another user (case-insensitively).
    #[error("username taken")]
    UsernameTaken,
    /// The other user has no profile, or it is deleted.
    #[error("user not found")]
    UserNotFound,
    /// A block between the two users (either direction).
    #[error("blocked")]
    Blocked,
    /// The two users already have each other as contacts.
    #[error("already contacts")]
    AlreadyContacts,
    /// The owner's contact list is full.
    #[error("contact limit reached")]
    ContactLimit,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] echo_store::StoreError),
    /// Appending the event failed.
    #[error(transparent)]
    Bus(#[from] echo_bus::BusError),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Database(error.into())
    }
}

/// UserService's storage.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    // ---- applied from auth's events, inside the consumer's transaction ----

    /// Creates the registered user's profile, or completes the one their own calls created
    /// first: sets the phone number, `registered` and `created_at`, and the display name unless
    /// the user already chose one. A deleted profile stays deleted. Rebuilds search terms.
    async fn record_registration(
        &self,
        tx: &mut Tx,
        registration: &Registration,
    ) -> Result<(), StoreError>;

    /// Erases a deleted user: the profile becomes a tombstone (display name, username, about,
    /// avatar and phone cleared, `deleted_at` set; a tombstone is created if there was no
    /// profile yet), and their search terms, contacts (theirs, and entries of them in others'
    /// lists), contact requests (both directions) and blocks (both directions) are removed.
    /// Appends, in `tx`, one `ContactRemoved` per contact entry that existed (the user's own,
    /// and each entry of them in another's list); a redelivered deletion finds none.
    async fn erase_user(
        &self,
        tx: &mut Tx,
        user_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    // ---- profiles ----

    /// The profile of `user_id` (tombstones included).
    async fn profile(&self, user_id: Uuid) -> Result<Option<Profile>, StoreError>;

    /// The profiles of those of `user_ids` that exist (tombstones included), in any order.
    async fn profiles(&self, user_ids: &[Uuid]) -> Result<Vec<Profile>, StoreError>;

    /// The live (not deleted) profile holding `phone_number`.
    async fn profile_by_phone(&self, phone_number: &str) -> Result<Option<Profile>, StoreError>;

    /// Applies `change` to `user_id`'s profile, creating it first (unregistered, display name
    /// '') if the registration has not arrived yet; rebuilds the search terms; appends
    /// `event(&profile_after)` to the outbox in the same transaction. Returns the profile after
    /// the change. `UsernameTaken` when another user holds the username case-insensitively
    /// (nothing changes). `UserNotFound` when the profile is a tombstone.
    async fn update_profile(
        &self,
        user_id: Uuid,
        change: &ProfileChange,
        at: DateTime<Utc>,
        event: ProfileEvent<'_>,
    ) -> Result<Profile, StoreError>;

    /// Applies `change` to `user_id`'s privacy settings, creating the profile first like
    /// [`UserStore::update_profile`]. When a setting differs from before, appends
    /// `PrivacyChanged` (every setting after) in the same transaction; a change to what is
    /// already set appends nothing. Returns the profile after the change. `UserNotFound` for
    /// a tombstone.
    async fn update_privacy(
        &self,
        user_id: Uuid,
        change: &PrivacyChange,
        at: DateTime<Utc>,
    ) -> Result<Profile, StoreError>;

    /// How `viewer` relates to each of `others` (ids without any relation may be missing from
    /// the map, meaning `Relation::default()`).
    async fn relations(
        &self,
        viewer: Uuid,
        others: &[Uuid],
    ) -> Result<HashMap<Uuid, Relation>, StoreError>;

    /// Live profiles with a search term starting with `prefix` (already lowercased, no `@`)
    /// that `viewer` may discover: not the viewer, not deleted, having a username or being in
    /// the viewer's contacts, and not having blocked the viewer. Ordered by (rank,
    /// display_name_key, user_id), after `after` when given; at most `limit`.
    async fn search(
        &self,
        viewer: Uuid,
        prefix: &str,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError>;

    // ---- contacts ----

    /// Adds `contact` to `owner`'s contacts with `alias`, or sets the alias of an existing
    /// entry (idempotent). A new entry appends `ContactAdded` in the same transaction; a
    /// renamed one appends nothing. `UserNotFound` when `contact` has no live profile;
    /// `ContactLimit` when the entry is new and `owner` already has `max_contacts`.
    async fn add_contact(
        &self,
        owner: Uuid,
        contact: Uuid,
        alias: &str,
        at: DateTime<Utc>,
        max_contacts: u32,
    ) -> Result<ContactEntry, StoreError>;

    /// Sets the alias of an existing entry; None when `contact` is not in `owner`'s list.
    async fn update_contact(
        &self,
        owner: Uuid,
        contact: Uuid,
        alias: &str,
    ) -> Result<Option<ContactEntry>, StoreError>;

    /// Removes `owner`'s entry of `contact` (idempotent; the other user's list is untouched)
    /// and, when there was one, appends `ContactRemoved` in the same transaction.
    async fn remove_contact(&self, owner: Uuid, contact: Uuid) -> Result<(), StoreError>;

    /// `owner`'s contacts ordered by (sort_key, user_id), after `after`; at most `limit`.
    async fn list_contacts(
        &self,
        owner: Uuid,
        after: Option<&ContactPosition>,
        limit: usize,
    ) -> Result<Vec<ContactEntry>, StoreError>;

    // ---- contact requests ----

    /// Sends a request from `sender` to `recipient`, in one transaction:
    /// - `UserNotFound` when `recipient` has no live profile; `Blocked` when either blocked
    ///   the other; `AlreadyContacts` when each has the other in their contacts;
    /// - when `recipient` has an open (pending or declined) request to `sender`, both users
    ///   wanted it: that request becomes ACCEPTED, each is added to the other's contacts (an
    ///   existing entry keeps its alias; one `ContactAdded` per entry added), and it is
    ///   returned;
    /// - when `sender` already has an open request to `recipient`, it is returned unchanged;
    /// - otherwise a new PENDING request with `id` and `message` is stored and returned.
    async fn send_contact_request(
        &self,
        id: Uuid,
        sender: Uuid,
        recipient: Uuid,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<ContactRequest, StoreError>;

    /// The request `id`, whoever it involves.
    async fn contact_request(&self, id: Uuid) -> Result<Option<ContactRequest>, StoreError>;

    /// Accepts request `id` if it is addressed to `recipient` and PENDING (then each user is
    /// added to the other's contacts, existing entries kept, with one `ContactAdded` per entry
    /// added in the same transaction) or already ACCEPTED (unchanged, no event). None
    /// otherwise.
    async fn accept_contact_request(
        &self,
        recipient: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactRequest>, StoreError>;

    /// Declines request `id` if it is addressed to `recipient` and PENDING; false otherwise.
    async fn decline_contact_request(
        &self,
        recipient: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Cancels request `id` if `sender` sent it and it is PENDING or DECLINED; false
    /// otherwise.
    async fn cancel_contact_request(
        &self,
        sender: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// `user`'s requests in `direction` (see [`Direction`]), newest first (id descending),
    /// with ids below `before` when given; at most `limit`.
    async fn list_contact_requests(
        &self,
        user: Uuid,
        direction: Direction,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ContactRequest>, StoreError>;

    // ---- blocks ----

    /// Blocks `blocked` for `blocker`. When the block is new: cancels the open requests
    /// between the two (both directions) and appends `event`, in one transaction; true.
    /// Contacts are left alone (visibility rules apply blocks on top of them), so a block
    /// publishes no `ContactRemoved`.
    /// Already blocked: nothing changes, no event; false. `UserNotFound` when `blocked` has no
    /// live profile.
    async fn block(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<bool, StoreError>;

    /// Lifts the block and appends `event` in one transaction; true. Not blocked: no event;
    /// false.
    async fn unblock(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        event: &Event,
    ) -> Result<bool, StoreError>;

    /// The users `blocker` blocked, newest first by (blocked_at, user_id) descending, after
    /// `after`; at most `limit`.
    async fn list_blocked(
        &self,
        blocker: Uuid,
        after: Option<&BlockPosition>,
        limit: usize,
    ) -> Result<Vec<BlockEntry>, StoreError>;
}

/// The store for `db`, appending events to `outbox` (whose database is `db`).
pub fn for_database(db: &Database, outbox: Outbox) -> std::sync::Arc<dyn UserStore> {
    match db {
        Database::Postgres(pg) => std::sync::Arc::new(PostgresUserStore::new(pg.clone(), outbox)),
        Database::Sqlite(sqlite) => {
            std::sync::Arc::new(SqliteUserStore::new(sqlite.clone(), outbox))
        }
    }
}
