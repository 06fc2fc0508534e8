//! Subscribe streams as the bench reads them: each message body carries the microsecond at
//! which it was sent (on the run's [`Clock`]), so the receiving stream turns it into a
//! send→deliver latency; every (conversation, seq) received is kept for the loss check. A
//! stream the server ends (e.g. `RESUME` when the reader fell behind) is resumed from its last
//! cursor, as a real client does, and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use echo_proto::echo::message::v1 as pb;
use indicatif::ProgressBar;
use pb::conversation_event::Kind;
use pb::subscribe_response::Item;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;

use super::{Bearer, MessageClient, STREAM_SLOTS_HINT, failure_label};
use crate::stats::{Clock, Latencies};

/// Resumes one stream may make before the bench gives up on it.
const MAX_RESUMES: u32 = 20;

/// The body of a message sent at `micros` on the run's clock; `measured` is false for
/// warm-up messages, whose latency is not recorded.
pub fn stamp(micros: u64, measured: bool) -> String {
    format!("bench {micros} {}", u8::from(measured))
}

/// The send time and measured flag of a bench message body.
pub fn parse_stamp(body: &str) -> Option<(u64, bool)> {
    let mut parts = body.strip_prefix("bench ")?.split(' ');
    let micros = parts.next()?.parse().ok()?;
    let measured = parts.next()? == "1";
    Some((micros, measured))
}

/// A stream that has said `Ready`, the cursor it said it with, and what it replayed first.
pub struct Opened {
    stream: Streaming<pb::SubscribeResponse>,
    cursor: String,
    replayed: Vec<pb::SubscribeResponse>,
}

/// How long opening a stream (up to `Ready`) may take before the bench gives up on it rather
/// than wait for ever: a call past the server's streams per connection waits in the client for
/// a free one, silently.
pub const OPEN_WITHIN: Duration = Duration::from_secs(30);

/// Open (or resume from `cursor`) the stream of `client`'s device and read up to `Ready`,
/// within [`OPEN_WITHIN`].
pub async fn open(client: &mut MessageClient, cursor: String) -> anyhow::Result<Opened> {
    match tokio::time::timeout(OPEN_WITHIN, open_unbounded(client, cursor)).await {
        Ok(opened) => opened,
        Err(_) => bail!(
            "a Subscribe stream did not reach Ready within {} s ({STREAM_SLOTS_HINT})",
            OPEN_WITHIN.as_secs()
        ),
    }
}

async fn open_unbounded(client: &mut MessageClient, cursor: String) -> anyhow::Result<Opened> {
    let mut stream = client
        .subscribe(pb::SubscribeRequest { cursor })
        .await?
        .into_inner();
    let mut cursor = String::new();
    let mut replayed = Vec::new();
    // With an empty cursor Ready comes first; on a resume the missed items come before it.
    while let Some(item) = stream.message().await? {
        if !item.cursor.is_empty() {
            cursor = item.cursor.clone();
        }
        if matches!(item.item, Some(Item::Ready(_))) {
            return Ok(Opened {
                stream,
                cursor,
                replayed,
            });
        }
        replayed.push(item);
    }
    bail!("the stream ended before Ready")
}

/// What one stream received.
#[derive(Debug, Default)]
pub struct Collected {
    /// Every MessageCreated `(conversation, seq)`, in arrival order.
    pub received: Vec<(String, i64)>,
    /// Send→deliver latency of measured messages.
    pub latencies: Latencies,
    /// When the last message arrived (µs on the run's clock).
    pub last_at_micros: u64,
    /// Times the stream was resumed after the server ended it.
    pub resumes: u32,
    /// Times the bench itself closed the stream and resumed it on a new connection
    /// ([`Churn`]).
    pub churns: u32,
    /// Why the stream ended before the bench stopped it, if it did.
    pub ended: Option<String>,
}

/// A client that goes away and comes back: every `every`, the stream is dropped and resumed
/// from its cursor on a new connection to `endpoint` (as a phone switching networks does).
pub struct Churn {
    /// How often.
    pub every: Duration,
    /// Where to reconnect.
    pub endpoint: String,
    /// As whom.
    pub bearer: Bearer,
}

/// Read `opened` in a task until `stop`; `delivered` counts every message received.
pub fn collect(
    client: MessageClient,
    opened: Opened,
    clock: Clock,
    delivered: Arc<AtomicU64>,
    stop: CancellationToken,
) -> JoinHandle<Collected> {
    collect_churning(client, opened, clock, delivered, stop, None)
}

