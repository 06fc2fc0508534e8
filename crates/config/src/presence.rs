//! Presence settings (DESIGN §9, spec §A): heartbeat cadence, entry lifetime, watch streams.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::humantime_secs;

/// How presence behaves. Defaults are the spec's; tests shrink them (TTL 3 s, interval 1 s).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceSettings {
    /// Told to clients as `next_heartbeat_in`.
    #[serde(with = "humantime_secs")]
    pub heartbeat_interval: Duration,
    /// How long a device stays present after its last refresh; at least twice the interval,
    /// so one lost heartbeat does not flap the status.
    #[serde(with = "humantime_secs")]
    pub ttl: Duration,
    /// How long a device stays present after its Subscribe stream closed cleanly.
    #[serde(with = "humantime_secs")]
    pub stream_closed_ttl: Duration,
    /// A watch stream idle this long gets a heartbeat.
    #[serde(with = "humantime_secs")]
    pub watch_heartbeat: Duration,
    /// Open watch streams per user, across instances.
    pub max_watch_streams: usize,
    /// Changes buffered per watch stream; one more ends it with UNAVAILABLE / RESUME.
    pub watch_buffer: usize,
    /// How often each instance re-reads what its watchers watch (heals lost hints).
    #[serde(with = "humantime_secs")]
    pub reconcile_every: Duration,
    /// How often the sweeper looks for expired entries.
    #[serde(with = "humantime_secs")]
    pub sweep_every: Duration,
    /// ONLINE↔AWAY changes of one user go out at most this often (latest wins).
    #[serde(with = "humantime_secs")]
    pub damping: Duration,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(30),
            ttl: Duration::from_secs(75),
            stream_closed_ttl: Duration::from_secs(10),
            watch_heartbeat: Duration::from_secs(25),
            max_watch_streams: 16,
            watch_buffer: 256,
            reconcile_every: Duration::from_secs(60),
            sweep_every: Duration::from_secs(1),
            damping: Duration::from_secs(2),
        }
    }
}

impl PresenceSettings {
    /// Why these settings cannot work, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.heartbeat_interval.is_zero() || self.ttl < self.heartbeat_interval * 2 {
            return Some(format!(
                "presence.ttl ({:?}) must be at least twice presence.heartbeat_interval ({:?}), \
                 which must be above zero",
                self.ttl, self.heartbeat_interval
            ));
        }
        let zero = [
            ("presence.watch_heartbeat", self.watch_heartbeat),
            ("presence.reconcile_every", self.reconcile_every),
            ("presence.sweep_every", self.sweep_every),
            ("presence.stream_closed_ttl", self.stream_closed_ttl),
        ]
        .into_iter()
        .find(|(_, value)| value.is_zero());
        if let Some((name, _)) = zero {
            return Some(format!("{name} must be above zero"));
        }
        if self.max_watch_streams == 0 || self.watch_buffer == 0 {
            return Some(
                "presence.max_watch_streams and presence.watch_buffer must be at least 1".into(),
            );
        }
        None
    }
}
