//! UserService's storage seam: one trait, a PostgreSQL and a SQLite implementation, one
//! conformance suite (`tests/store_conformance.rs`).
//!
//! The store keeps data and enforces what must hold atomically (unique usernames, the contact
//! quota, one open request per direction, a block cancelling requests). Who may see what
//! (privacy, blocks) is decided above it, in `crate::people`, from the [`Relation`]s it
//! returns. Every change other services must learn about takes its [`Event`] and appends it
//! to the outbox in the SAME transaction.

mod postgres;
mod sqlite;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_store::{Database, Tx};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use postgres::PostgresUserStore;
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

/// Who may see a piece of a user's information (the `echo.user.v1.Visibility` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Every signed-in user (1).
    Everyone,
    /// Users in the owner's contact list (2).
    Contacts,
    /// Only the owner (3).
    Nobody,
}

impl Visibility {
    /// The stored (and wire) value.
    pub fn code(self) -> i16 {
        match self {
            Visibility::Everyone => 1,
            Visibility::Contacts => 2,
            Visibility::Nobody => 3,
        }
    }

    /// The value stored as `code`; unknown codes read as the most private choice.
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Visibility::Everyone,
            2 => Visibility::Contacts,
            _ => Visibility::Nobody,
        }
    }
}

/// A user's privacy settings. Defaults: last seen CONTACTS, the rest EVERYONE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privacy {
    /// Online status and last seen.
    pub last_seen: Visibility,
    /// The avatar.
    pub profile_photo: Visibility,
    /// The about text.
    pub about: Visibility,
    /// Being found by LookupByPhone.
    pub find_by_phone: Visibility,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            last_seen: Visibility::Contacts,
            profile_photo: Visibility::Everyone,
            about: Visibility::Everyone,
            find_by_phone: Visibility::Everyone,
        }
    }
}

/// A change to privacy settings: `None` leaves a setting as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrivacyChange {
    /// New `last_seen`.
    pub last_seen: Option<Visibility>,
    /// New `profile_photo`.
    pub profile_photo: Option<Visibility>,
    /// New `about`.
    pub about: Option<Visibility>,
    /// New `find_by_phone`.
    pub find_by_phone: Option<Visibility>,
}

/// A profile photo: metadata only (uploads are not Echo's business).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Avatar {
    /// Where the image is.
    pub url: String,
    /// `image/…`.
    pub mime_type: String,
    /// Size in bytes (0 when unknown).
    pub size_bytes: i64,
    /// Pixels (0 when unknown).
    pub width: i32,
    /// Pixels (0 when unknown).
    pub height: i32,
}

/// A profile as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// UUIDv7.
    pub user_id: Uuid,
    /// 1-64 characters ('' for deleted accounts and, rarely, before registration arrives).
    pub display_name: String,
    /// With the case the user chose.
    pub username: Option<String>,
    /// 0-140 characters.
    pub about: String,
    /// None when there is none.
    pub avatar: Option<Avatar>,
    /// E.164; None until the registration event arrives, and after deletion.
    pub phone_number: Option<String>,
    /// The owner's privacy settings.
    pub privacy: Privacy,
    /// True once the registration event was applied.
    pub registered: bool,
    /// When the account was created (the registration's time once known).
    pub created_at: DateTime<Utc>,
    /// When the profile last changed.
    pub updated_at: DateTime<Utc>,
    /// When the account was deleted; the profile is then a tombstone.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What the `user registered` event tells the user service.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    /// The new user.
    pub user_id: Uuid,
    /// Chosen at registration.
    pub display_name: String,
    /// E.164.
    pub phone_number: String,
    /// When the account was created.
    pub registered_at: DateTime<Utc>,
}

/// A change to a profile: `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileChange {
    /// New display name (already validated and trimmed).
    pub display_name: Option<String>,
    /// `Some(None)` removes the username.
    pub username: Option<Option<String>>,
    /// New about text.
    pub about: Option<String>,
    /// `Some(None)` removes the avatar.
    pub avatar: Option<Option<Avatar>>,
}

/// Builds the event a committed profile change publishes, from the profile after the change.
pub type ProfileEvent<'a> = &'a (dyn Fn(&Profile) -> Event + Send + Sync);

/// How a viewer relates to another user, both ways. Never shown whole to the viewer: whether
/// the other user blocked the viewer or has them as a contact only shapes what is visible.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relation {
    /// The viewer's alias for the other user, when the other user is in the viewer's contacts.
    pub contact_alias: Option<String>,
    /// The other user has the viewer in THEIR contacts.
    pub in_their_contacts: bool,
    /// The viewer blocked the other user.
    pub blocked: bool,
    /// The other user blocked the viewer.
    pub blocked_by: bool,
}

impl Relation {
    /// The viewer has the other user as a contact.
    pub fn is_contact(&self) -> bool {
        self.contact_alias.is_some()
    }
}

