//! AuthService's storage: one store whose scripts run on PostgreSQL and SQLite alike, one
//! conformance suite (`tests/store_conformance.rs`) run on both.
//!
//! Every method that changes what other services must learn about (an account created or
//! deleted) takes the [`Event`](echo_bus::Event) to publish and appends it to the outbox in the
//! SAME transaction as the change. Secrets never reach this layer in the clear: passwords arrive
//! as argon2id PHC strings, OTP codes and refresh tokens as keyed/SHA-256 hashes.
//!
//! Scripts answer the service's one error, [`AuthError`](crate::error::AuthError): the one
//! refusal only the store can see (`PhoneTaken`), or the database or outbox failure with its
//! cause.

mod accounts;
mod admin;
mod codec;
mod otp;
mod rotation;
mod sessions;

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use echo_ids::{DeviceId, SessionId, UserId};
use echo_store::Database;

pub use admin::{AccountStatus, AuditEntry, Suspension};

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
    pub user_id: UserId,
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
    pub session_id: SessionId,
    /// The account.
    pub user_id: UserId,
    /// Server-issued device id (UUIDv7); the `did` claim.
    pub device_id: DeviceId,
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
    pub session_id: SessionId,
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

/// AuthService storage on either backend: each operation is one transaction script (read,
/// refusals in contract order, writes, the outbox event) written once over `echo_store`'s
/// per-backend connections, with the shared encodings of `codec` (STYLE 15). The scripts live
/// by concept: `accounts` (accounts, pending registrations, deletion), `otp`, `sessions`
/// (opening, listing, revocation), `rotation` (the refresh-token exchange).
///
/// A concrete type rather than a trait with one implementation per backend: there is one
/// implementation now, so callers hold `Arc<AuthStore>` and the conformance suite runs it on
/// both backends.
#[derive(Clone)]
pub struct AuthStore {
    db: Database,
    outbox: Outbox,
}

impl AuthStore {
    /// The store on `db` (auth and bus migrations applied), appending events to `outbox`.
    pub fn new(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

/// The store for `db` (whose auth and bus migrations have run), writing events to `outbox`.
pub fn for_database(db: &Database, outbox: Outbox) -> std::sync::Arc<AuthStore> {
    std::sync::Arc::new(AuthStore::new(db.clone(), outbox))
}
