//! The NATS JetStream bus (DESIGN §8). Works with NATS 2.9: one filter per consumer, nak with
//! delay for backoff, no per-message TTL or batch publish.

mod relay;
mod subscription;

use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, HeaderMap};
use async_trait::async_trait;
use bytes::Bytes;
use echo_store::Database;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{BusError, ConsumerSpec, Event, EventBus, Outbox};

/// Header carrying the event's protobuf type.
pub(crate) const HEADER_TYPE: &str = "Echo-Event-Type";
/// Header carrying when the event happened (unix microseconds).
pub(crate) const HEADER_OCCURRED: &str = "Echo-Occurred-At";
/// W3C trace context header, so traces cross the bus.
pub(crate) const HEADER_TRACEPARENT: &str = "traceparent";

/// How the NATS bus names and keeps things.
#[derive(Clone, Debug)]
pub struct NatsSettings {
    /// Put in front of every subject and stream name (isolates deployments and tests).
    pub subject_prefix: String,
    /// How long streams keep events (`max_age`).
    pub max_age: Duration,
    /// JetStream de-duplication window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            subject_prefix: String::new(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// The production bus: JetStream streams per domain, a relay per outbox.
pub struct NatsBus {
    client: Client,
    js: jetstream::Context,
    settings: NatsSettings,
    shutdown: CancellationToken,
    relays: Mutex<Vec<JoinHandle<()>>>,
}

impl NatsBus {
    /// Connect to `url`. Returns at once even if NATS is down: the client keeps reconnecting,
    /// and the outbox holds events meanwhile (a bus outage must not stop sends).
    pub async fn connect(url: &str, settings: NatsSettings) -> Result<Self, BusError> {
        let client = ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(5)))
            .max_reconnects(None)
            .connect(url)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        let js = jetstream::new(client.clone());
        Ok(Self {
            client,
            js,
            settings,
            shutdown: CancellationToken::new(),
            relays: Mutex::new(Vec::new()),
        })
    }

    /// The prefixed wire subject for an unprefixed one.
    pub(crate) fn wire_subject(settings: &NatsSettings, subject: &str) -> String {
        format!("{}{subject}", settings.subject_prefix)
    }

    /// Create or update `domain`'s stream with explicit retention and de-dup window.
    pub(crate) async fn ensure_stream(
        js: &jetstream::Context,
        settings: &NatsSettings,
        domain: &str,
    ) -> Result<stream::Stream, BusError> {
        let name = crate::subject::stream_name(&settings.subject_prefix, domain);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![Self::wire_subject(settings, &format!("echo.{domain}.>"))],
            max_age: settings.max_age,
            duplicate_window: settings.duplicate_window,
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        };
        js.create_or_update_stream(config)
            .await
            .map_err(|e| BusError::Unavailable(format!("stream {name}: {e}")))?;
        js.get_stream(&name)
            .await
            .map_err(|e| BusError::Unavailable(format!("stream {name}: {e}")))
    }

    /// The headers an event travels with.
    pub(crate) fn headers(event: &Event) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            event.id.to_string().as_str(),
        );
        headers.insert(HEADER_TYPE, event.event_type.as_str());
        headers.insert(
            HEADER_OCCURRED,
            event.occurred_at.timestamp_micros().to_string().as_str(),
        );
        if let Some(trace_parent) = &event.trace_parent {
            headers.insert(HEADER_TRACEPARENT, trace_parent.as_str());
        }
        headers
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn attach_outbox(&self, outbox: Outbox) -> Result<(), BusError> {
        let relay = relay::Relay::new(outbox, self.js.clone(), self.settings.clone());
        let handle = tokio::spawn(relay.run(self.shutdown.child_token()));
        self.relays.lock().expect("relay list").push(handle);
        Ok(())
    }

    async fn subscribe(
        &self,
        spec: &ConsumerSpec,
        db: &Database,
    ) -> Result<Box<dyn crate::Subscription>, BusError> {
        let subscription =
            subscription::NatsSubscription::open(&self.js, &self.settings, spec, db).await?;
        Ok(Box::new(subscription))
    }

    async fn publish_ephemeral(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        let subject = Self::wire_subject(&self.settings, subject);
        self.client
            .publish(subject, payload)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }

    async fn subscribe_ephemeral(
        &self,
        filter: &str,
    ) -> Result<BoxStream<'static, (String, Bytes)>, BusError> {
        let wire = Self::wire_subject(&self.settings, filter);
        let subscriber = self.client.subscribe(wire).await;
        self.ephemeral(subscriber)
    }

    async fn subscribe_ephemeral_shared(
        &self,
        filter: &str,
        group: &str,
    ) -> Result<BoxStream<'static, (String, Bytes)>, BusError> {
        let wire = Self::wire_subject(&self.settings, filter);
        let subscriber = self.client.queue_subscribe(wire, group.to_owned()).await;
        self.ephemeral(subscriber)
    }

    fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl NatsBus {
    /// An ephemeral subscription's messages as `(subject without this bus's prefix, payload)`.
    fn ephemeral(
        &self,
        subscriber: Result<async_nats::Subscriber, async_nats::SubscribeError>,
    ) -> Result<BoxStream<'static, (String, Bytes)>, BusError> {
        let subscriber = subscriber.map_err(|e| BusError::Unavailable(e.to_string()))?;
        let prefix_len = self.settings.subject_prefix.len();
        Ok(subscriber
            .map(move |message| (message.subject[prefix_len..].to_owned(), message.payload))
            .boxed())
    }
}

impl Drop for NatsBus {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
