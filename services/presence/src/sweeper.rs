//! The sweeper (spec §A1, §A6): every instance drains the expiry index once a second; the
//! store hands each removal to exactly one caller, so exactly one instance publishes it.
//!
//! After the state store was unreachable, heartbeats could not land, so entries look older
//! than they are: before sweeping again every entry gets one more TTL (nothing expires for
//! one TTL after an outage: no mass OFFLINE).

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::state::StateError;
use crate::tracker::Tracker;

/// Index entries one sweep call takes (spec §A1: LIMIT 500).
const BATCH: usize = 500;

/// Sweep until `shutdown`.
pub async fn run(tracker: Tracker, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(tracker.settings.sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outage = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if outage {
            match grace(&tracker).await {
                Ok(()) => outage = false,
                Err(_) => continue,
            }
        }
        if let Err(error) = sweep(&tracker).await {
            if !outage {
                tracing::warn!(%error, "presence sweep failed; entries get one more TTL once it is back");
            }
            outage = error_is_outage(&error);
        }
    }
}

fn error_is_outage(error: &StateError) -> bool {
    error.is_unavailable()
}

/// Every entry lives at least one more TTL from now.
async fn grace(tracker: &Tracker) -> Result<(), StateError> {
    let until = Utc::now() + tracker.settings.ttl;
    while tracker.state.extend_until(until, BATCH).await? == BATCH {}
    tracing::info!("presence state is back: every entry lives one more TTL");
    Ok(())
}

/// Removes everything due now, publishing each change once.
pub async fn sweep(tracker: &Tracker) -> Result<(), StateError> {
    loop {
        let now = Utc::now();
        let updates = tracker.state.sweep(now, BATCH).await?;
        let full = updates.len() >= BATCH;
        for update in &updates {
            if update.before.manual.is_some() && update.after.manual.is_none() {
                let user = update.after.user_id;
                if let Err(error) = tracker.store.clear_manual_if_due(user, now).await {
                    // Persisted still; a reseed drops it since its end has passed.
                    tracing::warn!(%error, %user, "expired manual status not cleared in the database");
                }
            }
            tracker.publish(update).await;
        }
        metrics::counter!("echo_presence_swept_total").increment(updates.len() as u64);
        if !full {
            return Ok(());
        }
    }
}
