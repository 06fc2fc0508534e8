//! Heartbeats of many devices (first, closed loop, open loop) and GetPresence of 100 ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Bench;
use crate::client::presence::{self as api, PresenceClient, presence_client};
use crate::client::users::User;
use crate::client::{Bearer, failure_label};
use crate::report::note;
use crate::scenarios::{Failures, paced};
use crate::stats::{Latencies, per_second};

/// Calls of the open-loop runs that may be unanswered at once.
const MAX_IN_FLIGHT: usize = 4096;
/// A pause between the loops: a device's bucket (2 heartbeats, 1 a second) refills in 2 s.
const REFILL: Duration = Duration::from_secs(2);
/// How long visibility may take to reach presence's projections.
const VISIBLE_WITHIN: Duration = Duration::from_secs(60);

/// What one loop of calls measured.
#[derive(Default)]
struct Calls {
    latencies: Latencies,
    failures: Failures,
}

impl Calls {
    fn rate_limited(&self) -> u64 {
        self.failures
            .json()
            .as_object()
            .map(|counts| {
                counts
                    .iter()
                    .filter(|(label, _)| label.contains("ResourceExhausted"))
                    .filter_map(|(_, count)| count.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Phase 1: mint the devices, bring each online once, then the closed and open loops.
pub async fn heartbeats(bench: &Bench<'_>) -> anyhow::Result<serde_json::Value> {
    let args = bench.args;
    let bar = bench
        .progress
        .bar(args.devices as u64, "minting device tokens");
    let mut devices = Vec::with_capacity(args.devices);
    for index in 0..args.devices {
        let bearer = Bearer::new(&bench.server.mint(uuid::Uuid::now_v7())?)?;
        devices.push(presence_client(bench.pool.get(index), &bearer));
        if index % 1000 == 0 {
            bar.set_position(index as u64);
        }
    }
    bar.finish_and_clear();
    let devices = Arc::new(devices);

    let next = AtomicU64::new(0);
    let bar = bench.progress.bar(args.devices as u64, "first heartbeats");
    let (first, first_took) = closed_loop(
        &devices,
        &next,
        args.heartbeat_callers,
        Stop::After(args.devices as u64),
        &bar,
    )
    .await;
    bar.finish_and_clear();

    tokio::time::sleep(REFILL).await;
    let bar = bench
        .progress
        .bar(args.heartbeat_duration, "heartbeats, closed loop");
    let (max, max_took) = closed_loop(
        &devices,
        &next,
        args.heartbeat_callers,
        Stop::At(Instant::now() + Duration::from_secs(args.heartbeat_duration)),
        &bar,
    )
    .await;
    bar.finish_and_clear();

    tokio::time::sleep(REFILL).await;
    let total = u64::from(args.heartbeat_rate) * args.rate_duration;
    let bar = bench.progress.bar(total, "heartbeats, open loop");
    let calls = Arc::new(Mutex::new(Calls::default()));
    let offset = next.load(Ordering::Relaxed);
    let paced_run = paced(args.heartbeat_rate, total, MAX_IN_FLIGHT, &bar, |i| {
        let mut client = devices[((offset + i) % devices.len() as u64) as usize].clone();
        let calls = calls.clone();
        async move {
            let started = Instant::now();
            let outcome = api::heartbeat(&mut client, false).await;
            if let Ok(mut calls) = calls.lock() {
                match outcome {
                    Ok(()) => calls.latencies.record(started.elapsed()),
                    Err(status) => calls.failures.add(failure_label(&status)),
                }
            }
        }
    })
    .await;
    bar.finish_and_clear();
    let at_rate = calls
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .unwrap_or_default();

    Ok(json!({
        "devices": args.devices,
        "callers": args.heartbeat_callers,
        "first_per_s": per_second(first.latencies.count(), first_took),
        "first": first.latencies.summary(),
        "first_failures": first.failures.json(),
        "max_per_s": per_second(max.latencies.count(), max_took),
        "max_latency": max.latencies.summary(),
        "max_rate_limited": max.rate_limited(),
        "max_failures": max.failures.json(),
        "rate": args.heartbeat_rate,
        "at_rate_per_s": per_second(at_rate.latencies.count(), paced_run.elapsed),
        "at_rate": at_rate.latencies.summary(),
        "at_rate_failures": at_rate.failures.json(),
        "at_rate_overflows": paced_run.overflows,
    }))
}

/// When a closed loop ends.
#[derive(Clone, Copy)]
enum Stop {
    /// After this many calls in all (counted on `next`).
    After(u64),
    /// At this instant.
    At(Instant),
}

/// `callers` closed-loop callers heartbeating the devices in turn (a shared counter picks
/// the next device), until `stop`.
async fn closed_loop(
    devices: &[PresenceClient],
    next: &AtomicU64,
    callers: usize,
    stop: Stop,
    bar: &indicatif::ProgressBar,
) -> (Calls, Duration) {
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let limit = match stop {
        Stop::After(count) => next.load(Ordering::Relaxed) + count,
        Stop::At(_) => u64::MAX,
    };
    let caller = async || {
        let mut calls = Calls::default();
        loop {
            if let Stop::At(at) = stop
                && Instant::now() >= at
            {
                break;
            }
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= limit {
                break;
            }
            let mut client = devices[(index % devices.len() as u64) as usize].clone();
            let call_started = Instant::now();
            match api::heartbeat(&mut client, false).await {
                Ok(()) => calls.latencies.record(call_started.elapsed()),
                Err(status) => calls.failures.add(failure_label(&status)),
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        calls
    };
    let ticker = async {
        loop {
            let finished = match stop {
                Stop::After(count) => {
                    let done = done.load(Ordering::Relaxed);
                    bar.set_position(done);
                    done >= count
                }
                Stop::At(at) => {
                    bar.set_position(started.elapsed().as_secs());
                    Instant::now() >= at
                }
            };
            if finished {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let all = futures::future::join_all((0..callers.max(1)).map(|_| caller()));
    let (results, ()) = tokio::join!(all, ticker);
    let took = started.elapsed();
    let mut calls = Calls::default();
    for result in results {
        calls.latencies.merge(&result.latencies);
        calls.failures.extend(result.failures);
    }
    (calls, took)
}

/// Phase 2: the target reads the presence of `readers` (who heartbeat first), open loop.
pub async fn get_presence(
    bench: &Bench<'_>,
    target: &User,
    readers: &[User],
) -> anyhow::Result<serde_json::Value> {
    let args = bench.args;
    for (index, reader) in readers.iter().enumerate() {
        let mut client = presence_client(bench.pool.get(index), &reader.bearer);
        api::heartbeat(&mut client, false).await?;
    }
    let ids: Vec<String> = readers.iter().map(|r| r.user_id.clone()).collect();
    let client = presence_client(bench.pool.get(0), &target.bearer);
    let deadline = Instant::now() + VISIBLE_WITHIN;
    loop {
        let presences = api::get(&mut client.clone(), &ids).await?;
        if presences.iter().all(|p| !p.restricted) {
            break;
        }
        if Instant::now() > deadline {
            note("GetPresence: some readers are still restricted after 60 s; measuring anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let total = u64::from(args.get_rate) * args.get_duration;
    let bar = bench.progress.bar(total, "GetPresence");
    let calls = Arc::new(Mutex::new(Calls::default()));
    let hidden = Arc::new(AtomicU64::new(0));
    let not_online = Arc::new(AtomicU64::new(0));
    let ids = Arc::new(ids);
    let paced_run = paced(args.get_rate, total, MAX_IN_FLIGHT, &bar, |i| {
        let mut client = presence_client(bench.pool.get(i as usize), &target.bearer);
        let (calls, hidden, not_online, ids) = (
            calls.clone(),
            hidden.clone(),
            not_online.clone(),
            ids.clone(),
        );
        async move {
            let started = Instant::now();
            let outcome = api::get(&mut client, &ids).await;
            let took = started.elapsed();
            match outcome {
                Ok(presences) => {
                    let restricted = presences.iter().filter(|p| p.restricted).count();
                    let online = presences
                        .iter()
                        .filter(|p| p.status == api::status(false) as i32)
                        .count();
                    hidden.fetch_add(restricted as u64, Ordering::Relaxed);
                    not_online.fetch_add((ids.len() - online) as u64, Ordering::Relaxed);
                    if let Ok(mut calls) = calls.lock() {
                        calls.latencies.record(took);
                    }
                }
                Err(status) => {
                    if let Ok(mut calls) = calls.lock() {
                        calls.failures.add(failure_label(&status));
                    }
                }
            }
        }
    })
    .await;
    bar.finish_and_clear();
    let calls = calls
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .unwrap_or_default();
    Ok(json!({
        "ids": ids.len(),
        "rate": args.get_rate,
        "calls_per_s": per_second(calls.latencies.count(), paced_run.elapsed),
        "latency": calls.latencies.summary(),
        "restricted_entries": hidden.load(Ordering::Relaxed),
        "not_online_entries": not_online.load(Ordering::Relaxed),
        "failures": calls.failures.json(),
        "overflows": paced_run.overflows,
    }))
}
