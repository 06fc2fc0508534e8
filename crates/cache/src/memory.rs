//! The embedded cache: one process, state in mutex-guarded maps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::fanout::Fanout;
use crate::rate::Bucket;
use crate::{Cache, CacheError, RateDecision, RateLimit, ttl_ms};

/// How often a write also sweeps out expired entries. Sweeping on writes rather than from a
/// timer task bounds memory the same way (only writes grow the maps) without a task to own,
/// and lets the cache be built outside a runtime.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// An in-process [`Cache`] for the embedded default. Clones share state; separate instances
/// never do, so the key prefix only labels the instance (isolation is per instance).
/// Unusable across processes: DESIGN §3 makes that a startup error.
#[derive(Clone)]
pub struct MemoryCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("key_prefix", &self.inner.prefix)
            .finish()
    }
}

struct Inner {
    prefix: String,
    /// Zero point of the bucket clock (milliseconds as `f64`, like the Lua script).
    epoch: Instant,
    state: Mutex<State>,
    fanout: Fanout,
}

struct State {
    values: HashMap<String, Entry>,
    buckets: HashMap<String, (Bucket, Instant)>,
    next_sweep: Instant,
}

struct Entry {
    value: Vec<u8>,
    expires_at: Instant,
}

impl MemoryCache {
    /// An empty cache labelled `key_prefix`.
    pub fn new(key_prefix: &str) -> Self {
        let now = Instant::now();
        Self {
            inner: Arc::new(Inner {
                prefix: key_prefix.to_owned(),
                epoch: now,
                state: Mutex::new(State {
                    values: HashMap::new(),
                    buckets: HashMap::new(),
                    next_sweep: now + SWEEP_EVERY,
                }),
                fanout: Fanout::default(),
            }),
        }
    }

    /// Locks the state for a write, sweeping first when a sweep is due.
    fn write(&self, now: Instant) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.inner.state.lock().unwrap();
        if now >= state.next_sweep {
            state.values.retain(|_, entry| entry.expires_at > now);
            state.buckets.retain(|_, (_, expires_at)| *expires_at > now);
            state.next_sweep = now + SWEEP_EVERY;
            self.inner.fanout.prune();
        }
        state
    }

    /// The live entry under `key`, dropping it first if it has expired (lazy expiry).
    fn live<'a>(state: &'a mut State, key: &str, now: Instant) -> Option<&'a mut Entry> {
        if state.values.get(key).is_some_and(|e| e.expires_at <= now) {
            state.values.remove(key);
        }
        state.values.get_mut(key)
    }
}

fn after(now: Instant, ms: u64) -> Instant {
    now + Duration::from_millis(ms)
}

#[async_trait]
impl Cache for MemoryCache {
    async fn take(
        &self,
        key: &str,
        limit: RateLimit,
        cost: u32,
    ) -> Result<RateDecision, CacheError> {
        limit.check(cost)?;
        let now = Instant::now();
        let now_ms = now.duration_since(self.inner.epoch).as_secs_f64() * 1000.0;
        let mut state = self.write(now);
        let current = state
            .buckets
            .get(key)
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(bucket, _)| *bucket);
        let outcome = Bucket::take(current, now_ms, limit, cost);
        if let Some(bucket) = outcome.store {
            state
                .buckets
                .insert(key.to_owned(), (bucket, after(now, outcome.ttl_ms)));
        }
        Ok(outcome.decision)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let ttl = ttl_ms(ttl)?;
        let now = Instant::now();
        let entry = Entry {
            value: value.to_vec(),
            expires_at: after(now, ttl),
        };
        self.write(now).values.insert(key.to_owned(), entry);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let now = Instant::now();
        let mut state = self.inner.state.lock().unwrap();
        Ok(Self::live(&mut state, key, now).map(|e| e.value.clone()))
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let now = Instant::now();
        let mut state = self.inner.state.lock().unwrap();
        Ok(Self::live(&mut state, key, now).is_some() && state.values.remove(key).is_some())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let ttl = ttl_ms(ttl)?;
        let now = Instant::now();
        let mut state = self.write(now);
        if Self::live(&mut state, key, now).is_some() {
            return Ok(false);
        }
        let entry = Entry {
            value: value.to_vec(),
            expires_at: after(now, ttl),
        };
        state.values.insert(key.to_owned(), entry);
        Ok(true)
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, CacheError> {
        let ttl = ttl_ms(ttl)?;
        let now = Instant::now();
        let mut state = self.write(now);
        // Counters are decimal strings, as in Redis, so `get` reads them the same way.
        let Some(entry) = Self::live(&mut state, key, now) else {
            let entry = Entry {
                value: b"1".to_vec(),
                expires_at: after(now, ttl),
            };
            state.values.insert(key.to_owned(), entry);
            return Ok(1);
        };
        let count = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|n| n.checked_add(1))
            .ok_or_else(|| {
                CacheError::Backend("value is not an integer or out of range".to_owned())
            })?;
        entry.value = count.to_string().into_bytes();
        Ok(count)
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), CacheError> {
        self.inner.fanout.dispatch(channel, payload);
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<BoxStream<'static, Vec<u8>>, CacheError> {
        Ok(self.inner.fanout.subscribe(channel).0)
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_entries_are_swept_by_later_writes() {
        let cache = MemoryCache::new("t");
        for i in 0..100 {
            cache
                .set(&format!("k{i}"), b"v", Duration::from_millis(1))
                .await
                .unwrap();
        }
        cache
            .take("bucket", RateLimit::new(1, 1000.0), 1)
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        // Force the sweep without waiting a whole interval.
        cache.inner.state.lock().unwrap().next_sweep = Instant::now();
        cache
            .set("fresh", b"v", Duration::from_secs(60))
            .await
            .unwrap();
        let state = cache.inner.state.lock().unwrap();
        assert_eq!(state.values.len(), 1);
        assert!(state.buckets.is_empty());
    }

    #[tokio::test]
    async fn incr_on_a_non_integer_is_a_backend_error() {
        let cache = MemoryCache::new("t");
        cache
            .set("k", b"abc", Duration::from_secs(60))
            .await
            .unwrap();
        let err = cache.incr("k", Duration::from_secs(60)).await.unwrap_err();
        assert!(matches!(err, CacheError::Backend(_)), "{err}");
    }
}
