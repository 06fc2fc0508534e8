//! Group commit settings for SendMessage (DESIGN §6): how many sends may wait to be stored,
//! and how many share one transaction.

use serde::{Deserialize, Serialize};

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
}

impl Default for SendSettings {
    fn default() -> Self {
        Self {
            queue: 2048,
            max_batch: 128,
            committers: 4,
        }
    }
}
