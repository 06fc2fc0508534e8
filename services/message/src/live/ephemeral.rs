//! Ephemeral items (DESIGN §7): typing, receipts, others' read markers, and "a stream of this
//! device opened". Published on `echo.live.*` subjects, outside every JetStream stream's
//! filter, so nothing stores them; every instance receives them on one bus subscription and
//! routes them to its own streams. Typing indicators lapse by themselves: each instance ends
//! an indicator that was not renewed with `typing = false`.
//!
//! The presence service reads the stream signals too (DESIGN §9, presence spec A5): an open
//! stream keeps its device online through `stream_opened`, `stream_closed` and a periodic
//! `streams_alive` list, without the message service knowing about presence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use echo_bus::EventBus;
use echo_ids::{ConversationId, DeviceId, UserId};
use echo_proto::echo::events::v1 as events;
use echo_proto::echo::message::v1 as pb;
use futures::StreamExt as _;
use pb::subscribe_response::Item;
use prost::Message as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::hub::Hub;
use super::items::Outgoing;
use crate::events::timestamp;

const TYPING: &str = "echo.live.typing.";
const RECEIPT: &str = "echo.live.receipt.";
const READ_MARKER: &str = "echo.live.read_marker.";
const STREAM_OPENED: &str = "echo.live.stream_opened.";
const STREAM_CLOSED: &str = "echo.live.stream_closed.";
const STREAMS_ALIVE: &str = "echo.live.streams_alive.";
/// Most devices one StreamsAlive lists (message_events.proto), keeping each message small.
const ALIVE_BATCH: usize = 1000;
/// Longest a request waits to publish an ephemeral item.
const PUBLISH_WITHIN: Duration = Duration::from_millis(100);
/// How often lapsed typing indicators are ended.
const SWEEP: Duration = Duration::from_millis(250);

/// Publishes ephemeral items. Failures are logged, not returned: an indicator that does not
/// go out is not worth failing a request over.
#[derive(Clone)]
pub struct Publisher {
    bus: Arc<dyn EventBus>,
}

impl Publisher {
    /// A publisher on `bus`.
    pub fn new(bus: Arc<dyn EventBus>) -> Self {
        Self { bus }
    }

