//! The watchers: the target adds them to its contacts (presence's visibility), each opens one
//! WatchPresence stream of the target, and the target's status changes reach them all — on
//! the instance the target uses, then (with a second instance) on the other one.
//!
//! One piece past 400 lines because it is one measurement: the way the watches are opened
//! (every stream read to an unrestricted snapshot, restricted ones reopened, UNAVAILABLE waited
//! out) is what lets the matcher (`Matched`) pair the `j`th item after a snapshot with the
//! `j`th change; reads.rs holds the scenario's other, independent parts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use echo_proto::echo::presence::v1::watch_presence_response::Event;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use tonic_types::StatusExt as _;

use super::Bench;
use crate::client::presence::{
    self as api, PresenceClient, Watching, presence_client, user_client,
};
use crate::client::users::User;
use crate::client::{Pool, failure_label, live};
use crate::report::round1;
use crate::stats::{Clock, Latencies, per_second};

/// AddContact calls in flight at once: the user service serialises one owner's contact
/// changes on a lock (PostgreSQL: an advisory lock per owner), so more would only hold more
/// database connections waiting for it.
const CONTACT_CONCURRENCY: usize = 4;
/// UNAVAILABLE answers a watch waits out (with the server's RetryInfo) before the bench gives
/// up, as an app reopens with backoff.
const UNAVAILABLE_RETRIES: u32 = 30;
/// How long visibility may take to reach presence's projections.
const VISIBLE_WITHIN: Duration = Duration::from_secs(120);
/// Times a watch whose snapshot said `restricted` is reopened (projections catching up).
const REOPENS: u32 = 20;
/// How often the target's device heartbeats while the watchers are up (TTL 75 s).
const KEEP_PRESENT_EVERY: Duration = Duration::from_secs(20);

