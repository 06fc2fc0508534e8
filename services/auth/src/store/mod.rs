//! AuthService's storage seam: one trait, a PostgreSQL and a SQLite implementation, one
//! conformance suite (`tests/store_conformance.rs`).
//!
//! Every method that changes what other services must learn about (an account created or
//! deleted) takes the [`Event`] to publish and appends it to the outbox in the SAME transaction
//! as the change. Secrets never reach this layer in the clear: passwords arrive as argon2id
//! PHC strings, OTP codes and refresh tokens as keyed/SHA-256 hashes.

mod postgres;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_proto::echo::events::v1::SessionEndReason;
use echo_store::Database;
use uuid::Uuid;

pub use postgres::PostgresAuthStore;
pub use sqlite::SqliteAuthStore;

/// What a storage call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was hit (e.g. the phone already has an account).
    #[error("conflict: {0}")]
    Conflict(&'static str),
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

/// The kinds of one-time code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OtpPurpose {
    /// Verifying a phone after Register.
    Register,
    /// Signing in without a password.
    Login,
    /// Resetting a forgotten password.
    PasswordReset,
}

impl OtpPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OtpPurpose::Register => "register",
            OtpPurpose::Login => "login",
            OtpPurpose::PasswordReset => "reset",
        }
    }
}

/// An account.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    /// UUIDv7.
    pub user_id: Uuid,
    /// E.164.
    pub phone_number: String,
    /// argon2id PHC string; None for OTP-only accounts.
    pub password_hash: Option<String>,
    /// Shown to others until the user sets a profile.
    pub display_name: String,
    /// When the phone was verified (the account created).
    pub created_at: DateTime<Utc>,
}

/// A registration waiting for its phone to be verified.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingRegistration {
    /// E.164.
    pub phone_number: String,
    /// argon2id PHC string of the chosen password.
    pub password_hash: String,
    /// The chosen display name.
    pub display_name: String,
}

/// A stored one-time code (hashed).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredOtp {
    /// HMAC-SHA256 of the code under the server's OTP key.
    pub code_hash: Vec<u8>,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
    /// Wrong guesses so far.
    pub attempts: i32,
    /// When it was issued (for resend pacing).
    pub created_at: DateTime<Utc>,
}

/// The device a session was opened on.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Device {
    /// e.g. "Pixel 9".
    pub name: String,
    /// The `DevicePlatform` enum value.
    pub platform: i32,
    /// The app's version string.
    pub app_version: String,
}

/// A signed-in device.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// UUIDv7; the `sid` claim.
    pub session_id: Uuid,
    /// The account.
    pub user_id: Uuid,
    /// Server-issued device id (UUIDv7); the `did` claim.
    pub device_id: Uuid,
    /// The device.
    pub device: Device,
    /// When the session was opened.
    pub created_at: DateTime<Utc>,
    /// Last refresh (or sign-in).
    pub last_active_at: DateTime<Utc>,
    /// Client IP at the last refresh, if known.
    pub last_ip: Option<String>,
    /// When it was revoked (logout, revocation, reuse detection); None while active.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A refresh token as stored (only its SHA-256).
#[derive(Clone, Debug, PartialEq)]
pub struct RefreshRecord {
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// The session it refreshes.
    pub session_id: Uuid,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for a new pair (None = still current).
    pub rotated_at: Option<DateTime<Utc>>,
}

/// What [`AuthStore::rotate_refresh`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Rotation {
    /// The token was current: it is now rotated and `new` is stored.
    Rotated(Session),
    /// The token was already rotated at the given time (a retry or a theft; the domain
    /// decides by the grace window). Nothing changed.
    AlreadyRotated {
        session: Session,
        rotated_at: DateTime<Utc>,
    },
    /// Unknown, expired, or its session is revoked.
    Invalid,
}