    /// Never holds a request up: with the bus away, a publish could wait until it is back
    /// (the client queues while reconnecting), and ephemeral items are not worth that.
    async fn publish(&self, subject: String, payload: Vec<u8>) {
        if !self.bus.is_connected() {
            tracing::debug!(%subject, "bus away; ephemeral item dropped");
            return;
        }
        let publish = self.bus.publish_ephemeral(&subject, Bytes::from(payload));
        match tokio::time::timeout(PUBLISH_WITHIN, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, %subject, "ephemeral item not published"),
            Err(_) => tracing::warn!(%subject, "ephemeral item not published in time"),
        }
    }

    /// `user` started typing in `conversation` (until `expires_at`), or stopped (`None`).
    pub async fn typing(
        &self,
        conversation: ConversationId,
        user: UserId,
        expires_at: Option<DateTime<Utc>>,
    ) {
        let update = pb::TypingUpdate {
            conversation_id: conversation.to_string(),
            user_id: user.to_string(),
            typing: expires_at.is_some(),
            expires_at: expires_at.map(timestamp),
        };
        let subject = format!("{TYPING}{conversation}");
        self.publish(subject, update.encode_to_vec()).await;
    }

    /// `user`'s `device` acknowledged delivery in `conversation` up to `up_to_seq` (at `at`).
    pub async fn receipt(
        &self,
        conversation: ConversationId,
        user: UserId,
        device: DeviceId,
        up_to_seq: i64,
        at: Option<DateTime<Utc>>,
    ) {
        let update = pb::ReceiptUpdate {
            conversation_id: conversation.to_string(),
            user_id: user.to_string(),
            device_id: device.to_string(),
            delivered_up_to_seq: up_to_seq,
            updated_at: at.map(timestamp),
        };
        let subject = format!("{RECEIPT}{conversation}");
        self.publish(subject, update.encode_to_vec()).await;
    }

    /// `user`'s read watermark in `conversation` moved to `last_read_seq` (at `at`).
    pub async fn read_marker(
        &self,
        conversation: ConversationId,
        user: UserId,
        last_read_seq: i64,
        at: DateTime<Utc>,
    ) {
        let update = pb::ReadMarkerUpdate {
            conversation_id: conversation.to_string(),
            user_id: user.to_string(),
            last_read_seq,
            updated_at: Some(timestamp(at)),
        };
        let subject = format!("{READ_MARKER}{conversation}");
        self.publish(subject, update.encode_to_vec()).await;
    }

    /// Stream `stream` of `user`'s `device` opened: older streams of the device end
    /// everywhere, and presence counts the device online.
    pub(crate) async fn stream_opened(&self, user: UserId, device: DeviceId, stream: Uuid) {
        let opened = events::StreamOpened {
            event_id: Uuid::now_v7().to_string(),
            occurred_at: Some(SystemTime::now().into()),
            user_id: user.to_string(),
            device_id: device.to_string(),
            stream_id: stream.to_string(),
        };
        let subject = format!("{STREAM_OPENED}{device}");
        self.publish(subject, opened.encode_to_vec()).await;
    }

    /// Stream `stream` of `user`'s `device` ended, for whatever reason.
    pub(crate) async fn stream_closed(&self, user: UserId, device: DeviceId, stream: Uuid) {
        let closed = events::StreamClosed {
            event_id: Uuid::now_v7().to_string(),
            occurred_at: Some(SystemTime::now().into()),
            user_id: user.to_string(),
            device_id: device.to_string(),
            stream_id: stream.to_string(),
        };
        let subject = format!("{STREAM_CLOSED}{device}");
        self.publish(subject, closed.encode_to_vec()).await;
    }

    /// `devices` ((user, device) pairs) have a stream open on instance `instance`.
    async fn streams_alive(&self, instance: Uuid, devices: &[(UserId, DeviceId)]) {
        let alive = events::StreamsAlive {
            event_id: Uuid::now_v7().to_string(),
            occurred_at: Some(SystemTime::now().into()),
            instance_id: instance.to_string(),
            devices: devices
                .iter()
                .map(|(user, device)| events::LiveDevice {
                    user_id: user.to_string(),
                    device_id: device.to_string(),
                })
                .collect(),
        };
        let subject = format!("{STREAMS_ALIVE}{instance}");
        self.publish(subject, alive.encode_to_vec()).await;
    }
}

/// Every `streams_alive_every` until `shutdown`, list the devices with a stream open here, so
/// presence keeps them online and heals a StreamOpened it missed.
pub(crate) async fn announce(hub: Hub, publisher: Publisher, shutdown: CancellationToken) {
    // Chosen once per start: instances need no configured names to be told apart.
    let instance = Uuid::now_v7();
    // `interval` panics on zero: the setting refuses zero, but settings built in code do not.
    let every = hub
        .shared
        .settings
        .streams_alive_every
        .max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // Nothing open here, nothing sent: presence needs no empty lists.
        for batch in hub.open_devices().chunks(ALIVE_BATCH) {
            publisher.streams_alive(instance, batch).await;
        }
    }
}

/// Live typing indicators this instance forwarded: (conversation, user) → when they lapse.
type Typing = HashMap<(ConversationId, UserId), Instant>;

/// Receive ephemeral items until `shutdown`, resubscribing after failures.
pub(crate) async fn listen(hub: Hub, shutdown: CancellationToken) {
    let mut typing = Typing::new();
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        let mut items = match hub.shared.bus.subscribe_ephemeral("echo.live.>").await {
            Ok(items) => items,
            Err(error) => {
                tracing::warn!(%error, "no ephemeral items (typing, receipts) until the bus is back");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = sweep.tick() => lapse(&hub, &mut typing),
                item = items.next() => match item {
                    Some((subject, payload)) => {
                        if let Err(error) = receive(&hub, &mut typing, &subject, &payload).await {
                            tracing::debug!(%error, %subject, "ephemeral item dropped");
                        }
                    }
                    None => break,
                },
            }
        }
    }
}

