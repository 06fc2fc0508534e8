//! `fanout`: one sender posting at a fixed rate into a group of G members who each have one
//! stream: deliveries per second, send→deliver latency over all deliveries, and every
//! member's stream checked for loss and gaps. One report per group size.
//!
//! Each size gets its own owner (the per-user send limit is a burst of 100, so one owner would
//! run dry between groups); the members of the smaller groups are a prefix of the largest's.
//!
//! With `--duration` the sending is sustained: `--rate` for that many seconds, spread round
//! robin over as many senders as the per-user send limit needs (the owner and members without
//! streams), and the figures cover the whole window, not a half-second burst.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Failures, Run, paced};
use crate::check::{Acked, DeliveryCheck};
use crate::cli::{FanoutArgs, Global, ServerKind};
use crate::client::live::{self, stamp};
use crate::client::users::{self, User};
use crate::client::{MessageClient, connections_for, failure_label, send_text};
use crate::report::{Failed, Report};
use crate::stats::{Latencies, per_second};

/// Streams being opened at once.
const OPEN_CONCURRENCY: usize = 64;

/// Most members of a group (services/message's MAX_GROUP_MEMBERS), its owner included.
const MAX_GROUP_MEMBERS: usize = 1024;

/// Senders per group: the owner alone, or with `--duration` as many as the send limit needs.
fn senders_per_group(args: &FanoutArgs) -> usize {
    match args.duration {
        None => 1,
        Some(seconds) => args
            .senders
            .unwrap_or_else(|| super::latency::senders_needed(args.rate, seconds))
            .max(1),
    }
}

/// Messages sent into each group.
fn messages_per_group(args: &FanoutArgs) -> usize {
    match args.duration {
        None => args.messages,
        Some(seconds) => (u64::from(args.rate) * seconds) as usize,
    }
}

/// Run the scenario.
pub async fn run(args: &FanoutArgs, global: &Global) -> anyhow::Result<Vec<Report>> {
    Run::with(global, ServerKind::InProcess, async |run| {
        let largest = args.members.iter().copied().max().unwrap_or(0);
        let per_group = senders_per_group(args);
        if largest + per_group > MAX_GROUP_MEMBERS {
            anyhow::bail!(
                "G={largest} with {per_group} senders is past a group's {MAX_GROUP_MEMBERS} \
                 members (the owner among them): lower --rate, --members or --senders"
            );
        }
        let all_senders = args.members.len() * per_group;
        let users =
            users::sign_up(&run.echo, &run.pool, all_senders + largest, &run.progress).await?;
        let (senders, members) = users.split_at(all_senders);
        let mut reports = Vec::new();
        for (senders, &size) in senders.chunks(per_group).zip(&args.members) {
            match one_group(args, run, senders, &members[..size]).await {
                Ok(report) => reports.push(report),
                Err(error) => {
                    // The sizes measured keep their figures; this one says why it has none.
                    let reason = format!("G={size}: {error:#}");
                    let per_connection = run.pool.streams_per_connection();
                    let figures = json!({
                        "members": size,
                        "messages": messages_per_group(args),
                        "duration_s": args.duration,
                        "senders": per_group,
                        "rate": args.rate,
                        "client_connections":
                            connections_for(size, run.pool.len(), per_connection),
                        "streams_per_connection": per_connection,
                    });
                    let what = format!("G={size}");
                    reports.push(Report::not_measured(
                        "fanout", &run.setup, &what, figures, &reason,
                    ));
                    return Err(Failed { reports, reason }.into());
                }
            }
        }
        Ok(reports)
    })
    .await
}

struct Sends {
    acked: Mutex<Acked>,
    latency: Mutex<Latencies>,
    failures: Mutex<Failures>,
}