/// One entry of an address book.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactEntry {
    /// The contact.
    pub user_id: Uuid,
    /// The owner's private name for them ('' when none).
    pub alias: String,
    /// When the entry was added.
    pub created_at: DateTime<Utc>,
    /// The list's sort key: the lowercased alias, else the contact's lowercased display name.
    pub sort_key: String,
}

/// Where a contact list page starts: after this entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPosition {
    /// The last entry's sort key.
    pub sort_key: String,
    /// The last entry's user id (ties).
    pub user_id: Uuid,
}

/// The state of a contact request (the `ContactRequestState` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting (1).
    Pending,
    /// Accepted: mutual contacts (2).
    Accepted,
    /// Declined by the recipient; the sender still sees it pending (3).
    Declined,
    /// Withdrawn by the sender, or cancelled by a block (4).
    Cancelled,
}

impl RequestState {
    /// The stored (and wire) value.
    pub fn code(self) -> i16 {
        match self {
            RequestState::Pending => 1,
            RequestState::Accepted => 2,
            RequestState::Declined => 3,
            RequestState::Cancelled => 4,
        }
    }

    /// The state stored as `code`.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            1 => RequestState::Pending,
            2 => RequestState::Accepted,
            3 => RequestState::Declined,
            4 => RequestState::Cancelled,
            _ => return None,
        })
    }
}

/// A contact request as stored (the real state; `crate::people` shows the sender a declined
/// request as pending).
#[derive(Clone, Debug, PartialEq)]
pub struct ContactRequest {
    /// UUIDv7 (so newest-first is id order).
    pub id: Uuid,
    /// Who asked.
    pub sender_id: Uuid,
    /// Who was asked.
    pub recipient_id: Uuid,
    /// 0-200 characters.
    pub message: String,
    /// The real state.
    pub state: RequestState,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When the state last changed.
    pub updated_at: DateTime<Utc>,
}

/// Which contact requests of a user to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Addressed to the user and PENDING (declined ones are gone from the recipient's list).
    Incoming,
    /// Sent by the user and PENDING or DECLINED (a decline is silent).
    Outgoing,
}

/// One user the owner blocked.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockEntry {
    /// The blocked user.
    pub user_id: Uuid,
    /// When the block was made.
    pub blocked_at: DateTime<Utc>,
}

/// Where a blocked-users page starts: after this entry (lists are newest first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockPosition {
    /// The last entry's `blocked_at`, in unix microseconds.
    pub blocked_at_micros: i64,
    /// The last entry's user id (ties).
    pub user_id: Uuid,
}

/// A search hit's rank: lower is better.
pub mod rank {
    /// The query is exactly the username.
    pub const EXACT_USERNAME: i16 = 0;
    /// The user is in the viewer's contacts.
    pub const CONTACT: i16 = 1;
    /// Any other discoverable user.
    pub const OTHER: i16 = 2;
}

/// Where a search page starts: after this hit. Carries the query, so a token from another
/// query is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPosition {
    /// The normalised query the token belongs to.
    pub query: String,
    /// The last hit's rank.
    pub rank: i16,
    /// The last hit's lowercased display name.
    pub display_name_key: String,
    /// The last hit's user id (ties).
    pub user_id: Uuid,
}

/// One search result.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    /// The user.
    pub profile: Profile,
    /// See [`rank`].
    pub rank: i16,
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
    /// [`UserStore::update_profile`]. Returns the profile after the change. `UserNotFound` for
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
    /// entry (idempotent). `UserNotFound` when `contact` has no live profile; `ContactLimit`
    /// when the entry is new and `owner` already has `max_contacts`.
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

    /// Removes the entry (idempotent).
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
    ///   existing entry keeps its alias), and it is returned;
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
    /// added to the other's contacts, existing entries kept) or already ACCEPTED (unchanged).
    /// None otherwise.
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

/// The search terms of a profile: its lowercased username, every lowercased word of its
/// display name (split on whitespace and punctuation) and the whole lowercased display name
/// (so "ada lov" finds "Ada Lovelace"), deduplicated. Both stores index these.
pub fn search_terms(display_name: &str, username: Option<&str>) -> Vec<String> {
    let whole_name = display_name.trim().to_lowercase();
    let mut terms: Vec<String> = display_name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .chain(username.map(str::to_lowercase))
        .chain((!whole_name.is_empty()).then_some(whole_name))
        .collect();
    terms.sort();
    terms.dedup();
    terms
}

/// The lowercased form every sort and uniqueness key uses.
pub fn key(text: &str) -> String {
    text.to_lowercase()
}

/// The exclusive upper bound of the keys starting with `prefix` (byte-wise order): every such
/// key is `>= prefix` and `< prefix_end(prefix)`.
pub fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_owned();
    end.push(char::MAX);
    end
}
