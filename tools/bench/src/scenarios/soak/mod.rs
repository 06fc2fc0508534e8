//! `soak` (issue 17, R6): a steady mixed load for a long time, watching the server for what
//! only time shows — memory, file descriptors, tasks and buffered items that grow, latency that
//! drifts. Users in pairs, each pair in a direct conversation; sends at `--rate` (spread over
//! the pairs within the per-user send limit), every fourth send followed by a ListMessages of
//! the same conversation; every user's Subscribe stream closed and resumed from its cursor on a
//! new connection every `--churn-every` seconds; every user heartbeating presence every 5 s.
//!
//! Every `--sample-every` seconds the server is sampled: resident memory and open file
//! descriptors from /proc (so the server should be a child, the default), live tokio tasks
//! (`echo_runtime_alive_tasks`) and buffered stream items (`echo_live_buffered_items`) from
//! its /metrics, and the SendMessage p99 of the window. The first sample after `--warmup` is
//! the base. After the load stops and every client has gone, the server is sampled once more:
//! it must hold fewer descriptors and tasks than under the load (not as few as before it: the
//! database pools keep the connections the load's concurrency opened).
//!
//! `--check` turns the figures into a verdict (exit status), for CI's one-minute run: every
//! acknowledged message delivered exactly once and in order, no descriptor growth under the
//! load beyond a small slack, fewer descriptors and tasks after it than under it, no items
//! left buffered. (Tasks under the load count the calls in flight, so they are reported, and
//! judged only once the load has stopped.)
//! Memory growth (< 5 %) and p99 stability (within 20 %) are only judged over long runs
//! (`--strict`): a minute is all allocator warm-up.
//!
//! This file runs the scenario and reports it; `load` is what each client does, `watch`
//! samples the server and gives the verdict.

mod load;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Run, latency::senders_needed, paced};
use crate::check::DeliveryCheck;
use crate::cli::{Global, ServerKind, SoakArgs};
use crate::client::MessageClient;
use crate::client::live::{self, Churn};
use crate::client::users::{self, User};
use crate::report::{Failed, Report, round1};
use crate::stats::Latencies;
use load::{Shared, heartbeat_all, one_round, refresh_tokens};
use watch::{Verdict, sample};

/// Sends in flight at most.
const MAX_IN_FLIGHT: usize = 1024;

/// Run the scenario.
pub async fn run(args: &SoakArgs, global: &Global) -> anyhow::Result<Vec<Report>> {
    Run::with(global, ServerKind::Child, async |run| {
        measure(args, run).await
    })
    .await
}