/// AuthService storage.
#[async_trait]
pub trait AuthStore: Send + Sync + 'static {
    /// The account with this phone, if any.
    async fn account_by_phone(&self, phone: &str) -> Result<Option<Account>, StoreError>;
    /// The account with this id, if any.
    async fn account_by_id(&self, user_id: Uuid) -> Result<Option<Account>, StoreError>;

    /// Remember (or replace) a registration until its phone is verified.
    async fn put_pending_registration(
        &self,
        pending: &PendingRegistration,
    ) -> Result<(), StoreError>;
    /// The pending registration for this phone, if any.
    async fn pending_registration(
        &self,
        phone: &str,
    ) -> Result<Option<PendingRegistration>, StoreError>;

    /// Store a new code for (phone, purpose), replacing any earlier one.
    async fn put_otp(
        &self,
        phone: &str,
        purpose: OtpPurpose,
        otp: &StoredOtp,
    ) -> Result<(), StoreError>;
    /// The stored code for (phone, purpose), expired or not (the caller tells expiry apart).
    async fn otp(&self, phone: &str, purpose: OtpPurpose) -> Result<Option<StoredOtp>, StoreError>;
    /// Count one wrong guess; returns the attempts so far.
    async fn record_otp_failure(&self, phone: &str, purpose: OtpPurpose)
    -> Result<i32, StoreError>;
    /// Delete the code (used, or exhausted). True if it existed: a code works at most once.
    async fn consume_otp(&self, phone: &str, purpose: OtpPurpose) -> Result<bool, StoreError>;

    /// Atomically: create the account from the pending registration (deleting it), open the
    /// first session, store its refresh token, and append `event` (user registered).
    /// `Conflict` if the phone already has an account.
    async fn create_account(
        &self,
        account: &Account,
        session: &Session,
        refresh: &RefreshRecord,
        event: &Event,
    ) -> Result<(), StoreError>;

    /// Atomically open a session with its first refresh token.
    async fn open_session(
        &self,
        session: &Session,
        refresh: &RefreshRecord,
    ) -> Result<(), StoreError>;
    /// The session, if it exists.
    async fn session(&self, session_id: Uuid) -> Result<Option<Session>, StoreError>;
    /// A user's sessions that are not revoked, ordered by session id, after `after`, at most
    /// `limit`.
    async fn active_sessions(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Session>, StoreError>;
    /// How many active sessions a user has (the device cap).
    async fn count_active_sessions(&self, user_id: Uuid) -> Result<i64, StoreError>;
    /// Revoke sessions of `user_id` (all of them, or only `only`, or all except `except`),
    /// appending one `SessionRevoked` event (with `reason`) per session in the same
    /// transaction; returns the ids revoked now (already revoked ones are not repeated).
    async fn revoke_sessions(
        &self,
        user_id: Uuid,
        only: Option<Uuid>,
        except: Option<Uuid>,
        reason: SessionEndReason,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Every session revoked after `since`, with when: the revocations an access token may
    /// still be alive for, to announce again after the cache lost them.
    async fn revoked_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError>;

    /// Atomically exchange a refresh token: if `old_hash` is current and unexpired and its
    /// session is active, mark it rotated AT `new.issued_at`, store `new` under the old
    /// token's session (`new.session_id` is ignored: the caller knows only the hash), touch
    /// the session (`last_ip`); see [`Rotation`] for the other cases. Concurrent calls with
    /// the same token: exactly one rotates.
    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new: &RefreshRecord,
        ip: Option<&str>,
    ) -> Result<Rotation, StoreError>;

    /// Set a new password hash.
    async fn set_password(&self, user_id: Uuid, password_hash: &str) -> Result<(), StoreError>;

    /// Atomically delete the account with its sessions, tokens and codes, and append `event`
    /// (user deleted). Returns the session ids that were active (to revoke them everywhere).
    async fn delete_account(&self, user_id: Uuid, event: &Event) -> Result<Vec<Uuid>, StoreError>;
}

/// The store for `db` (whose auth and bus migrations have run), writing events to `outbox`.
pub fn for_database(db: &Database, outbox: Outbox) -> std::sync::Arc<dyn AuthStore> {
    match db {
        Database::Postgres(pg) => std::sync::Arc::new(PostgresAuthStore::new(pg.clone(), outbox)),
        Database::Sqlite(sqlite) => {
            std::sync::Arc::new(SqliteAuthStore::new(sqlite.clone(), outbox))
        }
    }
}
