//! The embedded bus: the outbox tables themselves, read in-process (DESIGN §8).
//!
//! Consumers follow a source outbox by commit-safe position and store that position in their
//! own database with each effect, so nothing is lost or applied twice across restarts. Commits
//! in this process wake them at once; a short poll covers everything else.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use echo_store::Database;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use crate::consumer::{load_position, park};
use crate::subject::{domain, matches};
use crate::{BusError, ConsumerSpec, Delivery, DeliveryHandle, Event, EventBus, Outbox, Position};

/// How many rows one read takes from an outbox.
const READ_BATCH: i64 = 256;
/// The fallback poll when no in-process commit signal arrives.
const POLL: Duration = Duration::from_millis(500);

/// The in-process bus (`bus_url = "memory://"`): one process runs the whole mesh.
pub struct EmbeddedBus {
    outboxes: Mutex<HashMap<String, Outbox>>,
    attached: watch::Sender<usize>,
    // Ephemeral traffic (typing, presence hints) may be dropped for a lagging receiver by design:
    // it is never stored anywhere, on either bus.
    ephemeral: broadcast::Sender<(String, Bytes)>,
    /// Shared ephemeral subscriptions by group: its filter, and one queue its members take
    /// turns reading (so each publish reaches one of them).
    groups: Mutex<HashMap<String, Group>>,
}

type Shared = tokio::sync::Mutex<mpsc::Receiver<(String, Bytes)>>;

struct Group {
    filter: String,
    tx: mpsc::Sender<(String, Bytes)>,
    members: Weak<Shared>,
}

impl Default for EmbeddedBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EmbeddedBus {
    /// An empty bus; outboxes join with [`EventBus::attach_outbox`].
    pub fn new() -> Self {
        Self {
            outboxes: Mutex::new(HashMap::new()),
            attached: watch::channel(0).0,
            ephemeral: broadcast::channel(4096).0,
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// The outbox holding `domain`'s events, waiting for it to be attached if needed
    /// (services start in any order).
    async fn outbox_for(&self, domain: &str) -> Outbox {
        let mut attached = self.attached.subscribe();
        loop {
            if let Some(outbox) = self.outboxes.lock().expect("outbox map").get(domain) {
                return outbox.clone();
            }
            let _ = attached.changed().await;
        }
    }
}

#[async_trait]
impl EventBus for EmbeddedBus {
    async fn attach_outbox(&self, outbox: Outbox) -> Result<(), BusError> {
        let service = outbox.service().to_owned();
        self.outboxes
            .lock()
            .expect("outbox map")
            .insert(service, outbox);
        self.attached.send_modify(|n| *n += 1);
        Ok(())
    }

    async fn subscribe(
        &self,
        spec: &ConsumerSpec,
        db: &Database,
    ) -> Result<Box<dyn crate::Subscription>, BusError> {
        let domain = domain(&spec.filter)
            .ok_or_else(|| BusError::Config(format!("filter `{}` names no domain", spec.filter)))?;
        let outbox = self.outbox_for(domain).await;
        let position = load_position(db, &spec.name).await?;
        Ok(Box::new(EmbeddedSubscription {
            signal: outbox.commit_signal(),
            outbox,
            db: db.clone(),
            spec: spec.clone(),
            scanned: position,
            buffer: VecDeque::new(),
            retry: None,
        }))
    }

    async fn publish_ephemeral(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        // No receiver is not an error: nobody is watching that conversation right now.
        let _ = self.ephemeral.send((subject.to_owned(), payload.clone()));
        let mut groups = self.groups.lock().expect("ephemeral groups");
        // A group whose members are all gone is forgotten; a full queue drops (ephemeral).
        groups.retain(|_, group| group.members.strong_count() > 0);
        for group in groups.values() {
            if matches(&group.filter, subject) {
                let _ = group.tx.try_send((subject.to_owned(), payload.clone()));
            }
        }
        Ok(())
    }

    async fn subscribe_ephemeral(
        &self,
        filter: &str,
    ) -> Result<BoxStream<'static, (String, Bytes)>, BusError> {
        let filter = filter.to_owned();
        let receiver = self.ephemeral.subscribe();
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(item) => return Some((item, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(stream
            .filter(move |(subject, _)| futures::future::ready(matches(&filter, subject)))
            .boxed())
    }

    async fn subscribe_ephemeral_shared(
        &self,
        filter: &str,
        group: &str,
    ) -> Result<BoxStream<'static, (String, Bytes)>, BusError> {
        let members = {
            let mut groups = self.groups.lock().expect("ephemeral groups");
            let joined = groups
                .get(group)
                .filter(|g| g.filter == filter)
                .and_then(|g| g.members.upgrade());
            match joined {
                Some(members) => members,
                None => {
                    let (tx, rx) = mpsc::channel(4096);
                    let members = Arc::new(tokio::sync::Mutex::new(rx));
                    groups.insert(
                        group.to_owned(),
                        Group {
                            filter: filter.to_owned(),
                            tx,
                            members: Arc::downgrade(&members),
                        },
                    );
                    members
                }
            }
        };
        Ok(futures::stream::unfold(members, |members| async move {
            let item = members.lock().await.recv().await?;
            Some((item, members))
        })
        .boxed())
    }

    fn is_connected(&self) -> bool {
        true
    }

    fn shutdown(&self) {}
}

struct EmbeddedSubscription {
    outbox: Outbox,
    signal: watch::Receiver<u64>,
    db: Database,
    spec: ConsumerSpec,
    /// How far this subscription has read (past rows its filter skips, too).
    scanned: Position,
    buffer: VecDeque<(Position, Event)>,
    /// The delivery waiting for a retry: (position, event, attempts so far, not before).
    retry: Option<(Position, Event, u32, Instant)>,
}

#[async_trait]
impl crate::Subscription for EmbeddedSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        // Cancel-safe: the retry stays pending until its delay has passed.
        if let Some((_, _, _, not_before)) = &self.retry {
            tokio::time::sleep_until(*not_before).await;
            if let Some((position, event, attempts, _)) = self.retry.take() {
                return Ok(delivery(position, event, attempts + 1));
            }
        }
        loop {
            if let Some((position, event)) = self.buffer.pop_front() {
                return Ok(delivery(position, event, 1));
            }
            let rows = self.outbox.read_after(self.scanned, READ_BATCH).await?;
            if let Some((last, _)) = rows.last() {
                self.scanned = *last;
            } else {
                Outbox::wait_for_commit(&mut self.signal, POLL).await;
            }
            let filter = &self.spec.filter;
            self.buffer.extend(
                rows.into_iter()
                    .filter(|(_, e)| matches(filter, &e.subject)),
            );
        }
    }

    async fn ack(&mut self, _delivery: Delivery) -> Result<(), BusError> {
        // The position was stored with the effect (consumer::apply); nothing else to do.
        Ok(())
    }

    async fn retry(&mut self, delivery: Delivery, delay: Duration) -> Result<(), BusError> {
        let position = delivery.position.unwrap_or_default();
        self.retry = Some((
            position,
            delivery.event,
            delivery.attempt,
            Instant::now() + delay,
        ));
        Ok(())
    }

    async fn dead_letter(&mut self, delivery: Delivery, error: &str) -> Result<(), BusError> {
        park(&self.db, &self.spec.name, &delivery, error).await
    }
}

fn delivery(position: Position, event: Event, attempt: u32) -> Delivery {
    Delivery {
        event,
        attempt,
        position: Some(position),
        handle: DeliveryHandle::Embedded,
    }
}