async fn measure(args: &SoakArgs, run: &Run) -> anyhow::Result<Vec<Report>> {
    let pid = run
        .echo
        .pid()
        .context("soak reads the server's /proc entries: it needs a server it started")?;
    let admin = run
        .echo
        .admin
        .clone()
        .context("soak scrapes the server's /metrics: it needs a server it started")?;
    let seconds = args.warmup + args.duration;
    let count = (senders_needed(args.rate, seconds).max(2) + 1) & !1; // pairs
    let users = users::sign_up(&run.echo, &run.pool, count, &run.progress).await?;
    let conversations = pair_up(run, &users).await?;
    let before = sample(pid, &admin, 0.0).await?;

    let stop = CancellationToken::new();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut collectors = Vec::with_capacity(users.len());
    // At most --streams-per-connection streams on a connection until they churn onto their own.
    let streams = run.pool.for_streams(users.len()).await?;
    for (index, user) in users.iter().enumerate() {
        let mut client = user.messages(&streams, index);
        let opened = live::open(&mut client, String::new())
            .await
            .with_context(|| format!("opening Subscribe: {}", streams.layout(users.len())))?;
        collectors.push(live::collect_churning(
            client,
            opened,
            run.clock,
            delivered.clone(),
            stop.clone(),
            Some(Churn {
                every: Duration::from_secs(args.churn_every.max(1)),
                endpoint: run.echo.endpoint.clone(),
                bearer: user.bearer.clone(),
            }),
        ));
    }
    let shared = Arc::new(Shared {
        acked: Mutex::default(),
        window: Mutex::new(Latencies::new()),
        failures: Mutex::default(),
        sends: AtomicU64::new(0),
        reads: AtomicU64::new(0),
        heartbeats: AtomicU64::new(0),
    });
    let heartbeats = tokio::spawn(heartbeat_all(
        users.clone(),
        run.pool.clone(),
        shared.clone(),
        stop.clone(),
    ));
    let refreshes = tokio::spawn(refresh_tokens(
        users.clone(),
        run.pool.clone(),
        shared.clone(),
        stop.clone(),
    ));

    // The load, and the sampler beside it.
    let started = Instant::now();
    let clients: Vec<MessageClient> = users
        .iter()
        .enumerate()
        .map(|(index, user)| user.messages(&run.pool, index))
        .collect();
    let total = u64::from(args.rate) * seconds;
    let bar = run.progress.bar(total, "soaking");
    let load = paced(args.rate, total, MAX_IN_FLIGHT, &bar, |issued| {
        let index = (issued % clients.len() as u64) as usize;
        one_round(
            clients[index].clone(),
            conversations[index / 2].clone(),
            run.clock,
            issued % 4 == 0,
            shared.clone(),
        )
    });
    // A sample that cannot be taken (the server gone?) fails the run, but only at its end:
    // the samples before it are what shows why.
    let mut unsampled = Vec::new();
    let sampler = async {
        let mut samples = Vec::new();
        let mut windows = Vec::new();
        let mut every = tokio::time::interval(Duration::from_secs(args.sample_every.max(1)));
        every.tick().await;
        loop {
            every.tick().await;
            let at = started.elapsed().as_secs_f64();
            if at > seconds as f64 {
                break;
            }
            let window = shared
                .window
                .lock()
                .map(|mut w| std::mem::take(&mut *w))
                .unwrap_or_default();
            match sample(pid, &admin, at).await {
                Ok(mut taken) => {
                    taken.send_p99_ms = window.summary().p99_ms;
                    taken.sends = window.count();
                    samples.push(taken);
                    windows.push((at, window));
                }
                Err(error) => unsampled.push(format!("at {at:.0} s: {error:#}")),
            }
        }
        (samples, windows)
    };
    let (paced_run, (samples, windows)) = tokio::join!(load, sampler);
    bar.finish_and_clear();

    // Every acknowledged message reaches both members' streams.
    let acked = shared.acked.lock().map(|a| a.clone()).unwrap_or_default();
    let expected = 2 * acked.total() as u64;
    let bar = run.progress.bar(expected, "awaiting deliveries");
    live::wait_for(&delivered, expected, Duration::from_secs(15), &bar).await;
    bar.finish_and_clear();
    let collected = live::stop_all(&stop, collectors).await;
    heartbeats.await.ok();
    refreshes.await.ok();
    let mut check = DeliveryCheck::default();
    for (index, stream) in collected.iter().enumerate() {
        check.add_stream(
            &acked,
            std::iter::once(conversations[index / 2].as_str()),
            &stream.received,
        );
    }
    let churns: u64 = collected.iter().map(|c| u64::from(c.churns)).sum();
    let (resumes, endings) = live::stream_troubles(&collected);

    // Every client gone: what is left on the server (the pool's few connections stay).
    drop(clients);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at = started.elapsed().as_secs_f64();
    let after = sample(pid, &admin, at).await.unwrap_or_else(|error| {
        unsampled.push(format!("after the load: {error:#}"));
        watch::Sample::default()
    });

    let mut verdict = Verdict::of(
        args,
        watch::Seen {
            before: &before,
            samples: &samples,
            windows: &windows,
            after: &after,
        },
        &check,
        &endings,
        users.len(),
    );
    if let Some(first) = unsampled.first() {
        let more = unsampled.len() - 1;
        verdict.problems.insert(
            0,
            format!("{} sample(s) not taken, the first {first}", more + 1),
        );
    }
    let base = verdict.base;
    let last = samples.last().copied().unwrap_or_default();
    let failures = shared
        .failures
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default();
    let line = format!(
        "{} s ({} warm-up) at {} sends/s, {} users, streams resumed every {} s on a new \
         connection: RSS {} → {} MiB ({:+.1} %), fds {} → {} (after the load {} vs {} before), \
         tasks {} → {} (after {} vs {}), buffered items at the end {}, SendMessage p99 per {} s \
         window {:.1}–{:.1} ms (×{:.2}), per {} s segment {} ms (×{:.2}) | {} sends, {} reads, {} heartbeats, {} churns, {} \
         delivered, {} lost, {} gaps{}{} | {}",
        seconds,
        args.warmup,
        args.rate,
        users.len(),
        args.churn_every,
        base.rss_kib / 1024,
        last.rss_kib / 1024,
        verdict.rss_growth_pct,
        base.fds,
        verdict.peak_fds,
        after.fds,
        before.fds,
        base.tasks,
        verdict.peak_tasks,
        after.tasks,
        before.tasks,
        after.buffered_items,
        args.sample_every,
        verdict.p99_min_ms,
        verdict.p99_max_ms,
        verdict.p99_spread,
        args.segment,
        verdict
            .segment_p99s_ms
            .iter()
            .map(|p| format!("{p:.1}"))
            .collect::<Vec<_>>()
            .join(" "),
        verdict.segment_spread,
        shared.sends.load(Ordering::Relaxed),
        shared.reads.load(Ordering::Relaxed),
        shared.heartbeats.load(Ordering::Relaxed),
        churns,
        check.delivered,
        check.lost,
        check.gaps,
        failures.suffix(),
        if resumes > 0 {
            format!(", {resumes} resumes")
        } else {
            String::new()
        },
        if verdict.problems.is_empty() {
            "steady".to_owned()
        } else {
            verdict.problems.join("; ")
        },
    );
    let figures = json!({
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rate": args.rate,
        "users": users.len(),
        "churn_every_s": args.churn_every,
        "before": before,
        "base": base,
        "samples": samples,
        "after": after,
        "rss_growth_pct": round1(verdict.rss_growth_pct),
        "p99_min_ms": verdict.p99_min_ms,
        "p99_max_ms": verdict.p99_max_ms,
        "p99_spread": verdict.p99_spread,
        "segment_s": args.segment,
        "segment_p99s_ms": verdict.segment_p99s_ms,
        "segment_spread": verdict.segment_spread,
        "delivery": check,
        "delivery_clean": check.is_clean(),
        "churns": churns,
        "stream_resumes": resumes,
        "stream_endings": endings,
        "failures": failures.json(),
        "in_flight_overflows": paced_run.overflows,
        "problems": verdict.problems,
    });
    let report = Report::new("soak", &run.setup, line, figures);
    // Without --check the verdict is only reported; a sample not taken fails the run either way.
    if (args.check && !verdict.problems.is_empty()) || !unsampled.is_empty() {
        // Without --check, the samples not taken (the first problem) are what failed.
        let (what, problems) = if args.check {
            ("check failed", verdict.problems.as_slice())
        } else {
            ("sampling failed", &verdict.problems[..1])
        };
        let reason = format!("{what}: {}", problems.join("; "));
        return Err(Failed::new(vec![report], reason).into());
    }
    Ok(vec![report])
}

/// Direct conversations of users 0–1, 2–3, …
async fn pair_up(run: &Run, users: &[User]) -> anyhow::Result<Vec<String>> {
    futures::stream::iter(users.chunks(2).enumerate())
        .map(|(index, pair)| {
            let client = pair[0].messages(&run.pool, index);
            let peer = pair[1].user_id.clone();
            async move { users::direct(&client, &peer).await }
        })
        .buffered(16)
        .try_collect()
        .await
}
