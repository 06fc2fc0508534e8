//! The hub's reader: follows the message outbox in commit-safe order, one query per wake-up
//! for the whole instance, and fans each batch out.
//!
//! Woken by a commit in this process, by PostgreSQL's NOTIFY for commits in other processes,
//! and by the bus (an event published by any instance is a hint that the outbox moved); and it
//! polls as a fallback. Hints never carry what is delivered: the database does, so a lost
//! hint delays an event by at most the poll interval and never loses it.

use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{FutureExt as _, StreamExt as _};
use tokio_util::sync::CancellationToken;

use super::LiveError;
use super::hub::Hub;
use super::items::{Durable, Route, decode_all, hydrate};

/// Rows read per query.
const BATCH: i64 = 512;
/// How often the buffered-items gauge is refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(1);
/// How often the outbox is read with no wake-up at all.
const POLL: Duration = Duration::from_millis(500);
/// First quick look again after a wake-up that found nothing; doubled up to RECHECK_UNTIL.
const RECHECK_FIRST: Duration = Duration::from_millis(1);
const RECHECK_UNTIL: Duration = Duration::from_millis(128);
/// Longest wait between retries after a failed read.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Follow the outbox until `shutdown`.
pub(crate) async fn follow(hub: Hub, shutdown: CancellationToken) {
    let mut commits = hub.shared.outbox.watch_commits();
    let mut hints = match hub.shared.bus.subscribe_ephemeral("echo.message.>").await {
        Ok(hints) => Some(hints),
        Err(error) => {
            tracing::warn!(%error, "no bus hints for live delivery; commits and polling only");
            None
        }
    };
    let mut backoff = Duration::from_millis(100);
    // After a wake-up that found nothing new, look again soon: the commit that woke us may be
    // readable only once an older, unrelated write transaction ends (the xmin horizon), and
    // that end sends no notification.
    let mut recheck: Option<Duration> = None;
    let mut gauged: Option<Instant> = None;
    loop {
        let wait = match catch_up(&hub).await {
            Ok(rows) => {
                backoff = Duration::from_millis(100);
                recheck = match recheck {
                    Some(delay) if rows == 0 && delay < RECHECK_UNTIL => Some(delay * 2),
                    _ => None,
                };
                recheck.unwrap_or(POLL)
            }
            Err(error) => {
                tracing::warn!(%error, ?backoff, "live delivery could not read the outbox; retrying");
                backoff = (backoff * 2).min(MAX_BACKOFF);
                backoff
            }
        };
        // Once a second at most: it walks every stream under the lock that delivery takes.
        if gauged.is_none_or(|at| at.elapsed() >= GAUGE_EVERY) {
            gauged = Some(Instant::now());
            metrics::gauge!("echo_live_buffered_items").set(hub.buffered_items() as f64);
        }
        let woken = tokio::select! {
            () = shutdown.cancelled() => return,
            () = commits.changed() => true,
            () = next_hint(&mut hints) => true,
            () = tokio::time::sleep(wait) => false,
        };
        if woken && recheck.is_none() {
            recheck = Some(RECHECK_FIRST);
        }
    }
}

async fn next_hint(hints: &mut Option<BoxStream<'static, (String, bytes::Bytes)>>) {
    match hints {
        Some(stream) => {
            if stream.next().await.is_none() {
                *hints = None;
                return;
            }
            // One read serves every hint already here.
            while let Some(Some(_)) = stream.next().now_or_never() {}
        }
        None => std::future::pending().await,
    }
}

/// Read and fan out everything committed since the hub's position; how many rows it read.
async fn catch_up(hub: &Hub) -> Result<usize, LiveError> {
    let shared = &hub.shared;
    let mut read = 0;
    loop {
        let after = hub.position();
        let head = shared.outbox.head().await?;
        if head <= after {
            return Ok(read);
        }
        let rows = shared.outbox.read_range(after, head, BATCH).await?;
        let full = rows.len() as i64 >= BATCH;
        let upto = match rows.last() {
            Some((position, _)) if full => *position,
            _ => head,
        };
        read += rows.len();
        let mut batch = decode_all(&rows, shared.epoch);
        if hub.has_streams() {
            load_members(hub, &batch).await?;
            hydrate(shared.store.as_ref(), &mut batch).await?;
        }
        hub.fan_out(batch, upto);
        if !full {
            return Ok(read);
        }
    }
}

/// Load the membership of every conversation in `batch` the cache cannot answer for.
async fn load_members(hub: &Hub, batch: &[Durable]) -> Result<(), LiveError> {
    let shared = &hub.shared;
    for durable in batch {
        let Route::Conversation { id, seq, .. } = durable.route else {
            continue;
        };
        let missing = hub.members().needs_load(id, seq);
        if missing {
            let periods = shared.store.periods_of_conversation(id, seq).await?;
            hub.members().insert(id, seq, &periods);
        }
    }
    Ok(())
}
