//! An open Subscribe stream keeps its device present (spec §A5). The message service says
//! so on ephemeral subjects — `stream_opened`, `stream_closed`, and every ~30 s
//! `streams_alive` with the devices still open — and presence refreshes or shortens the
//! device's entry; no crate of either service depends on the other.
//!
//! Every presence instance hears every signal and applies it: the writes are idempotent, and
//! the cost is one state write per instance per signal.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use echo_ids::{DeviceId, UserId};
use echo_proto::echo::events::v1 as events;
use futures::StreamExt as _;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::tracker::Tracker;

const OPENED: &str = "echo.live.stream_opened.";
const CLOSED: &str = "echo.live.stream_closed.";
const ALIVE: &str = "echo.live.streams_alive.";
/// Refreshes in flight while applying one `streams_alive` batch.
const CONCURRENCY: usize = 32;

/// Apply stream signals until `shutdown`.
pub async fn listen(tracker: Tracker, shutdown: CancellationToken) {
    let bus = tracker.hints.bus().clone();
    loop {
        let subscribed = futures::future::try_join3(
            bus.subscribe_ephemeral(&format!("{OPENED}*")),
            bus.subscribe_ephemeral(&format!("{CLOSED}*")),
            bus.subscribe_ephemeral(&format!("{ALIVE}*")),
        )
        .await;
        let (opened, closed, alive) = match subscribed {
            Ok(streams) => streams,
            Err(error) => {
                tracing::warn!(%error, "no stream signals until the bus is back");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let mut signals = futures::stream::select_all([opened, closed, alive]);
        let mut streams = Streams::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                signal = signals.next() => match signal {
                    Some((subject, payload)) => {
                        apply(&tracker, &mut streams, &subject, &payload).await;
                    }
                    None => break,
                },
            }
        }
    }
}

/// The newest stream opened per device: a replaced stream's `stream_closed` can arrive after
/// its successor's `stream_opened`, and must not cut the device's entry short while the
/// successor is open. Stream ids are UUIDv7, so newer is greater. One entry per device with
/// an open stream (removed by its close).
type Streams = HashMap<DeviceId, Uuid>;

fn ids(user: &str, device: &str) -> Option<(UserId, DeviceId)> {
    Some((user.parse().ok()?, device.parse().ok()?))
}

fn stream_ids(user: &str, device: &str, stream: &str) -> Option<(UserId, DeviceId, Uuid)> {
    let (user, device) = ids(user, device)?;
    Some((user, device, Uuid::parse_str(stream).ok()?))
}

async fn apply(tracker: &Tracker, streams: &mut Streams, subject: &str, payload: &[u8]) {
    let outcome = if subject.starts_with(OPENED) {
        let Some((user, device, stream)) = events::StreamOpened::decode(payload)
            .ok()
            .and_then(|m| stream_ids(&m.user_id, &m.device_id, &m.stream_id))
        else {
            return;
        };
        let newest = streams.entry(device).or_insert(stream);
        *newest = (*newest).max(stream);
        tracker.refresh(user, device, None).await.map(drop)
    } else if subject.starts_with(CLOSED) {
        let Some((user, device, stream)) = events::StreamClosed::decode(payload)
            .ok()
            .and_then(|m| stream_ids(&m.user_id, &m.device_id, &m.stream_id))
        else {
            return;
        };
        if streams.get(&device).is_some_and(|newest| *newest > stream) {
            return; // replaced: its successor keeps the device present
        }
        streams.remove(&device);
        let within = tracker.settings.stream_closed_ttl;
        tracker
            .state
            .expire_within(user, device, within, Utc::now())
            .await
            .map_err(Into::into)
    } else if subject.starts_with(ALIVE) {
        let Ok(alive) = events::StreamsAlive::decode(payload) else {
            return;
        };
        let devices: Vec<(UserId, DeviceId)> = alive
            .devices
            .iter()
            .filter_map(|d| ids(&d.user_id, &d.device_id))
            .collect();
        futures::stream::iter(devices)
            .map(|(user, device)| tracker.refresh(user, device, None))
            .buffer_unordered(CONCURRENCY)
            .filter_map(|result| async move { result.err() })
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .next()
            .map_or(Ok(()), Err)
    } else {
        return;
    };
    if let Err(error) = outcome {
        tracing::debug!(%error, %subject, "stream signal not applied");
    }
}
