//! Live delivery settings (DESIGN §7): the Subscribe stream's heartbeat, buffer and replay
//! limits, and typing indicators.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::humantime_secs;

/// How Subscribe streams behave. Defaults suit production; tests shrink them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveSettings {
    /// A stream idle this long gets a Heartbeat (clients reconnect after twice this silence).
    #[serde(with = "humantime_secs")]
    pub heartbeat_interval: Duration,
    /// Items buffered per stream for a slow reader; one more ends the stream with
    /// UNAVAILABLE / RESUME (the client resumes from its last cursor).
    pub stream_buffer: usize,
    /// Most durable events one resume replays; further behind gets ResyncRequired
    /// (TOO_FAR_BEHIND), since refetching is cheaper.
    pub replay_limit: i64,
    /// How long a typing indicator lasts unless renewed.
    #[serde(with = "humantime_secs")]
    pub typing_ttl: Duration,
    /// Receipts and others' read markers go live only to conversations this small (and never
    /// to channels).
    pub receipt_max_members: i64,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(20),
            stream_buffer: 1024,
            replay_limit: 10_000,
            typing_ttl: Duration::from_secs(6),
            receipt_max_members: 256,
        }
    }
}
