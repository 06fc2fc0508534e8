//! `latency`: messages at a fixed rate to one recipient whose one stream receives them all;
//! send→deliver and SendMessage latency.
//!
//! One account may send a burst of 100 and then 10 a second, so "the sender" is a pool of
//! accounts, each in its own direct conversation with the recipient: every message still has
//! one sender and one recipient, and the pool is as small as the limit allows. Sends are
//! issued open-loop on a 1 ms tick (a slow answer does not delay the next send, so queueing
//! shows in the latencies instead of hiding in a lower rate).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Failures, Run, paced};
use crate::check::{Acked, DeliveryCheck};
use crate::cli::{Global, LatencyArgs, ServerKind};
use crate::client::live::{self, stamp};
use crate::client::users::{self, User};
use crate::client::{MessageClient, failure_label, send_text};
use crate::report::Report;
use crate::stats::{Latencies, per_second};

/// Per-user send limit: a burst of this many …
const SEND_BURST: f64 = 100.0;
/// … then this many a second.
const SEND_REFILL_PER_SECOND: f64 = 10.0;
/// Sends in flight at most (beyond it the server is not keeping up and the run says so).
const MAX_IN_FLIGHT: usize = 4096;

/// Run the scenario.
pub async fn run(args: &LatencyArgs, global: &Global) -> anyhow::Result<Vec<Report>> {
    Run::with(global, ServerKind::InProcess, async |run| {
        measure(args, run).await
    })
    .await
}

/// Accounts needed to send `rate` a second for `seconds` within the per-user limit, with a
/// tenth to spare.
pub fn senders_needed(rate: u32, seconds: u64) -> usize {
    let total = f64::from(rate) * seconds as f64;
    let per_sender = 0.9 * (SEND_BURST + SEND_REFILL_PER_SECOND * seconds as f64);
    ((total / per_sender).ceil() as usize).max(1)
}

struct Shared {
    acked: Mutex<Acked>,
    send_latency: Mutex<Latencies>,
    failures: Mutex<Failures>,
    rate_limited: AtomicU64,
}

