//! Token-bucket arithmetic shared by both backends.
//!
//! [`Bucket::take`] is the reference; [`TAKE_SCRIPT`] is the same computation in Lua so that
//! Redis runs it atomically against its own clock. Keep the two in step: the conformance suite
//! runs the same assertions against both.

use std::time::Duration;

use crate::CacheError;

/// How many tokens a bucket holds and how fast it refills.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// The burst size: a full bucket holds this many tokens.
    pub capacity: u32,
    /// Tokens added per second, continuously (fractions accumulate).
    pub refill_per_second: f64,
}

impl RateLimit {
    /// A bucket of `capacity` tokens refilling at `refill_per_second`.
    pub fn new(capacity: u32, refill_per_second: f64) -> Self {
        Self {
            capacity,
            refill_per_second,
        }
    }

    /// `capacity` tokens per `period`: e.g. `per(5, Duration::from_secs(60))` is five a minute,
    /// all of which may be spent at once.
    pub fn per(capacity: u32, period: Duration) -> Self {
        Self::new(capacity, f64::from(capacity) / period.as_secs_f64())
    }

    /// Refill rate in tokens per millisecond, the unit both backends compute in.
    pub fn per_ms(&self) -> f64 {
        self.refill_per_second / 1000.0
    }

    /// Rejects limits no request could ever satisfy, so neither backend has to decide what
    /// "retry after never" means.
    pub(crate) fn check(&self, cost: u32) -> Result<(), CacheError> {
        if self.capacity == 0
            || !(self.refill_per_second.is_finite() && self.refill_per_second > 0.0)
        {
            return Err(CacheError::InvalidArgument(format!(
                "rate limit needs capacity > 0 and a positive finite refill rate, got {self:?}"
            )));
        }
        if cost > self.capacity {
            return Err(CacheError::InvalidArgument(format!(
                "cost {cost} exceeds bucket capacity {}",
                self.capacity
            )));
        }
        Ok(())
    }
}

/// The answer to [`crate::Cache::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// The tokens were taken; `remaining` whole tokens are left.
    Allowed {
        /// Whole tokens left in the bucket after this take.
        remaining: u32,
    },
    /// Not enough tokens; nothing was taken.
    Limited {
        /// How long until the bucket holds enough tokens for the same cost.
        retry_after: Duration,
    },
}

impl RateDecision {
    /// True for [`RateDecision::Allowed`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, RateDecision::Allowed { .. })
    }
}

/// The stored state of one bucket: its tokens as of `at_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens left (fractions accumulate).
    pub tokens: f64,
    /// The instant of `tokens`, in milliseconds of the caller's clock.
    pub at_ms: f64,
}

/// What [`Bucket::take`] decided, plus what to store and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Taken, or how long to wait.
    pub decision: RateDecision,
    /// The new state to store, or `None` when nothing changed (a limited take).
    pub store: Option<Bucket>,
    /// Milliseconds until the stored bucket would be full again; past that an absent bucket
    /// means the same as a stored one, so it may expire.
    pub ttl_ms: u64,
}

impl Bucket {
    /// Takes `cost` tokens from `state` (a missing bucket is full) at time `now_ms`.
    pub fn take(state: Option<Bucket>, now_ms: f64, limit: RateLimit, cost: u32) -> Outcome {
        let capacity = f64::from(limit.capacity);
        let rate = limit.per_ms();
        let mut bucket = state.unwrap_or(Bucket {
            tokens: capacity,
            at_ms: now_ms,
        });
        // A clock that steps backwards must not mint tokens, so only move forward.
        if now_ms > bucket.at_ms {
            bucket.tokens = capacity.min(bucket.tokens + (now_ms - bucket.at_ms) * rate);
            bucket.at_ms = now_ms;
        }
        let cost = f64::from(cost);
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            let ttl_ms = (((capacity - bucket.tokens) / rate).ceil() as u64).max(1);
            Outcome {
                decision: RateDecision::Allowed {
                    remaining: bucket.tokens.floor() as u32,
                },
                store: Some(bucket),
                ttl_ms,
            }
        } else {
            let wait_ms = ((cost - bucket.tokens) / rate).ceil().max(1.0) as u64;
            Outcome {
                decision: RateDecision::Limited {
                    retry_after: Duration::from_millis(wait_ms),
                },
                store: None,
                ttl_ms: 0,
            }
        }
    }
}

