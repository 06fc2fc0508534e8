//! Per-feature rate limits on top of [`Cache::take`]: named rules, a bucket per key, and the
//! policy every service shares when the cache is down (fail open, and say so in the log: a
//! cache outage must not lock everyone out).

use std::sync::Arc;
use std::time::Duration;

use crate::{Cache, RateDecision, RateLimit};

/// One rule: a token bucket per key, under the namespace `name`.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Namespace of the bucket keys (`otp.send.phone`).
    pub name: &'static str,
    /// The bucket.
    pub limit: RateLimit,
}

impl Rule {
    /// `capacity` takes per `window`, refilled evenly.
    pub const fn per(name: &'static str, capacity: u32, window: Duration) -> Self {
        Rule {
            name,
            limit: RateLimit {
                capacity,
                refill_per_second: capacity as f64 / window.as_secs_f64(),
            },
        }
    }
}

/// Checks rules against the shared cache.
#[derive(Clone)]
pub struct Limits {
    cache: Arc<dyn Cache>,
}

impl Limits {
    /// Limits kept in `cache`.
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self { cache }
    }

    /// Take one token from each `(rule, key)`; the longest wait if any is empty.
    pub async fn take(&self, checks: &[(Rule, &str)]) -> Result<(), Duration> {
        let mut wait = None;
        for (rule, key) in checks {
            match self
                .cache
                .take(&format!("{}:{key}", rule.name), rule.limit, 1)
                .await
            {
                Ok(RateDecision::Allowed { .. }) => {}
                Ok(RateDecision::Limited { retry_after }) => {
                    wait = Some(wait.map_or(retry_after, |w: Duration| w.max(retry_after)));
                }
                Err(error) => {
                    tracing::warn!(rule = rule.name, %error, "rate limit unavailable; allowing");
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryCache;

    #[tokio::test]
    async fn an_empty_bucket_reports_the_longest_wait() {
        let limits = Limits::new(Arc::new(MemoryCache::new("t")));
        let tight = Rule::per("tight", 1, Duration::from_secs(60));
        let loose = Rule::per("loose", 100, Duration::from_secs(60));
        assert!(limits.take(&[(tight, "a"), (loose, "a")]).await.is_ok());
        let wait = limits
            .take(&[(tight, "a"), (loose, "a")])
            .await
            .expect_err("tight bucket is empty");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert!(
            limits.take(&[(tight, "b")]).await.is_ok(),
            "buckets are per key"
        );
    }
}