/// Visibility: the target adds every watcher to its contacts (watchers see it under its
/// default `last_seen` setting, CONTACTS), and each reader adds the target (the target then
/// sees the readers in GetPresence).
pub async fn befriend(
    bench: &Bench<'_>,
    target: &User,
    watchers: &[User],
    readers: &[User],
) -> anyhow::Result<Value> {
    let bar = bench
        .progress
        .bar(watchers.len() as u64, "target adds contacts");
    let started = Instant::now();
    futures::stream::iter(watchers.iter().enumerate())
        .map(|(index, watcher)| {
            let client = user_client(bench.pool.get(index), &target.bearer);
            let bar = &bar;
            async move {
                api::add_contact(&client, &watcher.user_id).await?;
                bar.inc(1);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONTACT_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    let took = started.elapsed();
    bar.finish_and_clear();
    futures::stream::iter(readers.iter().enumerate())
        .map(|(index, reader)| async move {
            let client = user_client(bench.pool.get(index), &reader.bearer);
            api::add_contact(&client, &target.user_id).await
        })
        .buffer_unordered(CONTACT_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(json!({
        "added": watchers.len(),
        "per_s": per_second(watchers.len() as u64, took),
        "readers_added_target": readers.len(),
    }))
}

/// The fan-out figures: on the target's instance, and on the other one (or null).
pub struct FanOut {
    pub same: Value,
    pub across: Value,
}

/// Phases 3 and 4.
pub async fn fan_out(
    bench: &Bench<'_>,
    target: &User,
    watchers: &[User],
) -> anyhow::Result<FanOut> {
    let target_client = presence_client(bench.pool.get(0), &target.bearer);
    let keep_present = CancellationToken::new();
    let keeper = tokio::spawn({
        let mut client = target_client.clone();
        let stop = keep_present.clone();
        async move {
            loop {
                let _ = api::heartbeat(&mut client, false).await;
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(KEEP_PRESENT_EVERY) => {}
                }
            }
        }
    });
    let outcome = async {
        if let Some(last) = watchers.last() {
            visible(bench.pool, last, target).await?;
        }
        // At most --streams-per-connection watches on a connection: more connections than
        // the calls' when the watchers need them, opened before the memory is read (the
        // figure is per watch, not per connection).
        let streams = bench.pool.for_streams(watchers.len()).await?;
        let mut away = false;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = bench.server.memory_kib();
        let (watching, opening) = open_all(bench, &streams, watchers, target).await?;
        tokio::time::sleep(Duration::from_secs(bench.args.settle)).await;
        let after = bench.server.memory_kib();
        let mut same = changes(bench, &target_client, watching, &mut away, "same instance").await?;
        let per_watch_kib = match (before, after) {
            (Some(before), Some(after)) => Some(round1(
                after.saturating_sub(before) as f64 / watchers.len() as f64,
            )),
            _ => None,
        };
        same["opening"] = opening;
        same["rss_before_kib"] = json!(before);
        same["rss_after_kib"] = json!(after);
        same["per_watch_kib"] = json!(per_watch_kib);
        same["memory_of"] = json!(bench.server.memory_of());
        let across = match bench.other {
            Some(other) => {
                let streams = other.for_streams(watchers.len()).await?;
                let (watching, opening) = open_all(bench, &streams, watchers, target).await?;
                let mut across =
                    changes(bench, &target_client, watching, &mut away, "other instance").await?;
                across["opening"] = opening;
                across
            }
            None => Value::Null,
        };
        Ok(FanOut { same, across })
    }
    .await;
    keep_present.cancel();
    let _ = keeper.await;
    outcome
}

/// Wait until `watcher` may see `target` (the contact reached presence's projections; they
/// apply events in order, so the last watcher added is the last to become visible).
async fn visible(pool: &Pool, watcher: &User, target: &User) -> anyhow::Result<()> {
    let mut client = presence_client(pool.get(0), &watcher.bearer);
    let deadline = Instant::now() + VISIBLE_WITHIN;
    let ids = [target.user_id.clone()];
    loop {
        let presences = api::get(&mut client, &ids).await?;
        if presences.iter().all(|p| !p.restricted) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the last watcher still cannot see the target after {VISIBLE_WITHIN:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One watch per watcher on `pool`, each read to its snapshot; a `restricted` snapshot is
/// reopened after a pause. Returns the streams and how opening went.
async fn open_all(
    bench: &Bench<'_>,
    pool: &Pool,
    watchers: &[User],
    target: &User,
) -> anyhow::Result<(Vec<Watching>, Value)> {
    let bar = bench.progress.bar(watchers.len() as u64, "opening watches");
    let reopened = AtomicU64::new(0);
    let unavailable = AtomicU64::new(0);
    let started = Instant::now();
    let watching: Vec<Watching> = futures::stream::iter(watchers.iter().enumerate())
        .map(|(index, watcher)| {
            let mut client = presence_client(pool.get(index), &watcher.bearer);
            let (bar, reopened, unavailable) = (&bar, &reopened, &unavailable);
            async move {
                for _ in 0..REOPENS {
                    let watching =
                        watch_retrying(&mut client, &target.user_id, unavailable).await?;
                    if !watching.snapshot.restricted {
                        bar.inc(1);
                        return Ok(watching);
                    }
                    drop(watching);
                    reopened.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                bail!("a watcher's snapshot stayed restricted")
            }
        })
        .buffer_unordered(bench.args.open_concurrency.max(1))
        .try_collect()
        .await
        .with_context(|| format!("opening WatchPresence: {}", pool.layout(watchers.len())))?;
    let took = started.elapsed();
    bar.finish_and_clear();
    let opening = json!({
        "streams": watching.len(),
        "connections": pool.len(),
        "streams_per_connection": pool.streams_per_connection(),
        "opened_per_s": per_second(watching.len() as u64, took),
        "opening_s": took.as_secs_f64(),
        "reopened_restricted": reopened.load(Ordering::Relaxed),
        "unavailable_retries": unavailable.load(Ordering::Relaxed),
    });
    Ok((watching, opening))
}

/// Open a watch, waiting out UNAVAILABLE answers as the server's RetryInfo says.
async fn watch_retrying(
    client: &mut PresenceClient,
    target: &str,
    unavailable: &AtomicU64,
) -> anyhow::Result<Watching> {
    let mut retries = 0;
    loop {
        match api::watch(client, target).await {
            Ok(watching) => return Ok(watching),
            Err(error) => {
                let Some(status) = error.downcast_ref::<tonic::Status>() else {
                    return Err(error);
                };
                if status.code() != tonic::Code::Unavailable || retries >= UNAVAILABLE_RETRIES {
                    return Err(error);
                }
                retries += 1;
                unavailable.fetch_add(1, Ordering::Relaxed);
                let delay = status
                    .get_details_retry_info()
                    .and_then(|info| info.retry_delay)
                    .unwrap_or(Duration::from_secs(1));
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// What one watch stream received after its snapshot.
#[derive(Debug, Default)]
struct Seen {
    /// (arrival µs on the run's clock, status) of every Presence item.
    items: Vec<(u64, i32)>,
    /// Why the stream ended before the bench stopped it, if it did.
    ended: Option<String>,
}

fn collect(
    mut stream: Streaming<echo_proto::echo::presence::v1::WatchPresenceResponse>,
    clock: Clock,
    received: Arc<AtomicU64>,
    stop: CancellationToken,
) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        loop {
            let item = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                item = stream.message() => item,
            };
            match item {
                Ok(Some(response)) => {
                    if let Some(Event::Presence(presence)) = response.event {
                        seen.items.push((clock.now_micros(), presence.status));
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(None) => {
                    seen.ended = Some("the server closed the stream".into());
                    break;
                }
                Err(status) => {
                    seen.ended = Some(failure_label(&status));
                    break;
                }
            }
        }
        seen
    })
}

/// The target changes its status `--changes` times while every stream is read; the figures.
async fn changes(
    bench: &Bench<'_>,
    target: &PresenceClient,
    watching: Vec<Watching>,
    away: &mut bool,
    label: &str,
) -> anyhow::Result<Value> {
    let args = bench.args;
    let watchers = watching.len();
    let current = api::status(*away) as i32;
    let snapshot_mismatch = watching
        .iter()
        .filter(|w| w.snapshot.status != current)
        .count();
    let received = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let collectors: Vec<JoinHandle<Seen>> = watching
        .into_iter()
        .map(|w| collect(w.stream, bench.clock, received.clone(), stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut starts = Vec::with_capacity(args.changes);
    let mut set_status = Latencies::new();
    let every = Duration::from_millis(args.change_every_ms);
    let first = tokio::time::Instant::now();
    let bar = bench
        .progress
        .bar(args.changes as u64, &format!("changes, {label}"));
    for k in 0..args.changes {
        tokio::time::sleep_until(first + every * u32::try_from(k).unwrap_or(u32::MAX)).await;
        *away = !*away;
        let at = bench.clock.now_micros();
        let call_started = Instant::now();
        if let Err(status) = api::set_status(&mut target.clone(), *away).await {
            stop.cancel();
            bail!("SetStatus: {status:?}");
        }
        set_status.record(call_started.elapsed());
        starts.push((at, *away));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let expected = (watchers * args.changes) as u64;
    let bar = bench.progress.bar(expected, "awaiting presence items");
    live::wait_for(&received, expected, Duration::from_secs(10), &bar).await;
    bar.finish_and_clear();
    stop.cancel();
    let mut seen = Vec::with_capacity(collectors.len());
    for collector in collectors {
        seen.push(collector.await.unwrap_or_else(|error| Seen {
            ended: Some(format!("collector failed: {error}")),
            ..Seen::default()
        }));
    }
    let matched = Matched::of(&starts, &seen);
    Ok(json!({
        "watchers": watchers,
        "changes": args.changes,
        "change_every_ms": args.change_every_ms,
        "latency": matched.all.summary(),
        "per_change": matched.per_change.iter().map(Latencies::summary).collect::<Vec<_>>(),
        "first_item_ms": matched.first_items_ms(&starts),
        "items_per_s": matched.items_per_s(),
        "set_status": set_status.summary(),
        "expected": expected,
        "matched": matched.all.count(),
        "lost": expected.saturating_sub(matched.all.count()),
        "unexpected": matched.unexpected,
        "snapshot_mismatch": snapshot_mismatch,
        "stream_endings": matched.endings,
    }))
}

/// Items matched to the changes that caused them: the `j`th item a stream gets after its
/// snapshot belongs to the `j`th change when it carries that change's status.
#[derive(Debug)]
struct Matched {
    all: Latencies,
    per_change: Vec<Latencies>,
    /// (first, last) arrival per change, µs.
    spans: Vec<Option<(u64, u64)>>,
    unexpected: u64,
    endings: Vec<String>,
}

impl Matched {
    fn of(starts: &[(u64, bool)], seen: &[Seen]) -> Self {
        let mut matched = Matched {
            all: Latencies::new(),
            per_change: vec![Latencies::new(); starts.len()],
            spans: vec![None; starts.len()],
            unexpected: 0,
            endings: Vec::new(),
        };
        for stream in seen {
            for (j, &(arrived, status)) in stream.items.iter().enumerate() {
                let Some(&(changed, away)) = starts.get(j) else {
                    matched.unexpected += 1;
                    continue;
                };
                if status != api::status(away) as i32 {
                    matched.unexpected += 1;
                    continue;
                }
                let latency = arrived.saturating_sub(changed);
                matched.all.record_micros(latency);
                matched.per_change[j].record_micros(latency);
                let span = matched.spans[j].get_or_insert((arrived, arrived));
                span.0 = span.0.min(arrived);
                span.1 = span.1.max(arrived);
            }
            if let Some(ended) = &stream.ended {
                matched.endings.push(ended.clone());
            }
        }
        matched.endings.sort();
        matched.endings.dedup();
        matched
    }

    /// Per change, how long after it the first watcher had its item (ms).
    fn first_items_ms(&self, starts: &[(u64, bool)]) -> Vec<Option<f64>> {
        self.spans
            .iter()
            .zip(starts)
            .map(|(span, (changed, _))| {
                span.map(|(first, _)| round1(first.saturating_sub(*changed) as f64 / 1000.0))
            })
            .collect()
    }

    /// Items per second while one change is handed out (its items over the time from its
    /// first to its last arrival), the median over the changes.
    fn items_per_s(&self) -> f64 {
        let counts: Vec<u64> = self.per_change.iter().map(Latencies::count).collect();
        crate::scenarios::stream_floor::median_rate(&counts, &self.spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(away: bool) -> i32 {
        api::status(away) as i32
    }

    #[test]
    fn items_match_the_changes_in_order() {
        // Two changes: AWAY at 1,000 µs, ONLINE at 3,000,000 µs.
        let starts = [(1_000, true), (3_000_000, false)];
        let seen = [
            Seen {
                items: vec![(6_000, status(true)), (3_010_000, status(false))],
                ended: None,
            },
            Seen {
                // Missed the first change: its only item carries the second's status.
                items: vec![(3_020_000, status(false))],
                ended: Some("Unavailable/RESUME".into()),
            },
            Seen {
                items: vec![
                    (11_000, status(true)),
                    (3_030_000, status(false)),
                    (4_000_000, status(true)),
                ],
                ended: None,
            },
        ];
        let matched = Matched::of(&starts, &seen);
        assert_eq!(matched.all.count(), 4);
        assert_eq!(matched.unexpected, 2);
        assert_eq!(matched.per_change[0].count(), 2);
        assert_eq!(matched.per_change[1].count(), 2);
        assert_eq!(matched.spans[0], Some((6_000, 11_000)));
        assert_eq!(matched.first_items_ms(&starts), [Some(5.0), Some(10.0)]);
        assert_eq!(matched.endings, ["Unavailable/RESUME"]);
        let summary = matched.all.summary();
        // Within HdrHistogram's resolution (3 significant digits).
        assert!((summary.max_ms - 30.0).abs() < 0.05, "{summary:?}");
        // Change 0: 2 items over 5 ms; change 1: 2 items over 20 ms.
        assert!([400.0, 100.0].contains(&matched.items_per_s()));
    }
}
