//! Per-feature rate limits (DESIGN §5): OTP requests and checks, and logins, per phone, per
//! number range and per client IP. Token buckets in the shared cache; when the cache is down
//! they fail open (a cache outage must not lock everyone out), and say so in the log.

use std::sync::Arc;
use std::time::Duration;

use echo_cache::{Cache, RateDecision, RateLimit};

/// One rule: a bucket per key.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Namespace of the bucket keys (`otp.send.phone`).
    pub name: &'static str,
    /// The bucket.
    pub limit: RateLimit,
}

const HOUR: Duration = Duration::from_secs(3600);

/// OTP sends per phone: 5 an hour (an SMS costs money and annoys the owner).
pub const OTP_SEND_PER_PHONE: Rule = Rule {
    name: "otp.send.phone",
    limit: per(5, HOUR),
};
/// OTP sends per number range: 100 an hour (stops SMS pumping across a range).
pub const OTP_SEND_PER_RANGE: Rule = Rule {
    name: "otp.send.range",
    limit: per(100, HOUR),
};
/// OTP sends per client IP: 20 an hour.
pub const OTP_SEND_PER_IP: Rule = Rule {
    name: "otp.send.ip",
    limit: per(20, HOUR),
};
/// Code checks per phone, across codes: 15 an hour (a code allows 5 itself).
pub const OTP_CHECK_PER_PHONE: Rule = Rule {
    name: "otp.check.phone",
    limit: per(15, HOUR),
};
/// Code checks per number range: 300 an hour.
pub const OTP_CHECK_PER_RANGE: Rule = Rule {
    name: "otp.check.range",
    limit: per(300, HOUR),
};
/// Password logins per phone: 10 every 15 minutes.
pub const LOGIN_PER_PHONE: Rule = Rule {
    name: "login.phone",
    limit: per(10, Duration::from_secs(900)),
};
/// Password logins per client IP: 60 every 15 minutes.
pub const LOGIN_PER_IP: Rule = Rule {
    name: "login.ip",
    limit: per(60, Duration::from_secs(900)),
};

const fn per(capacity: u32, window: Duration) -> RateLimit {
    RateLimit {
        capacity,
        refill_per_second: capacity as f64 / window.as_secs() as f64,
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
