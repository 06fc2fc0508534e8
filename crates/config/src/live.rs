//! Live delivery settings (DESIGN §7): the Subscribe stream's heartbeat, buffer and replay
//! limits, typing indicators, and how often open streams are reported to presence.

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
    /// How often each instance lists the devices with a stream open on it
    /// (`echo.live.streams_alive.<instance>`), so presence keeps them online without client
    /// heartbeats; above zero (presence-notification spec A5).
    #[serde(with = "positive_secs")]
    pub streams_alive_every: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(20),
            stream_buffer: 1024,
            replay_limit: 10_000,
            typing_ttl: Duration::from_secs(6),
            receipt_max_members: 256,
            streams_alive_every: Duration::from_secs(30),
        }
    }
}

/// Whole seconds like every duration, refusing zero: a timer firing every zero seconds would
/// spin.
mod positive_secs {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        crate::humantime_secs::serialize(value, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let value = crate::humantime_secs::deserialize(deserializer)?;
        if value.is_zero() {
            return Err(serde::de::Error::custom("a duration above zero seconds"));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<LiveSettings, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn streams_alive_every_is_seconds_above_zero() {
        assert_eq!(
            LiveSettings::default().streams_alive_every,
            Duration::from_secs(30)
        );
        let short = parse(r#"{"streams_alive_every": 0.2}"#).expect("fractions of a second");
        assert_eq!(short.streams_alive_every, Duration::from_millis(200));
        assert!(
            parse(r#"{"streams_alive_every": 0}"#).is_err(),
            "zero refused"
        );
    }
}