/// [`Bucket::take`] in Lua, as the function
/// `take_bucket(key, capacity, rate_per_ms, cost, now_ms)` over the bucket hash `key`: returns
/// `{allowed (0|1), remaining whole tokens, retry_after_ms}` and, when allowed, stores the bucket
/// with its expiry (as [`Outcome`]). A macro so [`TAKE_SCRIPT`] and [`TAKE_FUNCTION`] are one
/// text: the cache reads the server's clock, a caller of the function passes its own.
macro_rules! take_function {
    () => {
        r#"
local function take_bucket(key, capacity, rate, cost, now)
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1])
  local at = tonumber(state[2])
  if tokens == nil or at == nil then
    tokens = capacity
    at = now
  end
  if now > at then
    tokens = math.min(capacity, tokens + (now - at) * rate)
    at = now
  end
  if tokens >= cost then
    tokens = tokens - cost
    redis.call('HSET', key, 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
    local ttl = math.max(1, math.ceil((capacity - tokens) / rate))
    redis.call('PEXPIRE', key, ttl)
    return {1, math.floor(tokens), 0}
  end
  return {0, 0, math.max(1, math.ceil((cost - tokens) / rate))}
end
"#
    };
}

/// The Lua function `take_bucket(key, capacity, rate_per_ms, cost, now_ms)`, [`Bucket::take`]
/// for scripts of other crates that take a token in the same round trip as their own writes
/// (presence's heartbeat). Prepend it to the script; numbers as [`RateLimit::per_ms`] gives.
pub const TAKE_FUNCTION: &str = take_function!();

/// [`Bucket::take`] in Lua. KEYS[1] = bucket hash; ARGV = capacity, tokens per ms, cost.
/// Returns `{allowed (0|1), remaining whole tokens, retry_after_ms}`.
///
/// It reads the server's TIME so every instance shares one clock; Redis 7 replicates script
/// effects, so calling TIME before writing is allowed.
pub(crate) const TAKE_SCRIPT: &str = concat!(
    take_function!(),
    r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
return take_bucket(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), now)
"#
);

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        capacity: 3,
        refill_per_second: 10.0,
    };

    fn drain(mut state: Option<Bucket>, now: f64, n: u32) -> Option<Bucket> {
        for _ in 0..n {
            let out = Bucket::take(state, now, LIMIT, 1);
            assert!(out.decision.is_allowed());
            state = out.store;
        }
        state
    }

    #[test]
    fn a_missing_bucket_is_full() {
        let out = Bucket::take(None, 0.0, LIMIT, 1);
        assert_eq!(out.decision, RateDecision::Allowed { remaining: 2 });
        assert_eq!(
            out.ttl_ms, 100,
            "one token at 10/s takes 100 ms to come back"
        );
    }

    #[test]
    fn an_empty_bucket_says_when_to_retry() {
        let state = drain(None, 0.0, 3);
        let out = Bucket::take(state, 0.0, LIMIT, 1);
        assert_eq!(
            out.decision,
            RateDecision::Limited {
                retry_after: Duration::from_millis(100)
            }
        );
        assert_eq!(out.store, None);
        let out = Bucket::take(state, 0.0, LIMIT, 2);
        assert_eq!(
            out.decision,
            RateDecision::Limited {
                retry_after: Duration::from_millis(200)
            }
        );
    }

    #[test]
    fn refill_is_continuous_and_capped() {
        let state = drain(None, 0.0, 3);
        assert!(!Bucket::take(state, 99.0, LIMIT, 1).decision.is_allowed());
        assert!(Bucket::take(state, 100.0, LIMIT, 1).decision.is_allowed());
        let out = Bucket::take(state, 60_000.0, LIMIT, 1);
        assert_eq!(out.decision, RateDecision::Allowed { remaining: 2 });
    }

    #[test]
    fn a_clock_stepping_back_mints_nothing() {
        let state = drain(None, 1_000.0, 3);
        assert!(!Bucket::take(state, 0.0, LIMIT, 1).decision.is_allowed());
    }

    #[test]
    fn impossible_limits_are_rejected() {
        assert!(LIMIT.check(4).is_err());
        assert!(RateLimit::new(0, 1.0).check(0).is_err());
        assert!(RateLimit::new(1, 0.0).check(1).is_err());
        assert!(RateLimit::new(1, f64::NAN).check(1).is_err());
        assert!(LIMIT.check(3).is_ok());
    }

    #[test]
    fn per_spreads_capacity_over_the_period() {
        let limit = RateLimit::per(5, Duration::from_secs(60));
        assert!((limit.refill_per_second - 5.0 / 60.0).abs() < 1e-12);
    }
}