async fn receive(
    hub: &Hub,
    typing: &mut Typing,
    subject: &str,
    payload: &[u8],
) -> Result<(), String> {
    let decode_err = |e: prost::DecodeError| e.to_string();
    if subject.starts_with(STREAM_OPENED) {
        let opened = events::StreamOpened::decode(payload).map_err(decode_err)?;
        let parse = |text: &str| Uuid::parse_str(text).map_err(|e| e.to_string());
        hub.replaced(
            DeviceId::from(parse(&opened.device_id)?),
            parse(&opened.stream_id)?,
        );
        return Ok(());
    }
    let (conversation, actor, item) = if subject.starts_with(TYPING) {
        let update = pb::TypingUpdate::decode(payload).map_err(decode_err)?;
        let (conversation, user) = ids(&update.conversation_id, &update.user_id)?;
        if update.typing {
            let ttl = update
                .expires_at
                .and_then(|at| SystemTime::try_from(at).ok())
                .and_then(|at| at.duration_since(SystemTime::now()).ok())
                .unwrap_or_default();
            typing.insert((conversation, user), Instant::now() + ttl);
        } else {
            typing.remove(&(conversation, user));
        }
        (conversation, user, Item::TypingUpdate(update))
    } else if subject.starts_with(RECEIPT) {
        let update = pb::ReceiptUpdate::decode(payload).map_err(decode_err)?;
        let (conversation, user) = ids(&update.conversation_id, &update.user_id)?;
        (conversation, user, Item::ReceiptUpdate(update))
    } else if subject.starts_with(READ_MARKER) {
        let update = pb::ReadMarkerUpdate::decode(payload).map_err(decode_err)?;
        let (conversation, user) = ids(&update.conversation_id, &update.user_id)?;
        (conversation, user, Item::ReadMarkerUpdate(update))
    } else {
        return Ok(());
    };
    ensure_members(hub, conversation).await?;
    hub.fan_out_ephemeral(conversation, actor, Outgoing::Ephemeral(Arc::new(item)));
    Ok(())
}

fn ids(conversation: &str, user: &str) -> Result<(ConversationId, UserId), String> {
    let conversation = conversation
        .parse()
        .map_err(|e: uuid::Error| e.to_string())?;
    Ok((
        conversation,
        user.parse().map_err(|e: uuid::Error| e.to_string())?,
    ))
}

/// Load the current members of `conversation` unless the hub keeps them already. Nothing to
/// load (and nothing to route) while no stream is open here.
async fn ensure_members(hub: &Hub, conversation: ConversationId) -> Result<(), String> {
    if !hub.has_streams() || hub.members().current(conversation).is_some() {
        return Ok(());
    }
    let periods = hub
        .shared
        .store
        .periods_of_conversation(conversation, i64::MAX)
        .await
        .map_err(|e| e.to_string())?;
    let mut members = hub.members();
    // The tail may have loaded it meanwhile, for an earlier seq: keep that one.
    if members.current(conversation).is_none() {
        members.insert(conversation, i64::MAX, &periods);
    }
    Ok(())
}

/// End the typing indicators that were not renewed in time.
fn lapse(hub: &Hub, typing: &mut Typing) {
    let now = Instant::now();
    let lapsed: Vec<(ConversationId, UserId)> = typing
        .iter()
        .filter(|(_, until)| **until <= now)
        .map(|(key, _)| *key)
        .collect();
    for (conversation, user) in lapsed {
        typing.remove(&(conversation, user));
        let item = Item::TypingUpdate(pb::TypingUpdate {
            conversation_id: conversation.to_string(),
            user_id: user.to_string(),
            typing: false,
            expires_at: None,
        });
        hub.fan_out_ephemeral(conversation, user, Outgoing::Ephemeral(Arc::new(item)));
    }
}
