//! Group commit settings for SendMessage (DESIGN §6): how many sends may wait to be stored,
//! and how many share one transaction.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::humantime_secs;

/// How sends are batched into shared transactions. Defaults suit production.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendSettings {
    /// Sends waiting to be stored, per instance; one more is refused with UNAVAILABLE /
    /// OVERLOADED and RetryInfo instead of waiting (load shedding).
    pub queue: usize,
    /// Most sends one transaction stores (one commit, one fsync for all of them).
    pub max_batch: usize,
    /// Batches stored at once on PostgreSQL (each its own connection and transaction);
    /// SQLite has one writer, so one.
    pub committers: usize,
    /// Longest a batch may take to store, from taking a connection to the commit's answer;
    /// past it every send of the batch is answered UNAVAILABLE with RetryInfo. It bounds a
    /// send when the database stops answering without refusing (a dead link), which no pool
    /// or server-side timeout does. A send waits for at most the batch ahead of it and its
    /// own. If the commit was already on its way, the outcome is unknown: the client's retry
    /// with the same key finds the message stored once.
    #[serde(with = "humantime_secs")]
    pub commit_timeout: Duration,
}

impl Default for SendSettings {
    fn default() -> Self {
        Self {
            queue: 2048,
            max_batch: 128,
            committers: 4,
            // A healthy batch takes milliseconds and a loaded database's largest a second or
            // two; twice the pool's 5 s acquire timeout leaves room for both.
            commit_timeout: Duration::from_secs(10),
        }
    }
}