/// [`collect`], also closing and resuming the stream on a new connection per `churn`.
pub fn collect_churning(
    mut client: MessageClient,
    opened: Opened,
    clock: Clock,
    delivered: Arc<AtomicU64>,
    stop: CancellationToken,
    churn: Option<Churn>,
) -> JoinHandle<Collected> {
    tokio::spawn(async move {
        let Opened {
            mut stream,
            mut cursor,
            ..
        } = opened;
        let mut collected = Collected::default();
        let period = churn.as_ref().map_or(Duration::MAX, |c| c.every);
        let mut next_churn = tokio::time::Instant::now() + period.min(Duration::from_secs(86_400));
        loop {
            let item = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(next_churn), if churn.is_some() => {
                    next_churn += period;
                    let Some(churn) = &churn else { continue };
                    // Drop the stream and its connection; resume on a new one.
                    drop(stream);
                    let reopened = async {
                        let channel = super::connect(&churn.endpoint, None).await?;
                        let mut fresh = super::message_client(&channel, &churn.bearer);
                        let opened = open(&mut fresh, cursor.clone()).await?;
                        anyhow::Ok((fresh, opened))
                    };
                    match reopened.await {
                        Ok((fresh, opened)) => {
                            collected.churns += 1;
                            for response in opened.replayed {
                                if let Some(message) = created(response) {
                                    record(&mut collected, message, clock);
                                    delivered.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            client = fresh;
                            stream = opened.stream;
                            cursor = opened.cursor;
                            continue;
                        }
                        Err(error) => {
                            collected.ended = Some(format!("reconnecting failed: {error}"));
                            break;
                        }
                    }
                }
                item = stream.message() => item,
            };
            let ending = match item {
                Ok(Some(response)) => {
                    if !response.cursor.is_empty() {
                        cursor.clone_from(&response.cursor);
                    }
                    if let Some(message) = created(response) {
                        record(&mut collected, message, clock);
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                Ok(None) => "the server closed the stream".to_owned(),
                Err(status) => failure_label(&status),
            };
            if collected.resumes >= MAX_RESUMES {
                collected.ended = Some(ending);
                break;
            }
            collected.resumes += 1;
            match open(&mut client, cursor.clone()).await {
                Ok(opened) => {
                    for response in opened.replayed {
                        if let Some(message) = created(response) {
                            record(&mut collected, message, clock);
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    stream = opened.stream;
                    cursor = opened.cursor;
                }
                Err(error) => {
                    collected.ended = Some(format!("{ending}; resuming failed: {error}"));
                    break;
                }
            }
        }
        collected
    })
}

fn created(response: pb::SubscribeResponse) -> Option<pb::Message> {
    let Some(Item::ConversationEvent(event)) = response.item else {
        return None;
    };
    match event.kind? {
        Kind::MessageCreated(created) => created.message,
        _ => None,
    }
}

fn record(collected: &mut Collected, message: pb::Message, clock: Clock) {
    let now = clock.now_micros();
    let stamp = message
        .content
        .as_ref()
        .and_then(|content| parse_stamp(&content.text));
    if let Some((sent_at, true)) = stamp {
        collected
            .latencies
            .record_micros(now.saturating_sub(sent_at));
    }
    collected.last_at_micros = now;
    collected
        .received
        .push((message.conversation_id, message.seq));
}

/// Wait until `delivered` reaches `expected`, or until it stops moving for `patience`; true if
/// everything arrived.
pub async fn wait_for(
    delivered: &AtomicU64,
    expected: u64,
    patience: Duration,
    bar: &ProgressBar,
) -> bool {
    let mut last = u64::MAX;
    let mut still_since = tokio::time::Instant::now();
    loop {
        let now = delivered.load(Ordering::Relaxed);
        bar.set_position(now);
        if now >= expected {
            return true;
        }
        if now != last {
            last = now;
            still_since = tokio::time::Instant::now();
        } else if still_since.elapsed() > patience {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stop every collector and gather what they received.
pub async fn stop_all(
    stop: &CancellationToken,
    tasks: Vec<JoinHandle<Collected>>,
) -> Vec<Collected> {
    stop.cancel();
    let mut all = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(collected) => all.push(collected),
            Err(error) => all.push(Collected {
                ended: Some(format!("collector failed: {error}")),
                ..Collected::default()
            }),
        }
    }
    all
}

/// The streams' latencies together.
pub fn merged_latencies(all: &[Collected]) -> Latencies {
    let mut latencies = Latencies::new();
    for collected in all {
        latencies.merge(&collected.latencies);
    }
    latencies
}

/// Resumes and early endings over all streams, for the report.
pub fn stream_troubles(all: &[Collected]) -> (u64, Vec<String>) {
    let resumes = all.iter().map(|c| u64::from(c.resumes)).sum();
    let mut endings: Vec<String> = all.iter().filter_map(|c| c.ended.clone()).collect();
    endings.sort();
    endings.dedup();
    (resumes, endings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        assert_eq!(
            parse_stamp(&stamp(1_234_567, true)),
            Some((1_234_567, true))
        );
        assert_eq!(parse_stamp(&stamp(5, false)), Some((5, false)));
        assert_eq!(parse_stamp("hello"), None);
        assert_eq!(parse_stamp("bench x 1"), None);
        assert_eq!(parse_stamp("bench 12"), None);
    }

    #[test]
    fn only_measured_created_messages_count_as_latencies() {
        let clock = Clock::start();
        let mut collected = Collected::default();
        let message = |seq, body: String| pb::Message {
            conversation_id: "c".into(),
            seq,
            content: Some(crate::client::text(body)),
            ..Default::default()
        };
        record(&mut collected, message(2, stamp(0, true)), clock);
        record(&mut collected, message(3, stamp(0, false)), clock);
        record(&mut collected, message(4, "not ours".into()), clock);
        assert_eq!(collected.latencies.count(), 1);
        assert_eq!(
            collected.received,
            vec![
                ("c".to_owned(), 2),
                ("c".to_owned(), 3),
                ("c".to_owned(), 4)
            ]
        );
    }
}