/// `senders[0]` owns the group; the others join it without streams.
async fn one_group(
    args: &FanoutArgs,
    run: &Run,
    senders: &[User],
    members: &[User],
) -> anyhow::Result<Report> {
    let size = members.len();
    let owner_client = senders[0].messages(&run.pool, 0);
    let sender_clients: Vec<MessageClient> = senders
        .iter()
        .enumerate()
        .map(|(index, sender)| sender.messages(&run.pool, index))
        .collect();
    let messages = messages_per_group(args);
    let spinner = run.progress.spinner(&format!("creating a group of {size}"));
    let ids: Vec<String> = members
        .iter()
        .chain(&senders[1..])
        .map(|m| m.user_id.clone())
        .collect();
    let group = users::group(&owner_client, &ids).await;
    spinner.finish_and_clear();
    let group = group?;

    // At most --streams-per-connection streams on a connection: as many connections beside
    // the calls' as the members' streams need.
    let streams = run.pool.for_streams(size).await?;
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    // Ends the collectors however this returns (an error included), so no stream outlives it.
    let _stop_on_return = stop.clone().drop_guard();
    let bar = run.progress.bar(size as u64, "opening streams");
    let collectors: Vec<_> = futures::stream::iter(members.iter().enumerate())
        .map(|(index, member)| {
            let mut client = member.messages(&streams, index);
            let (delivered, stop, bar) = (delivered.clone(), stop.clone(), &bar);
            async move {
                let opened = live::open(&mut client, String::new()).await?;
                bar.inc(1);
                anyhow::Ok(live::collect(client, opened, run.clock, delivered, stop))
            }
        })
        .buffer_unordered(OPEN_CONCURRENCY)
        .try_collect()
        .await
        .with_context(|| format!("opening Subscribe: {}", streams.layout(size)))?;
    bar.finish_and_clear();

    let sends = Arc::new(Sends {
        acked: Mutex::new(Acked::default()),
        latency: Mutex::new(Latencies::new()),
        failures: Mutex::new(Failures::default()),
    });
    let recording = crate::profile::start(
        run.profile.as_deref(),
        run.echo.pid(),
        &format!("fanout G={size}"),
    )
    .await?;
    let bar = run.progress.bar(messages as u64, "sending");
    let started_micros = run.clock.now_micros();
    let paced = paced(args.rate, messages as u64, 1024, &bar, |index| {
        let client = &sender_clients[index as usize % sender_clients.len()];
        one_send(client.clone(), group.clone(), run.clock, sends.clone())
    })
    .await;
    bar.finish_and_clear();

    let acked = sends.acked.lock().map(|a| a.clone()).unwrap_or_default();
    let expected = (acked.total() * size) as u64;
    let bar = run.progress.bar(expected, "awaiting deliveries");
    let waited = Instant::now();
    live::wait_for(&delivered, expected, Duration::from_secs(10), &bar).await;
    bar.finish_and_clear();
    if let Some(recording) = recording {
        recording.stop().await?;
    }
    let drained_after = paced.elapsed + waited.elapsed();
    let collected = live::stop_all(&stop, collectors).await;

    let mut check = DeliveryCheck::default();
    for stream in &collected {
        check.add_stream(&acked, [group.as_str()], &stream.received);
    }
    let last_delivery = collected
        .iter()
        .map(|c| c.last_at_micros)
        .max()
        .unwrap_or(started_micros);
    let delivering = Duration::from_micros(last_delivery.saturating_sub(started_micros));
    let deliveries_per_s = per_second(check.delivered, delivering);
    let deliver = live::merged_latencies(&collected).summary();
    let send = sends
        .latency
        .lock()
        .map(|l| l.summary())
        .unwrap_or_default();
    let failures = sends.failures.lock().map(|f| f.clone()).unwrap_or_default();
    let (resumes, endings) = live::stream_troubles(&collected);
    let sustained = match args.duration {
        Some(seconds) => format!(" for {seconds} s from {} senders", senders.len()),
        None => String::new(),
    };
    let line = format!(
        "G={size}: {} msgs at {}/s{sustained} → {deliveries_per_s} deliveries/s | send→deliver \
         {deliver} | SendMessage p50 {} p99 {} ms | {} of {} delivered, {} lost, {} gaps, {} \
         resumes{}",
        acked.total(),
        args.rate,
        send.p50_ms,
        send.p99_ms,
        check.delivered,
        check.expected,
        check.lost,
        check.gaps,
        resumes,
        failures.suffix(),
    );
    let figures = json!({
        "members": size,
        "messages": messages,
        "rate": args.rate,
        "duration_s": args.duration,
        "senders": senders.len(),
        "client_connections": streams.len(),
        "streams_per_connection": streams.streams_per_connection(),
        "deliveries_per_s": deliveries_per_s,
        "delivering_s": delivering.as_secs_f64(),
        "drained_after_s": drained_after.as_secs_f64(),
        "send_to_deliver": deliver,
        "send_message": send,
        "delivery": check,
        "delivery_clean": check.is_clean(),
        "failures": failures.json(),
        "stream_resumes": resumes,
        "stream_endings": endings,
        "in_flight_overflows": paced.overflows,
    });
    Ok(Report::new("fanout", &run.setup, line, figures))
}

async fn one_send(
    mut client: MessageClient,
    group: String,
    clock: crate::stats::Clock,
    sends: Arc<Sends>,
) {
    let started = Instant::now();
    match send_text(&mut client, &group, stamp(clock.now_micros(), true)).await {
        Ok(sent) => {
            if let Ok(mut latency) = sends.latency.lock() {
                latency.record(started.elapsed());
            }
            if let Ok(mut acked) = sends.acked.lock() {
                acked.add(&group, sent.message.seq);
            }
        }
        Err(status) => {
            if let Ok(mut failures) = sends.failures.lock() {
                failures.add(failure_label(&status));
            }
        }
    }
}
