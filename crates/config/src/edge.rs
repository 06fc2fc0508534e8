//! The edge in split mode: how it finds every instance of an upstream, how long a failed one
//! is skipped, and the limits it puts on forwarded calls (per client IP, per user, streams per
//! user). See docs/edge.md.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::humantime_secs;

/// Balancing and limits of the edge's forwarded calls. Defaults suit production.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeSettings {
    /// How often each upstream host name is resolved again, so the instances behind a name (a
    /// Kubernetes headless Service's pod IPs) are followed as they come and go; above zero.
    #[serde(with = "humantime_secs")]
    pub resolve_every: Duration,
    /// How long an instance whose connection failed (refused, reset) is skipped before it is
    /// tried again; above zero.
    #[serde(with = "humantime_secs")]
    pub down_for: Duration,
    /// Forwarded calls per second each client IP may make (the IP from `x-forwarded-for` when
    /// the peer is in `trusted_proxies`); 0 turns the per-IP limit off.
    pub ip_calls_per_second: u32,
    /// Calls a client IP may make at once above its rate (the bucket's size); at least the
    /// rate when the limit is on.
    pub ip_burst: u32,
    /// Forwarded calls per second each authenticated user may make, over all their devices;
    /// 0 turns the per-user limit off.
    pub user_calls_per_second: u32,
    /// Calls a user may make at once above their rate; at least the rate when the limit is on.
    pub user_burst: u32,
    /// Server streams (Subscribe, WatchPresence) one user may hold open through this edge at
    /// once, over all their devices; one more is RESOURCE_EXHAUSTED. 0 turns the cap off.
    pub user_streams: u32,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self {
            resolve_every: Duration::from_secs(10),
            down_for: Duration::from_secs(2),
            // Generous: many users may share one address behind a carrier NAT.
            ip_calls_per_second: 200,
            ip_burst: 400,
            user_calls_per_second: 50,
            user_burst: 100,
            // Two streams per device (Subscribe and WatchPresence) for a handful of devices.
            user_streams: 16,
        }
    }
}

impl EdgeSettings {
    /// What makes these settings unusable, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.resolve_every.is_zero() || self.down_for.is_zero() {
            return Some("edge.resolve_every and edge.down_for must be above zero seconds".into());
        }
        let buckets = [
            ("ip", self.ip_calls_per_second, self.ip_burst),
            ("user", self.user_calls_per_second, self.user_burst),
        ];
        for (scope, rate, burst) in buckets {
            if rate > 0 && burst < rate {
                return Some(format!(
                    "edge.{scope}_burst ({burst}) must be at least edge.{scope}_calls_per_second \
                     ({rate}): a smaller bucket refuses calls the rate allows"
                ));
            }
        }
        None
    }
}
