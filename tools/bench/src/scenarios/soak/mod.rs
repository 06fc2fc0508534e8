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
//! This file is the load and its report; `watch` samples the server and gives the verdict.

mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Failures, Run, latency::senders_needed, paced};
use crate::check::{Acked, DeliveryCheck};
use crate::cli::{Global, ServerKind, SoakArgs};
use crate::client::live::{self, Churn, stamp};
use crate::client::presence::{heartbeat, presence_client};
use crate::client::users::{self, User};
use crate::client::{MessageClient, failure_label, send_text};
use crate::report::{Report, round1};
use crate::stats::Latencies;
use watch::{Verdict, sample};

/// Sends in flight at most.
const MAX_IN_FLIGHT: usize = 1024;
/// How often every user's tokens are refreshed: well inside the access token's 15 minutes.
const REFRESH_EVERY: Duration = Duration::from_secs(600);

/// Run the scenario.
pub async fn run(args: &SoakArgs, global: &Global) -> anyhow::Result<Vec<Report>> {
    Run::with(global, ServerKind::Child, async |run| {
        measure(args, run).await
    })
    .await
}

struct Shared {
    acked: Mutex<Acked>,
    window: Mutex<Latencies>,
    failures: Mutex<Failures>,
    sends: AtomicU64,
    reads: AtomicU64,
    heartbeats: AtomicU64,
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
    for (index, user) in users.iter().enumerate() {
        let mut client = user.messages(&run.pool, index);
        let opened = live::open(&mut client, String::new()).await?;
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
    let sampler = async {
        let mut samples = Vec::new();
        let mut every = tokio::time::interval(Duration::from_secs(args.sample_every.max(1)));
        every.tick().await;
        loop {
            every.tick().await;
            let at = started.elapsed().as_secs_f64();
            if at > seconds as f64 {
                break;
            }
            let mut taken = sample(pid, &admin, at).await?;
            let window = shared
                .window
                .lock()
                .map(|mut w| std::mem::take(&mut *w))
                .unwrap_or_default();
            taken.send_p99_ms = window.summary().p99_ms;
            taken.sends = window.count();
            samples.push(taken);
        }
        anyhow::Ok(samples)
    };
    let (paced_run, samples) = tokio::join!(load, sampler);
    let samples = samples?;
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
    let after = sample(pid, &admin, started.elapsed().as_secs_f64()).await?;

    let verdict = Verdict::of(
        args,
        &before,
        &samples,
        &after,
        &check,
        &endings,
        users.len(),
    );
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
         window {:.1}–{:.1} ms (×{:.2}) | {} sends, {} reads, {} heartbeats, {} churns, {} \
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
    if args.check && !verdict.problems.is_empty() {
        println!("{}", report.line);
        bail!("soak check failed: {}", verdict.problems.join("; "));
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

/// One send, and for a read round also a page of the conversation's history.
async fn one_round(
    mut client: MessageClient,
    conversation: String,
    clock: crate::stats::Clock,
    read: bool,
    shared: Arc<Shared>,
) {
    let started = Instant::now();
    match send_text(&mut client, &conversation, stamp(clock.now_micros(), false)).await {
        Ok(sent) => {
            if let Ok(mut window) = shared.window.lock() {
                window.record(started.elapsed());
            }
            if let Ok(mut acked) = shared.acked.lock() {
                acked.add(&conversation, sent.message.seq);
            }
            shared.sends.fetch_add(1, Ordering::Relaxed);
        }
        Err(status) => {
            if let Ok(mut failures) = shared.failures.lock() {
                failures.add(failure_label(&status));
            }
        }
    }
    if read {
        let page = client
            .list_messages(echo_proto::echo::message::v1::ListMessagesRequest {
                conversation_id: conversation,
                page_size: 50,
                ..Default::default()
            })
            .await;
        match page {
            Ok(_) => {
                shared.reads.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                if let Ok(mut failures) = shared.failures.lock() {
                    failures.add(format!("ListMessages {}", failure_label(&status)));
                }
            }
        }
    }
}

/// Every user heartbeats every 5 s until `stop` (the device's limit is 1/s after a burst).
async fn heartbeat_all(
    users: Vec<User>,
    pool: crate::client::Pool,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        for (index, user) in users.iter().enumerate() {
            let mut client = presence_client(pool.get(index), &user.bearer);
            match heartbeat(&mut client, false).await {
                Ok(()) => {
                    shared.heartbeats.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) => {
                    if let Ok(mut failures) = shared.failures.lock() {
                        failures.add(format!("Heartbeat {}", failure_label(&status)));
                    }
                }
            }
        }
    }
}

/// Every user's tokens refreshed every [`REFRESH_EVERY`], as an app refreshes before its
/// access token expires (about 15 minutes): a longer soak measures the load, not a wall of
/// TOKEN_EXPIRED.
async fn refresh_tokens(
    users: Vec<User>,
    pool: crate::client::Pool,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(REFRESH_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(error) = users::refresh_all(&pool, &users).await {
            eprintln!("refreshing the soak's tokens: {error:#}");
            if let Ok(mut failures) = shared.failures.lock() {
                failures.add("RefreshTokens".into());
            }
        }
    }
}
