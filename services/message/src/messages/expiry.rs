//! The expiry sweep (docs/lifecycle.md): disappearing messages (each message's `expires_at`,
//! fixed at send from its conversation's `message_ttl`) and the operator's retention
//! (`retention.max_age` per kind of conversation), both erased exactly as a deletion for
//! everyone, in bounded batches ([`MessageStore::expire_batch`]), one MessagesExpired per
//! conversation and reason per batch.
//!
//! Every instance runs the sweep every `retention.sweep_interval`; instances sharing a
//! PostgreSQL database never erase a row twice (the batch locks its rows `SKIP LOCKED`), and
//! SQLite has one writer. The clock is an argument ([`sweep`]), so tests run one sweep at a
//! chosen time through [`crate::Message::sweep`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use echo_ids::ConversationId;

use crate::error::MessageError;
use crate::store::{MessageStore, Retention};

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Batches (transactions) that erased something.
    pub batches: usize,
    /// Messages erased.
    pub erased: usize,
    /// Resolved reports erased (past `retention.resolved_reports`).
    pub reports_erased: u64,
}

/// How the sweep runs: the retention per kind, the batch size and the interval.
#[derive(Clone, Copy, Debug)]
pub struct SweepSettings {
    /// Retention per kind of conversation.
    pub retention: Retention,
    /// Most messages per batch (1..=1000).
    pub batch_size: usize,
    /// Pause between sweeps.
    pub interval: Duration,
    /// How long a resolved report is kept after its resolution.
    pub resolved_reports: TimeDelta,
}

impl SweepSettings {
    /// The settings `retention` configures.
    pub fn from_config(settings: &echo_config::RetentionSettings) -> Self {
        let age = |d: Option<Duration>| d.and_then(|d| TimeDelta::from_std(d).ok());
        Self {
            retention: Retention {
                direct: age(settings.max_age.direct),
                group: age(settings.max_age.group),
                channel: age(settings.max_age.channel),
            },
            batch_size: settings.batch_size,
            interval: settings.sweep_interval,
            resolved_reports: TimeDelta::from_std(settings.resolved_reports)
                .unwrap_or(TimeDelta::MAX),
        }
    }
}

/// One sweep at `now`: batches until one is not full (or `stop` fires between batches).
pub async fn sweep(
    store: &MessageStore,
    settings: &SweepSettings,
    now: DateTime<Utc>,
    stop: &CancellationToken,
) -> Result<SweepReport, MessageError> {
    let mut report = SweepReport::default();
    loop {
        let batch = store
            .expire_batch(now, &settings.retention, settings.batch_size)
            .await?;
        if batch.erased > 0 {
            report.batches += 1;
            report.erased += batch.erased;
        }
        if !batch.full || stop.is_cancelled() {
            break;
        }
    }
    if let Some(before) = now.checked_sub_signed(settings.resolved_reports) {
        report.reports_erased = store.erase_resolved_reports(before).await?;
    }
    Ok(report)
}

/// Erases every live message of `conversation` created before `before` (an operator's purge),
/// in batches of `batch_size` (1..=1000), each its own transaction with its MessagesExpired
/// (reason OPERATOR_PURGE); how many were erased. Batches walk the conversation by seq, so a
/// purge of a million messages never re-reads the tombstones it left; a second walk catches a
/// row another transaction held (skipped) during the first.
pub async fn purge(
    store: &MessageStore,
    conversation: ConversationId,
    before: DateTime<Utc>,
    batch_size: usize,
) -> Result<usize, MessageError> {
    if store.conversation(conversation).await?.is_none() {
        return Err(MessageError::ConversationNotFound);
    }
    let mut erased = 0;
    for walk in 0..2 {
        let mut after_seq = 0;
        loop {
            let (batch, last_seq) = store
                .purge_batch(conversation, before, after_seq, Utc::now(), batch_size)
                .await?;
            erased += batch.erased;
            after_seq = last_seq;
            if !batch.full {
                break;
            }
        }
        if walk == 0 && erased == 0 {
            break;
        }
    }
    Ok(erased)
}

/// Runs a sweep every `settings.interval` until `shutdown` fires. A failed sweep is logged
/// and retried at the next interval.
pub fn start(store: Arc<MessageStore>, settings: SweepSettings, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(settings.interval) => {}
            }
            match sweep(&store, &settings, Utc::now(), &shutdown).await {
                Ok(report) if report.erased > 0 || report.reports_erased > 0 => {
                    tracing::info!(
                        erased = report.erased,
                        batches = report.batches,
                        reports_erased = report.reports_erased,
                        "expired messages erased"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "message expiry sweep failed"),
            }
        }
    });
}
