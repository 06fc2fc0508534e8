//! Notification's database handle and the encodings every feature's store script shares.
//!
//! Rules once, dialect twice (STYLE 15): each feature keeps its statements beside its rules
//! (`tokens/store.rs`, `inbox/store.rs`, `settings/store.rs`, `badge.rs`, `jobs.rs`), and every
//! statement is ONE SQL text that PostgreSQL and SQLite both accept, with shared encodings: ids
//! bind as `uuid` / 16-byte blobs (whose byte order is the UUIDv7 time order on both), times as
//! milliseconds since the epoch, flags as booleans. `echo_store`'s `with_db!` and `with_tx!`
//! only pick the connection. The one dialect-specific primitive is [`lock`], below.

use chrono::{DateTime, Utc};
use echo_store::{Database, Tx};

/// Notification's database (its own schema or SQLite file).
#[derive(Clone, Debug)]
pub struct NotificationStore {
    pub(crate) db: Database,
}

impl NotificationStore {
    /// The store on notification's own database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database (for consumers and readiness).
    pub fn database(&self) -> &Database {
        &self.db
    }
}

/// A time as stored: milliseconds since the epoch.
pub fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A stored time (out-of-range values, which no write produces, read as the epoch).
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// True when `error` is a UNIQUE (or primary key) violation: a write lost a race to an equal one.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Serialises write scripts that take the same `key` until their transactions end, so what a
/// script reads before it writes (a per-user count, a token's holder) stays true under
/// concurrency. Take several keys in one fixed order.
///
/// The one dialect-specific primitive: PostgreSQL takes a transaction-scoped advisory lock
/// (READ COMMITTED would otherwise let two scripts read the same rows and both write); SQLite
/// needs nothing, since every write transaction already holds the single writer
/// (`BEGIN IMMEDIATE`).
pub(crate) async fn lock(tx: &mut Tx, key: &str) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(tx) = tx {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("echo.notification.{key}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// `count` as the proto's int32 (counts never approach its limit; clamp rather than wrap).
pub(crate) fn count32(count: i64) -> i32 {
    i32::try_from(count.max(0)).unwrap_or(i32::MAX)
}
