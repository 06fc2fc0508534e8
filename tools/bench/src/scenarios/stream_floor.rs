//! The fan-out floor: a bare tonic server-streaming RPC served in this process with tonic's
//! defaults (no layers, no auth, no storage), `streams` streams opened over as many
//! connections as the scenario's, and one item handed to every stream, `changes` times — the
//! way presence hands a status change to its watchers: one `try_send` per stream into its
//! channel (capacity 256, presence's `watch_buffer`), under one lock. What this machine's RPC
//! stack takes to deliver one item to W streams, so a fan-out figure reads as a multiple of it.
//!
//! The server is [`super::baseline`]'s hand-written service (its `Watch` method); the item is
//! its `Payload`, 56 bytes, about a presence item.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::codegen::http;
use tonic_prost::ProstCodec;

use super::baseline::{Hub, Payload, Served, WATCH_PATH};
use crate::client::{Pool, STREAM_SLOTS_HINT, live};
use crate::report::{Progress, round1};
use crate::stats::{Clock, Latencies, per_second};

const ITEM_BYTES: usize = 56;

/// What to measure.
pub struct Floor {
    /// Streams (one per watcher).
    pub streams: usize,
    /// Client connections they are multiplexed over (at least; more if the streams need
    /// them at `streams_per_connection` each, as presence's watches get).
    pub connections: usize,
    /// Most streams on one connection.
    pub streams_per_connection: usize,
    /// Items handed to every stream.
    pub changes: usize,
    /// Time between items.
    pub every: Duration,
}

/// Run it: the figures (`latency`, `items_per_s`, `lost`), as JSON.
pub async fn run(floor: &Floor, quiet: bool) -> anyhow::Result<Value> {
    let hub = Hub::default();
    let served = Served::start(hub.clone()).await?;
    let outcome = async {
        let pool = Pool::connect(
            &format!("http://{}", served.addr),
            floor.connections,
            floor.streams_per_connection,
        )
        .await?
        .for_streams(floor.streams)
        .await?;
        measure(floor, &pool, &hub, quiet).await
    }
    .await;
    served.shutdown.cancel();
    // Ends the streams, so the server's graceful shutdown does not wait for them.
    hub.lock().unwrap_or_else(|e| e.into_inner()).clear();
    served.stop().await;
    outcome
}

async fn measure(floor: &Floor, pool: &Pool, hub: &Hub, quiet: bool) -> anyhow::Result<Value> {
    let progress = Progress::new(quiet);
    let clock = Clock::start();
    let received = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let bar = progress.bar(floor.streams as u64, "floor: opening streams");
    let mut collectors = Vec::with_capacity(floor.streams);
    for index in 0..floor.streams {
        let mut grpc = tonic::client::Grpc::new(pool.get(index).clone());
        let opening = async {
            grpc.ready().await?;
            let path = http::uri::PathAndQuery::from_static(WATCH_PATH);
            let codec = ProstCodec::<Payload, Payload>::default();
            let stream = grpc
                .server_streaming(Request::new(Payload::default()), path, codec)
                .await?
                .into_inner();
            anyhow::Ok(stream)
        };
        let mut stream = match tokio::time::timeout(live::OPEN_WITHIN, opening).await {
            Ok(stream) => stream?,
            Err(_) => bail!(
                "floor: opening {}: stream {index} did not open within {} s ({STREAM_SLOTS_HINT})",
                pool.layout(floor.streams),
                live::OPEN_WITHIN.as_secs()
            ),
        };
        let (received, stop) = (received.clone(), stop.clone());
        collectors.push(tokio::spawn(async move {
            // (arrival µs, change index) of every item.
            let mut seen: Vec<(u64, usize)> = Vec::new();
            loop {
                let item = tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    item = stream.message() => item,
                };
                let Ok(Some(item)) = item else { break };
                let change = usize::from(item.data.first().copied().unwrap_or(u8::MAX));
                seen.push((clock.now_micros(), change));
                received.fetch_add(1, Ordering::Relaxed);
            }
            seen
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    while hub.lock().unwrap_or_else(|e| e.into_inner()).len() < floor.streams {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let changes = floor.changes.min(usize::from(u8::MAX));
    let mut starts = Vec::with_capacity(changes);
    let first = tokio::time::Instant::now();
    for k in 0..changes {
        tokio::time::sleep_until(first + floor.every * u32::try_from(k).unwrap_or(u32::MAX)).await;
        let mut data = vec![b'x'; ITEM_BYTES];
        data[0] = u8::try_from(k).unwrap_or(u8::MAX);
        let item = Payload {
            data: bytes::Bytes::from(data),
        };
        starts.push(clock.now_micros());
        for tx in hub.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = tx.try_send(item.clone());
        }
    }
    let expected = (floor.streams * changes) as u64;
    let bar = progress.bar(expected, "floor: awaiting items");
    live::wait_for(&received, expected, Duration::from_secs(10), &bar).await;
    bar.finish_and_clear();
    stop.cancel();

    let mut all = Latencies::new();
    let mut spans: Vec<Option<(u64, u64)>> = vec![None; changes];
    let mut counts = vec![0u64; changes];
    for collector in collectors {
        for (arrived, change) in collector.await.unwrap_or_default() {
            let Some(&sent) = starts.get(change) else {
                continue;
            };
            all.record_micros(arrived.saturating_sub(sent));
            counts[change] += 1;
            let span = spans[change].get_or_insert((arrived, arrived));
            span.0 = span.0.min(arrived);
            span.1 = span.1.max(arrived);
        }
    }
    Ok(json!({
        "streams": floor.streams,
        "connections": pool.len(),
        "changes": changes,
        "every_ms": floor.every.as_millis() as u64,
        "latency": all.summary(),
        "items_per_s": median_rate(&counts, &spans),
        "lost": expected.saturating_sub(all.count()),
    }))
}

/// Items per second while one item is handed out (its arrivals over the time from the first to
/// the last), the median over the changes — the same figure as presence's fan-out.
pub fn median_rate(counts: &[u64], spans: &[Option<(u64, u64)>]) -> f64 {
    let mut rates: Vec<f64> = counts
        .iter()
        .zip(spans)
        .filter_map(|(&count, span)| {
            let (first, last) = (*span)?;
            let took = Duration::from_micros(last.saturating_sub(first));
            (count > 1 && !took.is_zero()).then(|| per_second(count, took))
        })
        .collect();
    if rates.is_empty() {
        return 0.0;
    }
    rates.sort_by(f64::total_cmp);
    round1(rates[rates.len() / 2])
}
