//! The `EventBus` seam (DESIGN §8): events that cross services, carried either by NATS
//! JetStream (production) or by the outbox tables themselves (the embedded default).
//!
//! A service never publishes directly. It appends an [`Event`] to its [`Outbox`] inside the
//! transaction that changes its data, and commits with [`Outbox::commit`]. Then:
//! - on NATS, a relay (one active per outbox, under a lease) publishes unpublished rows with
//!   `Nats-Msg-Id = event id` and marks them only after the PubAck;
//! - embedded, consumers read the outbox rows directly, by commit-safe position.
//!
//! Consumers are durable and idempotent: [`consumer::run`] records each event id in the
//! consumer's own database in the same transaction as the effect, acks only after the commit,
//! retries with backoff and parks poison events in a dead-letter store.

pub mod consumer;
mod embedded;
mod event;
mod migrations;
mod nats;
mod outbox;
pub mod subject;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use echo_store::Database;
pub use embedded::EmbeddedBus;
pub use event::{Event, Position};
pub use migrations::migrations;
pub use nats::{NatsBus, NatsSettings};
pub use outbox::{CommitWatch, Outbox, prune_periodically};

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker could not be reached (callers keep serving; the outbox holds the events).
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The database behind an outbox or a consumer failed.
    #[error(transparent)]
    Store(#[from] echo_store::StoreError),
    /// A stored event could not be decoded (a bug or a corrupted row).
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The URL names no bus we support, or its settings are unusable.
    #[error("bus configuration: {0}")]
    Config(String),
}

impl BusError {
    /// True when the database behind the outbox or the broker could not be reached (callers
    /// answer UNAVAILABLE, not INTERNAL).
    pub fn is_unavailable(&self) -> bool {
        match self {
            BusError::Unavailable(_) => true,
            BusError::Store(error) => error.is_unavailable(),
            BusError::Malformed(_) | BusError::Config(_) => false,
        }
    }
}

impl From<sqlx::Error> for BusError {
    fn from(error: sqlx::Error) -> Self {
        BusError::Store(error.into())
    }
}

/// What a durable consumer subscribes to.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    /// Durable name, unique per consuming service and purpose (e.g. `user.profiles`).
    pub name: String,
    /// Subject filter without the bus prefix, within ONE domain (`echo.auth.>`,
    /// `echo.auth.user_registered.*`): NATS 2.9 has no multi-filter consumers.
    pub filter: String,
    /// Deliveries before an event is parked in the dead-letter store.
    pub max_deliver: u32,
    /// Delay before each redelivery (the last entry repeats): the waiting room.
    pub backoff: Vec<Duration>,
    /// How long the broker waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// At most one event in flight across every instance running this consumer (NATS
    /// `max_ack_pending = 1`), so events are applied in stream order even when several
    /// instances share the durable consumer: the next is delivered only after the last was
    /// acked (or parked). Instances then share the work for failover, not for throughput.
    /// Consumers whose effects depend on order (counters reset by later events) set it.
    pub ordered: bool,
}

impl ConsumerSpec {
    /// A spec with production defaults: 5 deliveries, backoff 1 s, 5 s, 30 s; 30 s ack wait.
    pub fn new(name: impl Into<String>, filter: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            filter: filter.into(),
            max_deliver: 5,
            backoff: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            ack_wait: Duration::from_secs(30),
            ordered: false,
        }
    }

    /// This spec with [`ConsumerSpec::ordered`] set.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// The delay before delivery number `attempt + 1`.
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let index = (attempt.max(1) as usize - 1).min(self.backoff.len().saturating_sub(1));
        self.backoff
            .get(index)
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// One event handed to a consumer, with what is needed to settle it.
pub struct Delivery {
    /// The event.
    pub event: Event,
    /// Which delivery of this event this is (1 = first).
    pub attempt: u32,
    /// The source position, for buses whose consumers record their position with the effect.
    pub position: Option<Position>,
    handle: DeliveryHandle,
}

enum DeliveryHandle {
    Nats(Box<async_nats::jetstream::Message>),
    Embedded,
}

/// A durable subscription: deliveries in order; each must be acked or retried.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery (waits until there is one).
    async fn next(&mut self) -> Result<Delivery, BusError>;
    /// The delivery's effect is committed: never deliver it again.
    async fn ack(&mut self, delivery: Delivery) -> Result<(), BusError>;
    /// Deliver the same event again after `delay`.
    async fn retry(&mut self, delivery: Delivery, delay: Duration) -> Result<(), BusError>;
    /// Park a poison event: it is never delivered again to this consumer.
    async fn dead_letter(&mut self, delivery: Delivery, error: &str) -> Result<(), BusError>;
}

/// The bus seam: two implementations, [`NatsBus`] and [`EmbeddedBus`], one conformance suite.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Make events committed to `outbox` reach consumers: NATS starts the relay; the embedded
    /// bus registers the outbox as a source. Call once per outbox per process.
    async fn attach_outbox(&self, outbox: Outbox) -> Result<(), BusError>;

    /// Open a durable subscription. `db` is the consumer's own database, where its processed
    /// event ids (and, embedded, its position) are kept.
    async fn subscribe(
        &self,
        spec: &ConsumerSpec,
        db: &Database,
    ) -> Result<Box<dyn Subscription>, BusError>;

    /// Fire-and-forget publish on an ephemeral subject (typing, presence hints): never stored.
    async fn publish_ephemeral(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;

    /// Receive ephemeral publishes matching `filter` (NATS wildcards), as `(subject, payload)`.
    async fn subscribe_ephemeral(
        &self,
        filter: &str,
    ) -> Result<BoxStream<'static, (String, Bytes)>, BusError>;

    /// Like [`EventBus::subscribe_ephemeral`], but each publish reaches ONE subscriber of
    /// `group` (across instances: a NATS queue group), for work one instance should do once
    /// rather than every instance again. A group has one filter.
    async fn subscribe_ephemeral_shared(
        &self,
        filter: &str,
        group: &str,
    ) -> Result<BoxStream<'static, (String, Bytes)>, BusError>;

    /// Whether the broker is reachable right now (for metrics, never for readiness).
    fn is_connected(&self) -> bool;

    /// Stop background work (relays) promptly.
    fn shutdown(&self);
}

/// Connect the bus named by `url`: `memory://` or `nats://…`.
pub async fn connect(url: &str, settings: NatsSettings) -> Result<Arc<dyn EventBus>, BusError> {
    if url.starts_with("memory:") {
        Ok(Arc::new(EmbeddedBus::new()))
    } else if url.starts_with("nats://") || url.starts_with("tls://") {
        Ok(Arc::new(NatsBus::connect(url, settings).await?))
    } else {
        Err(BusError::Config(format!(
            "unsupported bus url `{url}`: expected memory:// or nats://…"
        )))
    }
}
