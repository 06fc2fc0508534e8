//! Operator retention of messages (docs/lifecycle.md): how long messages are kept per kind of
//! conversation, and how MessageService's sweep (which also erases disappearing messages)
//! runs. Unset `max_age` keeps messages forever.
//!
//! ```toml
//! [retention]
//! max_age = { direct = 31536000, group = 7776000 }   # 1 year, 90 days; channels forever
//! sweep_interval = 60
//! batch_size = 1000
//! resolved_reports = 31536000                      # resolved reports' moderation record: 1 year
//! ```
//!
//! As variables: `ECHO_RETENTION__MAX_AGE__GROUP=7776000`, `ECHO_RETENTION__BATCH_SIZE=500`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The shortest `max_age` accepted (1 hour): anything shorter is a typo in seconds.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);
/// The largest sweep batch (messages erased in one transaction).
pub const MAX_SWEEP_BATCH: usize = 1000;

/// Retention and the expiry sweep. Defaults keep everything and sweep every minute.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "RawRetention")]
pub struct RetentionSettings {
    /// Messages older than this (from their send) are erased, per kind of conversation.
    pub max_age: MaxAge,
    /// How often the sweep looks for expired messages (disappearing messages and retention);
    /// an expired message's row (never its content: reads treat it as erased) may stay this
    /// long past its time. 1 s to 1 day.
    #[serde(with = "crate::humantime_secs")]
    pub sweep_interval: Duration,
    /// Most messages erased in one transaction (1 to 1000): a send into a conversation being
    /// swept waits at most one batch.
    pub batch_size: usize,
    /// How long a resolved report's moderation record (its copy of the reported message) is
    /// kept after its resolution; open reports are kept until resolved. 1 hour to 100 years.
    #[serde(with = "crate::humantime_secs")]
    pub resolved_reports: Duration,
}

/// `retention.max_age`: whole seconds per kind of conversation, at least an hour; unset keeps
/// them forever.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaxAge {
    /// Direct conversations.
    #[serde(with = "opt_secs", skip_serializing_if = "Option::is_none")]
    pub direct: Option<Duration>,
    /// Groups.
    #[serde(with = "opt_secs", skip_serializing_if = "Option::is_none")]
    pub group: Option<Duration>,
    /// Channels.
    #[serde(with = "opt_secs", skip_serializing_if = "Option::is_none")]
    pub channel: Option<Duration>,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            max_age: MaxAge::default(),
            sweep_interval: Duration::from_secs(60),
            batch_size: MAX_SWEEP_BATCH,
            resolved_reports: Duration::from_secs(365 * 86_400),
        }
    }
}

/// What the file and variables say, before [`RetentionSettings`] checks it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRetention {
    max_age: MaxAge,
    #[serde(with = "crate::humantime_secs")]
    sweep_interval: Duration,
    batch_size: usize,
    #[serde(with = "crate::humantime_secs")]
    resolved_reports: Duration,
}

impl Default for RawRetention {
    fn default() -> Self {
        let RetentionSettings {
            max_age,
            sweep_interval,
            batch_size,
            resolved_reports,
        } = RetentionSettings::default();
        Self {
            max_age,
            sweep_interval,
            batch_size,
            resolved_reports,
        }
    }
}

impl TryFrom<RawRetention> for RetentionSettings {
    type Error = String;

    fn try_from(raw: RawRetention) -> Result<Self, String> {
        for (kind, age) in [
            ("direct", raw.max_age.direct),
            ("group", raw.max_age.group),
            ("channel", raw.max_age.channel),
        ] {
            if age.is_some_and(|age| age < MIN_RETENTION) {
                return Err(format!(
                    "retention.max_age.{kind} must be at least {} seconds (1 hour), or unset \
                     to keep messages forever",
                    MIN_RETENTION.as_secs()
                ));
            }
        }
        if raw.sweep_interval < Duration::from_secs(1)
            || raw.sweep_interval > Duration::from_secs(86_400)
        {
            return Err("retention.sweep_interval must be 1 to 86400 seconds".into());
        }
        if !(1..=MAX_SWEEP_BATCH).contains(&raw.batch_size) {
            return Err(format!(
                "retention.batch_size must be 1 to {MAX_SWEEP_BATCH}"
            ));
        }
        if raw.resolved_reports < MIN_RETENTION
            || raw.resolved_reports > Duration::from_secs(100 * 365 * 86_400)
        {
            return Err(
                "retention.resolved_reports must be 3600 seconds (1 hour) to 100 years".into(),
            );
        }
        Ok(Self {
            max_age: raw.max_age,
            sweep_interval: raw.sweep_interval,
            batch_size: raw.batch_size,
            resolved_reports: raw.resolved_reports,
        })
    }
}

/// An optional duration in whole seconds.
mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.serialize_u64(value.as_secs()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let seconds = Option::<u64>::deserialize(deserializer)?;
        if seconds.is_some_and(|s| s > 100 * 365 * 86_400) {
            return Err(serde::de::Error::custom(
                "a max_age in whole seconds of at most 100 years",
            ));
        }
        Ok(seconds.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;

    fn parse(toml: &str) -> Result<RetentionSettings, String> {
        Figment::from(Toml::string(toml))
            .extract::<RetentionSettings>()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_keep_everything() {
        let settings = parse("").expect("defaults");
        assert_eq!(settings.max_age, MaxAge::default());
        assert_eq!(settings.batch_size, 1000);
        assert_eq!(settings.sweep_interval, Duration::from_secs(60));
        assert_eq!(settings.resolved_reports, Duration::from_secs(365 * 86_400));
    }

    #[test]
    fn max_age_per_kind() {
        let settings = parse("max_age = { group = 7776000 }\nbatch_size = 2").expect("parsed");
        assert_eq!(settings.max_age.group, Some(Duration::from_secs(7_776_000)));
        assert_eq!(settings.max_age.direct, None);
        assert_eq!(settings.batch_size, 2);
    }

    #[test]
    fn bad_values_are_refused() {
        for (toml, says) in [
            ("max_age = { direct = 60 }", "retention.max_age.direct"),
            ("batch_size = 0", "retention.batch_size"),
            ("batch_size = 1001", "retention.batch_size"),
            ("sweep_interval = 0", "retention.sweep_interval"),
            ("resolved_reports = 60", "retention.resolved_reports"),
            ("max_age = { forum = 3600 }", "forum"),
        ] {
            let error = parse(toml).expect_err(toml);
            assert!(error.contains(says), "{toml}: {error}");
        }
    }
}
