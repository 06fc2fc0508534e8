//! The presence state seam (spec §A1): per-device entries with a time to live, the user's
//! manual status and `last_seen`, and one expiry index that a sweeper drains.
//!
//! Two implementations pass one conformance suite (`tests/state_conformance.rs`):
//! [`MemoryState`] for the embedded default and [`RedisState`] (Lua scripts, Centrifuge's
//! hash + sorted-set layout) for production. Both keep the same rules, which are few on
//! purpose: what an observer sees is computed in Rust from the [`UserState`] they return
//! ([`crate::status`]), never in the store.
//!
//! Seeding: the manual status and `last_seen` are also persisted in presence's database, so a
//! flushed or restarted Redis must not forget an INVISIBLE or DND. A user the state store
//! knows nothing about is *unseeded*: writes refuse with [`StateError::Unseeded`] and the
//! caller loads the persisted values ([`PresenceState::seed`]) and retries. Reads report
//! unseeded users as `None`.

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_cache::RateLimit;
use echo_ids::{DeviceId, UserId};

pub use memory::MemoryState;
pub use redis::RedisState;

use crate::status::{Activity, ManualStatus, Update, UserState};

/// Why a state call failed: two outcomes the caller acts on (`Unseeded`, `Limited`), or a
/// failure of the backend with its Redis cause kept. [`StateError::is_unavailable`] tells an
/// outage (callers answer UNAVAILABLE with RetryInfo) from the rest. This is the seam's error,
/// not a copy of the service's: `PresenceError` holds it as its source.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The user is not seeded: load the persisted status, [`PresenceState::seed`], retry.
    #[error("presence state of {0} is not seeded")]
    Unseeded(UserId),
    /// [`PresenceState::heartbeat`] found the device's bucket empty: nothing was written;
    /// retry after this long (RATE_LIMITED with RetryInfo).
    #[error("heartbeats of this device are limited; retry in {0:?}")]
    Limited(Duration),
    /// Redis cannot be reached right now (by the cache's rule of what is transient).
    #[error("presence state unavailable: {0}")]
    Unavailable(#[source] ::redis::RedisError),
    /// Redis did not answer within the call's deadline (reconnecting included).
    #[error("presence state unavailable: no answer from redis within {0:?}")]
    TimedOut(Duration),
    /// Redis refused the call for another reason (a bug or a misconfiguration).
    #[error("presence state: {0}")]
    Redis(#[source] ::redis::RedisError),
    /// The Redis client cannot be built from the URL and the TLS settings.
    #[error("presence state: {0}")]
    Client(#[source] echo_cache::CacheError),
    /// A script answered something unexpected (a bug or a corrupted entry).
    #[error("presence state: {0}")]
    Malformed(String),
}

impl StateError {
    /// True when the backend could not be reached in time (callers answer UNAVAILABLE).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StateError::Unavailable(_) | StateError::TimedOut(_))
    }
}

/// Where presence lives between heartbeats.
#[async_trait]
pub trait PresenceState: Send + Sync + 'static {
    /// Refreshes `device` of `user` until `now + ttl`, with `activity` (`None` keeps the
    /// device's last report, ONLINE for a new entry). Sets `last_seen = now` unless the user
    /// is invisible. Unseeded users: [`StateError::Unseeded`].
    async fn refresh(
        &self,
        user: UserId,
        device: DeviceId,
        activity: Option<Activity>,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError>;

    /// A Heartbeat: [`PresenceState::refresh`] with `Some(activity)`, behind the device's rate
    /// limit, in one step (one Redis round trip). In this order: an unseeded user answers
    /// [`StateError::Unseeded`] with nothing taken (the caller seeds and calls again); then one
    /// token is taken from `device`'s bucket under `limit` ([`echo_cache::Bucket::take`], on
    /// the clock of `now`); an empty bucket answers [`StateError::Limited`] and writes nothing.
    async fn heartbeat(
        &self,
        user: UserId,
        device: DeviceId,
        activity: Activity,
        ttl: Duration,
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError>;

    /// Makes `device`'s entry expire no later than `now + within` (its Subscribe stream
    /// closed cleanly). Nothing when the device has no entry.
    async fn expire_within(
        &self,
        user: UserId,
        device: DeviceId,
        within: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), StateError>;

    /// Removes `device`'s entry at once (its session was revoked).
    async fn remove_device(
        &self,
        user: UserId,
        device: DeviceId,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError>;

    /// Sets (or with `None` clears) the manual status. Unseeded users:
    /// [`StateError::Unseeded`].
    async fn set_manual(
        &self,
        user: UserId,
        manual: Option<ManualStatus>,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError>;

    /// The state of each of `users`, in order; `None` for an unseeded user.
    async fn read(&self, users: &[UserId]) -> Result<Vec<Option<UserState>>, StateError>;

    /// Seeds `user` with the persisted manual status and `last_seen`, unless already seeded
    /// (a concurrent seed or write won: its values stand).
    async fn seed(
        &self,
        user: UserId,
        manual: Option<ManualStatus>,
        last_seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StateError>;

    /// Removes what is due at `now`, at most `limit` index entries: device entries past their
    /// expiry and manual statuses past `clears_at`. Returns one [`Update`] per user changed,
    /// only to the caller that removed the entries, so exactly one instance publishes each
    /// expiry however many sweep at once.
    async fn sweep(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Update>, StateError>;

    /// Every device entry expiring before `until` now expires at `until` (after an outage of
    /// the state store, so nothing expires for one TTL: no mass OFFLINE). At most `limit`
    /// entries per call; returns how many were extended (call again while it equals `limit`).
    async fn extend_until(&self, until: DateTime<Utc>, limit: usize) -> Result<usize, StateError>;

    /// Forgets `user` entirely (the account was deleted).
    async fn forget(&self, user: UserId) -> Result<(), StateError>;
}

/// Milliseconds since the epoch, the time unit both stores keep.
pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The instant `ms` milliseconds after the epoch.
pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The next version after `current`: greater than it and than `now` in microseconds, so
/// versions keep growing across a flush of the state store (a watcher that saw version N
/// before the flush never drops the fresh state as stale).
pub(crate) fn next_version(current: u64, now: DateTime<Utc>) -> u64 {
    let clock = u64::try_from(now.timestamp_micros()).unwrap_or(0);
    (current + 1).max(clock)
}

/// `now` in milliseconds with its microseconds, the clock of the heartbeat buckets on both
/// stores (the Redis script divides the same microseconds by 1000).
pub(crate) fn bucket_ms(now: DateTime<Utc>) -> f64 {
    now.timestamp_micros() as f64 / 1000.0
}

/// `duration` in whole milliseconds (rounded up), as both stores count.
pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros().div_ceil(1000)).unwrap_or(i64::MAX)
}

/// The state store for the cache URL: in memory for `memory://` (the embedded default), Redis
/// for `redis://`/`rediss://` (a `rediss://` server verified against the PEM CA bundle
/// `tls_ca_file` when given, else the system's root store), with every key under `key_prefix`.
pub async fn connect(
    url: &str,
    key_prefix: &str,
    tls_ca_file: Option<&std::path::Path>,
) -> Result<std::sync::Arc<dyn PresenceState>, StateError> {
    if url.starts_with("memory:") {
        Ok(std::sync::Arc::new(MemoryState::new()))
    } else {
        Ok(std::sync::Arc::new(
            RedisState::connect_with_ca(url, key_prefix, tls_ca_file).await?,
        ))
    }
}
