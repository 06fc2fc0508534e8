//! The `Cache` seam (DESIGN §3): rate limits, short-lived keys, attempt counters and pub/sub
//! for revocations and presence hints.
//!
//! Two implementations pass one conformance suite (`tests/conformance.rs`): [`MemoryCache`]
//! for the embedded default and [`RedisCache`] for production. Pick one by URL with
//! [`connect`].
//!
//! Callers degrade on [`CacheError::Unavailable`] (DESIGN §8): rate limits fail open,
//! revocation checks fail closed after a grace. Every Redis call is bounded by a short
//! timeout so a dead Redis answers with that error instead of hanging a request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

mod fanout;
mod limits;
mod memory;
mod rate;
mod redis;

pub use limits::{Limits, Rule};
pub use memory::MemoryCache;
pub use rate::{Bucket, Outcome, RateDecision, RateLimit, TAKE_FUNCTION};
pub use redis::{
    RedisCache, RedisOptions, client as redis_client, is_transient as is_transient_redis_error,
};

/// Why a cache call failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The backend cannot be reached right now (refused, timed out, connection dropped,
    /// loading). Transient: callers degrade rather than fail the request outright.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    /// The cache URL cannot be used.
    #[error("invalid cache url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA bundle for a `rediss://` server cannot be used (unreadable, no certificate in
    /// it, or given with a URL that is not `rediss://`).
    #[error("cannot use cache tls ca file {path:?}: {reason}")]
    InvalidTlsCa {
        /// The file as configured.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The caller asked for something no backend can do (e.g. a cost above the capacity).
    #[error("invalid cache argument: {0}")]
    InvalidArgument(String),
    /// The backend answered with an error (e.g. INCR on a non-integer value).
    #[error("cache backend error: {0}")]
    Backend(String),
}

impl CacheError {
    /// True for [`CacheError::Unavailable`], the error callers degrade on.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CacheError::Unavailable(_))
    }
}

/// A cache shared by the services of one deployment. Keys and channels are namespaced by
/// the instance's key prefix, so instances with different prefixes never see each other.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// Takes `cost` tokens from the bucket `key` (a new bucket starts full). An idle bucket
    /// expires once it would be full again. Errors with `InvalidArgument` when `cost` can
    /// never be satisfied (above `limit.capacity`) or the limit is degenerate.
    async fn take(
        &self,
        key: &str,
        limit: RateLimit,
        cost: u32,
    ) -> Result<RateDecision, CacheError>;

    /// Stores `value` under `key` for `ttl`, replacing any value and expiry.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError>;

    /// The value under `key`, if it exists and has not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// Removes `key` (a value or a counter); true if it existed.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;

    /// Stores `value` under `key` for `ttl` only if `key` is absent; true if it was stored.
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError>;

    /// Adds one to the counter `key` and returns the new count. A new counter expires after
    /// `ttl`; later increments do not extend it, so the count covers a fixed window.
    /// Shares the key space with [`Cache::set`]/[`Cache::get`]/[`Cache::delete`].
    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, CacheError>;

    /// Sends `payload` to the current subscribers of `channel` (at most once, no replay).
    async fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), CacheError>;

    /// Messages published to `channel` from now on, until the stream is dropped. Messages
    /// published while the backend is unreachable are lost; the subscription itself resumes.
    async fn subscribe(&self, channel: &str) -> Result<BoxStream<'static, Vec<u8>>, CacheError>;

    /// Succeeds when the backend answers (for health checks).
    async fn ping(&self) -> Result<(), CacheError>;
}

/// Builds the cache named by `url`: `memory://` or `redis://…`/`rediss://…`, with every key
/// and channel under `key_prefix`.
pub async fn connect(url: &str, key_prefix: &str) -> Result<Arc<dyn Cache>, CacheError> {
    connect_with_ca(url, key_prefix, None).await
}

/// [`connect`], verifying a `rediss://` server against the PEM CA bundle `tls_ca_file`
/// (configuration `cache_tls_ca_file`) instead of the system's root store; see
/// [`redis_client`].
pub async fn connect_with_ca(
    url: &str,
    key_prefix: &str,
    tls_ca_file: Option<&Path>,
) -> Result<Arc<dyn Cache>, CacheError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("memory") => match tls_ca_file {
            Some(path) => Err(CacheError::InvalidTlsCa {
                path: path.to_owned(),
                reason: "only a rediss:// url uses it".to_owned(),
            }),
            None => Ok(Arc::new(MemoryCache::new(key_prefix))),
        },
        Some("redis" | "rediss") => {
            let options = RedisOptions {
                tls_ca_file: tls_ca_file.map(Path::to_owned),
                ..RedisOptions::default()
            };
            Ok(Arc::new(
                RedisCache::connect_with(url, key_prefix, options).await?,
            ))
        }
        _ => Err(CacheError::InvalidUrl {
            url: url.to_owned(),
            reason: "expected memory://, redis:// or rediss://".to_owned(),
        }),
    }
}

/// Rejects TTLs Redis would refuse (PX 0) and rounds sub-millisecond ones up, so both
/// backends agree on what a TTL means.
pub(crate) fn ttl_ms(ttl: Duration) -> Result<u64, CacheError> {
    if ttl.is_zero() {
        return Err(CacheError::InvalidArgument(
            "ttl must be positive".to_owned(),
        ));
    }
    Ok(u64::try_from(ttl.as_micros().div_ceil(1000)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_schemes_are_a_clear_error() {
        for url in ["nats://x", "memory", ""] {
            let err = connect(url, "p").await.err().expect("must fail");
            assert!(matches!(err, CacheError::InvalidUrl { .. }), "{url}: {err}");
        }
    }

    #[test]
    fn ttls_round_up_to_whole_milliseconds() {
        assert_eq!(ttl_ms(Duration::from_micros(1)).unwrap(), 1);
        assert_eq!(ttl_ms(Duration::from_millis(1500)).unwrap(), 1500);
        assert!(ttl_ms(Duration::ZERO).is_err());
    }
}
