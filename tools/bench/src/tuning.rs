//! Server settings the bench's flags change in an Echo it starts (in-process or child): the
//! group commit of SendMessage (`send.*`, docs/sending.md). A `--target` runs with its own
//! configuration; these flags never reach it. Unset, each is the server's default.

use std::time::Duration;

use echo_config::Config;

/// The `send.*` settings the flags set (None: the server's default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerTuning {
    /// `send.queue`.
    pub send_queue: Option<usize>,
    /// `send.max_batch`.
    pub send_max_batch: Option<usize>,
    /// `send.committers`.
    pub send_committers: Option<usize>,
    /// `send.commit_timeout`, seconds.
    pub send_commit_timeout: Option<f64>,
}

impl ServerTuning {
    /// Change an in-process server's configuration.
    pub fn apply(&self, config: &mut Config) {
        if let Some(queue) = self.send_queue {
            config.send.queue = queue;
        }
        if let Some(max_batch) = self.send_max_batch {
            config.send.max_batch = max_batch;
        }
        if let Some(committers) = self.send_committers {
            config.send.committers = committers;
        }
        if let Some(seconds) = self.send_commit_timeout {
            config.send.commit_timeout = Duration::from_secs_f64(seconds);
        }
    }

    /// The same as a child's `ECHO_*` variables.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        let mut set = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                env.push((name.to_owned(), value));
            }
        };
        set("ECHO_SEND__QUEUE", self.send_queue.map(|v| v.to_string()));
        set(
            "ECHO_SEND__MAX_BATCH",
            self.send_max_batch.map(|v| v.to_string()),
        );
        set(
            "ECHO_SEND__COMMITTERS",
            self.send_committers.map(|v| v.to_string()),
        );
        set(
            "ECHO_SEND__COMMIT_TIMEOUT",
            self.send_commit_timeout.map(|v| v.to_string()),
        );
        env
    }

    /// What reports say about it: `send.max_batch=512` …, or nothing when all are defaults.
    pub fn describe(&self) -> String {
        let mut config = Config::default();
        self.apply(&mut config);
        let send = &config.send;
        let mut parts = Vec::new();
        if self.send_queue.is_some() {
            parts.push(format!("send.queue={}", send.queue));
        }
        if self.send_max_batch.is_some() {
            parts.push(format!("send.max_batch={}", send.max_batch));
        }
        if self.send_committers.is_some() {
            parts.push(format!("send.committers={}", send.committers));
        }
        if self.send_commit_timeout.is_some() {
            parts.push(format!(
                "send.commit_timeout={}s",
                send.commit_timeout.as_secs_f64()
            ));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_flags_leave_the_defaults() {
        let tuning = ServerTuning::default();
        let mut config = Config::default();
        tuning.apply(&mut config);
        let default = Config::default().send;
        assert_eq!(config.send.queue, default.queue);
        assert_eq!(config.send.max_batch, default.max_batch);
        assert_eq!(config.send.committers, default.committers);
        assert_eq!(config.send.commit_timeout, default.commit_timeout);
        assert!(tuning.env().is_empty());
        assert_eq!(tuning.describe(), "");
    }

    #[test]
    fn set_flags_reach_the_config_and_the_child_environment() {
        let tuning = ServerTuning {
            send_queue: Some(8192),
            send_max_batch: Some(512),
            send_committers: Some(2),
            send_commit_timeout: Some(2.5),
        };
        let mut config = Config::default();
        tuning.apply(&mut config);
        assert_eq!(config.send.queue, 8192);
        assert_eq!(config.send.max_batch, 512);
        assert_eq!(config.send.committers, 2);
        assert_eq!(config.send.commit_timeout, Duration::from_millis(2500));
        assert_eq!(
            tuning.env(),
            [
                ("ECHO_SEND__QUEUE", "8192"),
                ("ECHO_SEND__MAX_BATCH", "512"),
                ("ECHO_SEND__COMMITTERS", "2"),
                ("ECHO_SEND__COMMIT_TIMEOUT", "2.5"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(
            tuning.describe(),
            "send.queue=8192 send.max_batch=512 send.committers=2 send.commit_timeout=2.5s"
        );
    }
}
