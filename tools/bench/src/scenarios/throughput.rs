//! `throughput`: many senders in many conversations, each sending back to back (closed loop):
//! durable sends per second (a SendMessage answer means committed), deliveries per second, and
//! every delivery checked against the acknowledged seqs for loss, gaps and doubles.
//!
//! Senders are paired in direct conversations; both members of a pair send, and each has one
//! stream, so every message is delivered twice: to the peer and to the sender's own device
//! (DESIGN §7.3: the sender's devices receive too).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Failures, Run};
use crate::check::{Acked, DeliveryCheck};
use crate::cli::{Global, ServerKind, ThroughputArgs};
use crate::client::live::{self, stamp};
use crate::client::users;
use crate::client::{MessageClient, failure_label, send_text};
use crate::report::Report;
use crate::stats::{Clock, Latencies, per_second};

/// Run the scenario.
pub async fn run(args: &ThroughputArgs, global: &Global) -> anyhow::Result<Vec<Report>> {
    Run::with(global, ServerKind::InProcess, async |run| {
        measure(args, run).await
    })
    .await
}

/// What one sender did.
#[derive(Default)]
struct SenderResult {
    acked: Acked,
    latency: Latencies,
    failures: Failures,
    rate_limited: u64,
    last_ack_micros: u64,
}

async fn measure(args: &ThroughputArgs, run: &Run) -> anyhow::Result<Vec<Report>> {
    let senders = args.senders.max(2) & !1; // pairs
    let users = users::sign_up(&run.echo, &run.pool, senders, &run.progress).await?;
    let bar = run
        .progress
        .bar((senders / 2) as u64, "direct conversations");
    let pairs: Vec<String> = futures::stream::iter(users.chunks(2).enumerate())
        .map(|(index, pair)| {
            let client = pair[0].messages(&run.pool, index);
            let peer = pair[1].user_id.clone();
            let bar = &bar;
            async move {
                let conversation = users::direct(&client, &peer).await;
                bar.inc(1);
                conversation
            }
        })
        .buffered(16)
        .try_collect()
        .await?;
    bar.finish_and_clear();

    let delivered = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    // Ends the collectors however this returns (an error included), so no stream outlives it.
    let _stop_on_return = stop.clone().drop_guard();
    // At most --streams-per-connection streams on a connection (more connections if needed).
    let streams = run.pool.for_streams(senders).await?;
    let bar = run.progress.bar(senders as u64, "opening streams");
    let mut collectors = Vec::with_capacity(senders);
    for (index, user) in users.iter().enumerate() {
        let mut client = user.messages(&streams, index);
        let opened = live::open(&mut client, String::new())
            .await
            .with_context(|| format!("opening Subscribe: {}", streams.layout(senders)))?;
        collectors.push(live::collect(
            client,
            opened,
            run.clock,
            delivered.clone(),
            stop.clone(),
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();

    let total = (senders * args.messages) as u64;
    let recording =
        crate::profile::start(run.profile.as_deref(), run.echo.pid(), "throughput").await?;
    let sent_bar = run.progress.bar(total, "sending");
    let started_micros = run.clock.now_micros();
    let started = Instant::now();
    let results: Vec<SenderResult> =
        futures::future::join_all(users.iter().enumerate().map(|(index, user)| {
            let client = user.messages(&run.pool, index);
            let conversation = pairs[index / 2].clone();
            let bar = sent_bar.clone();
            send_all(client, conversation, args.messages, run.clock, bar)
        }))
        .await;
    let sending = started.elapsed();
    sent_bar.finish_and_clear();

    let mut acked = Acked::default();
    let mut send_latency = Latencies::new();
    let mut failures = Failures::default();
    let mut rate_limited = 0;
    let mut last_ack = started_micros;
    for result in results {
        acked.extend(result.acked);
        send_latency.merge(&result.latency);
        failures.extend(result.failures);
        rate_limited += result.rate_limited;
        last_ack = last_ack.max(result.last_ack_micros);
    }
    let expected = 2 * acked.total() as u64;
    let bar = run.progress.bar(expected, "awaiting deliveries");
    live::wait_for(&delivered, expected, Duration::from_secs(10), &bar).await;
    bar.finish_and_clear();
    let collected = live::stop_all(&stop, collectors).await;
    if let Some(recording) = recording {
        recording.stop().await?;
    }

    let mut check = DeliveryCheck::default();
    for (index, stream) in collected.iter().enumerate() {
        check.add_stream(&acked, [pairs[index / 2].as_str()], &stream.received);
    }
    let last_delivery = collected
        .iter()
        .map(|c| c.last_at_micros)
        .max()
        .unwrap_or(started_micros);
    let (resumes, endings) = live::stream_troubles(&collected);
    let sends_per_s = per_second(
        acked.total() as u64,
        Duration::from_micros(last_ack.saturating_sub(started_micros)),
    );
    let deliveries_per_s = per_second(
        check.delivered,
        Duration::from_micros(last_delivery.saturating_sub(started_micros)),
    );
    let send = send_latency.summary();
    let deliver = live::merged_latencies(&collected).summary();
    let line = format!(
        "{senders} senders × {} msgs in {} conversations: {sends_per_s} durable sends/s, \
         {deliveries_per_s} deliveries/s | SendMessage {send} | send→deliver p50 {} p99 {} ms \
         | {} of {} delivered, {} lost, {} gaps, {} doubled{}",
        args.messages,
        pairs.len(),
        deliver.p50_ms,
        deliver.p99_ms,
        check.delivered,
        check.expected,
        check.lost,
        check.gaps,
        check.duplicated,
        failures.suffix(),
    );
    let figures = json!({
        "senders": senders,
        "messages_per_sender": args.messages,
        "conversations": pairs.len(),
        "client_connections": streams.len(),
        "sends_per_s": sends_per_s,
        "deliveries_per_s": deliveries_per_s,
        "sending_s": sending.as_secs_f64(),
        "send_message": send,
        "send_to_deliver": deliver,
        "delivery": check,
        "delivery_clean": check.is_clean(),
        "failures": failures.json(),
        "rate_limited": rate_limited,
        "stream_resumes": resumes,
        "stream_endings": endings,
    });
    Ok(vec![Report::new("throughput", &run.setup, line, figures)])
}

/// One sender's loop: `messages` sends back to back.
async fn send_all(
    mut client: MessageClient,
    conversation: String,
    messages: usize,
    clock: Clock,
    bar: indicatif::ProgressBar,
) -> SenderResult {
    let mut result = SenderResult::default();
    for _ in 0..messages {
        let started = Instant::now();
        match send_text(&mut client, &conversation, stamp(clock.now_micros(), true)).await {
            Ok(sent) => {
                result.latency.record(started.elapsed());
                result.acked.add(&conversation, sent.message.seq);
                result.rate_limited += u64::from(sent.rate_limited);
                result.last_ack_micros = clock.now_micros();
            }
            Err(status) => result.failures.add(failure_label(&status)),
        }
        bar.inc(1);
    }
    result
}