async fn measure(args: &LatencyArgs, run: &Run) -> anyhow::Result<Vec<Report>> {
    let seconds = args.warmup + args.duration;
    let senders = args
        .senders
        .unwrap_or_else(|| senders_needed(args.rate, seconds));
    let users = users::sign_up(&run.echo, &run.pool, senders + 1, &run.progress).await?;
    let (recipient, senders) = users
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no users"))?;
    let conversations = conversations_with(run, recipient, senders).await?;

    let delivered = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let mut recipient_client = recipient.messages(&run.pool, 0);
    let opened = live::open(&mut recipient_client, String::new()).await?;
    let collector = live::collect(
        recipient_client,
        opened,
        run.clock,
        delivered.clone(),
        stop.clone(),
    );

    let clients: Vec<MessageClient> = senders
        .iter()
        .enumerate()
        .map(|(index, sender)| sender.messages(&run.pool, index))
        .collect();
    let shared = Arc::new(Shared {
        acked: Mutex::new(Acked::default()),
        send_latency: Mutex::new(Latencies::new()),
        failures: Mutex::new(Failures::default()),
        rate_limited: AtomicU64::new(0),
    });
    let total = u64::from(args.rate) * seconds;
    let warmup = u64::from(args.rate) * args.warmup;
    let recording = crate::profile::start(
        run.profile.as_deref(),
        run.echo.pid(),
        "latency (warm-up included)",
    )
    .await?;
    let bar = run.progress.bar(total, "sending");
    let paced = paced(args.rate, total, MAX_IN_FLIGHT, &bar, |issued| {
        let index = (issued % clients.len() as u64) as usize;
        one_send(
            clients[index].clone(),
            conversations[index].clone(),
            run.clock,
            issued >= warmup,
            shared.clone(),
        )
    })
    .await;
    let (sending, overloaded) = (paced.elapsed, paced.overflows);
    bar.finish_and_clear();

    let acked = shared.acked.lock().map(|a| a.clone()).unwrap_or_default();
    let bar = run
        .progress
        .bar(acked.total() as u64, "awaiting deliveries");
    live::wait_for(
        &delivered,
        acked.total() as u64,
        Duration::from_secs(10),
        &bar,
    )
    .await;
    bar.finish_and_clear();
    let collected = live::stop_all(&stop, vec![collector]).await;
    if let Some(recording) = recording {
        recording.stop().await?;
    }

    let mut check = DeliveryCheck::default();
    if let Some(stream) = collected.first() {
        check.add_stream(
            &acked,
            conversations.iter().map(String::as_str),
            &stream.received,
        );
    }
    let (resumes, endings) = live::stream_troubles(&collected);
    let deliver = live::merged_latencies(&collected).summary();
    let send = shared
        .send_latency
        .lock()
        .map(|l| l.summary())
        .unwrap_or_default();
    let failures = shared
        .failures
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default();
    let achieved = per_second(acked.total() as u64, sending);
    let line = format!(
        "{} msg/s offered ({achieved} acked/s), {} senders → 1 stream, {}+{} s: send→deliver \
         {deliver} | SendMessage {send} | {} delivered, {} lost, {} gaps{}{}",
        args.rate,
        senders.len(),
        args.warmup,
        args.duration,
        check.delivered,
        check.lost,
        check.gaps,
        failures.suffix(),
        if overloaded > 0 {
            format!(", {overloaded} ticks over {MAX_IN_FLIGHT} sends in flight")
        } else {
            String::new()
        }
    );
    let figures = json!({
        "rate_offered": args.rate,
        "acked_per_s": achieved,
        "senders": senders.len(),
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "send_to_deliver": deliver,
        "send_message": send,
        "delivery": check,
        "delivery_clean": check.is_clean(),
        "failures": failures.json(),
        "rate_limited": shared.rate_limited.load(std::sync::atomic::Ordering::Relaxed),
        "stream_resumes": resumes,
        "stream_endings": endings,
        "in_flight_overflows": overloaded,
    });
    Ok(vec![Report::new("latency", &run.setup, line, figures)])
}

/// Each sender's direct conversation with the recipient, in sender order.
async fn conversations_with(
    run: &Run,
    recipient: &User,
    senders: &[User],
) -> anyhow::Result<Vec<String>> {
    let bar = run
        .progress
        .bar(senders.len() as u64, "direct conversations");
    let conversations = futures::stream::iter(senders.iter().enumerate())
        .map(|(index, sender)| {
            let client = sender.messages(&run.pool, index);
            let bar = &bar;
            async move {
                let conversation = users::direct(&client, &recipient.user_id).await;
                bar.inc(1);
                conversation
            }
        })
        .buffered(16)
        .try_collect()
        .await;
    bar.finish_and_clear();
    conversations
}

async fn one_send(
    mut client: MessageClient,
    conversation: String,
    clock: crate::stats::Clock,
    measured: bool,
    shared: Arc<Shared>,
) {
    let started = Instant::now();
    let body = stamp(clock.now_micros(), measured);
    match send_text(&mut client, &conversation, body).await {
        Ok(sent) => {
            let took = started.elapsed();
            if measured && let Ok(mut latency) = shared.send_latency.lock() {
                latency.record(took);
            }
            if let Ok(mut acked) = shared.acked.lock() {
                acked.add(&conversation, sent.message.seq);
            }
            shared.rate_limited.fetch_add(
                u64::from(sent.rate_limited),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        Err(status) => {
            if let Ok(mut failures) = shared.failures.lock() {
                failures.add(failure_label(&status));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_pool_fits_the_per_user_limit() {
        // 11,000 messages over 11 s: each account may send 100 + 110 = 210; with a tenth to
        // spare 189, so 59 accounts.
        assert_eq!(senders_needed(1000, 11), 59);
        assert_eq!(senders_needed(10, 1), 1);
        assert_eq!(senders_needed(0, 10), 1);
        // Long runs approach rate / 10 / 0.9.
        assert_eq!(senders_needed(1000, 3600), 111);
    }
}
