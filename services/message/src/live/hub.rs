//! The hub: one per instance. It follows the message outbox in commit-safe order (`tail`),
//! fans each event out in-process to the streams that may see it with `try_send` (never
//! waiting for a subscriber), and routes ephemeral items from the bus (`ephemeral`).
//!
//! A stream registers here, then replays from the database up to a head at or past the hub's
//! position at registration, then takes the hub's items past that head: no seam, no double.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use echo_bus::{EventBus, Outbox, Position};
use echo_config::LiveSettings;
use echo_ids::{ConversationId, DeviceId, UserId};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::ephemeral::Publisher;
use super::items::{Change, Durable, Outgoing, Route, View};
use super::membership::MemberCache;
use crate::store::MessageStore;

/// Why the hub ended a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Its buffer overflowed: the client resumes from its last cursor.
    TooSlow,
    /// A newer stream of the same device took over.
    Replaced,
}

/// One registered stream.
struct Slot {
    user: UserId,
    device: DeviceId,
    /// UUIDv7: a later-opened stream has a greater id (decides who replaces whom).
    id: Uuid,
    items: mpsc::Sender<Outgoing>,
    end: Option<oneshot::Sender<Ending>>,
}

/// Who listens here, and how far the hub has delivered.
#[derive(Default)]
struct Routing {
    /// Everything at or below this position has been handed to the streams registered then.
    position: Position,
    slots: HashMap<Uuid, Slot>,
    by_user: HashMap<UserId, Vec<Uuid>>,
    by_device: HashMap<DeviceId, Uuid>,
}

impl Routing {
    fn remove(&mut self, id: Uuid, ending: Option<Ending>) {
        let Some(mut slot) = self.slots.remove(&id) else {
            return;
        };
        // Counted here, not when the stream's future is dropped: a client too slow to read
        // may not poll its stream again for a long time.
        metrics::gauge!("echo_live_streams").decrement(1.0);
        if let Some(ids) = self.by_user.get_mut(&slot.user) {
            ids.retain(|s| *s != id);
            if ids.is_empty() {
                self.by_user.remove(&slot.user);
            }
        }
        if self.by_device.get(&slot.device) == Some(&id) {
            self.by_device.remove(&slot.device);
        }
        if let (Some(ending), Some(end)) = (ending, slot.end.take()) {
            let _ = end.send(ending);
        }
    }

    /// Hand `item` to every stream of `user`; a full buffer ends that stream.
    fn deliver(&mut self, user: UserId, item: &Outgoing) {
        let Some(ids) = self.by_user.get(&user) else {
            return;
        };
        let mut too_slow = Vec::new();
        for id in ids {
            if let Some(slot) = self.slots.get(id) {
                match slot.items.try_send(item.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => too_slow.push(*id),
                    Err(mpsc::error::TrySendError::Closed(_)) => too_slow.push(*id),
                }
            }
        }
        for id in too_slow {
            metrics::counter!("echo_live_streams_cut_total", "reason" => "resume").increment(1);
            self.remove(id, Some(Ending::TooSlow));
        }
    }
}

pub(crate) struct Shared {
    pub store: Arc<MessageStore>,
    pub outbox: Outbox,
    pub bus: Arc<dyn EventBus>,
    pub epoch: Uuid,
    pub settings: LiveSettings,
    routing: Mutex<Routing>,
    members: Mutex<MemberCache>,
}

/// The instance's live fan-out. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    pub(crate) shared: Arc<Shared>,
}

/// A stream's end of the hub: its items, the reason it was ended, and where live delivery
/// starts. Unregisters when dropped.
pub(crate) struct Registration {
    pub id: Uuid,
    user: UserId,
    device: DeviceId,
    pub items: mpsc::Receiver<Outgoing>,
    pub ended: oneshot::Receiver<Ending>,
    /// The hub's position when the stream registered: it receives every item past it.
    pub position: Position,
    hub: Hub,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.routing().remove(self.id, None);
        // However the stream ended (client gone, replaced, revoked, cut, shutdown), it ends
        // here: presence lets the device lapse unless something refreshes it. Spawned, since a
        // drop cannot wait; no runtime left means the process is going away anyway.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let publisher = Publisher::new(self.hub.shared.bus.clone());
            let (user, device, stream) = (self.user, self.device, self.id);
            runtime.spawn(async move { publisher.stream_closed(user, device, stream).await });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub over `outbox` (the message service's), starting at its current head.
    pub async fn new(
        store: Arc<MessageStore>,
        outbox: Outbox,
        bus: Arc<dyn EventBus>,
        settings: LiveSettings,
    ) -> Result<Hub, echo_bus::BusError> {
        let epoch = outbox.epoch().await?;
        let position = outbox.head().await?;
        Ok(Hub {
            shared: Arc::new(Shared {
                store,
                outbox,
                bus,
                epoch,
                settings,
                routing: Mutex::new(Routing {
                    position,
                    ..Routing::default()
                }),
                members: Mutex::new(MemberCache::default()),
            }),
        })
    }

    fn routing(&self) -> MutexGuard<'_, Routing> {
        lock(&self.shared.routing)
    }

    /// The membership cache (never held across an await).
    pub(crate) fn members(&self) -> MutexGuard<'_, MemberCache> {
        lock(&self.shared.members)
    }

    /// How far the hub has delivered.
    pub(crate) fn position(&self) -> Position {
        self.routing().position
    }

    /// Register a stream of `user`'s `device`, ending any older stream of that device here.
    pub(crate) fn register(&self, user: UserId, device: DeviceId) -> Registration {
        let (items_tx, items) = mpsc::channel(self.shared.settings.stream_buffer.max(1));
        let (end_tx, ended) = oneshot::channel();
        let id = Uuid::now_v7();
        let mut routing = self.routing();
        if let Some(older) = routing.by_device.get(&device).copied() {
            routing.remove(older, Some(Ending::Replaced));
        }
        routing.slots.insert(
            id,
            Slot {
                user,
                device,
                id,
                items: items_tx,
                end: Some(end_tx),
            },
        );
        routing.by_user.entry(user).or_default().push(id);
        routing.by_device.insert(device, id);
        let position = routing.position;
        drop(routing);
        metrics::gauge!("echo_live_streams").increment(1.0);
        Registration {
            id,
            user,
            device,
            items,
            ended,
            position,
            hub: self.clone(),
        }
    }

    /// A stream of `device` with id `newer` opened somewhere: end any older one here.
    pub(crate) fn replaced(&self, device: DeviceId, newer: Uuid) {
        let mut routing = self.routing();
        if let Some(id) = routing.by_device.get(&device).copied()
            && routing.slots.get(&id).is_some_and(|slot| slot.id < newer)
        {
            routing.remove(id, Some(Ending::Replaced));
        }
    }

    /// Hand a decoded, hydrated batch to the streams that may see each event, then move the
    /// position to `upto`. Membership for every conversation in the batch is loaded already.
    pub(crate) fn fan_out(&self, batch: Vec<Durable>, upto: Position) {
        let mut members = self.members();
        let mut routing = self.routing();
        for durable in batch {
            let position = durable.position;
            let route = durable.route;
            let durable = Arc::new(durable);
            match route {
                Route::User { id, .. } => {
                    routing.deliver(id, &Outgoing::Durable(durable, View::default()));
                }
                Route::Conversation { id, seq, change } => {
                    // A joiner receives their MemberJoined; a leaver their MemberLeft/Removed.
                    if let Some(joined @ Change::Joined(_)) = change {
                        members.apply(id, seq, joined);
                    }
                    for (user, view) in recipients(&mut members, &routing, id, seq) {
                        routing.deliver(user, &Outgoing::Durable(durable.clone(), view));
                    }
                    if let Some(left @ Change::Left(_)) = change {
                        members.apply(id, seq, left);
                    }
                }
            }
            routing.position = routing.position.max(position);
        }
        routing.position = routing.position.max(upto);
    }

    /// Hand an ephemeral item about `conversation` to its current members' streams, except
    /// `actor`'s own.
    pub(crate) fn fan_out_ephemeral(
        &self,
        conversation: ConversationId,
        actor: UserId,
        item: Outgoing,
    ) {
        let Some(users) = self.members().current(conversation) else {
            return;
        };
        let mut routing = self.routing();
        for user in users.into_iter().filter(|u| *u != actor) {
            routing.deliver(user, &item);
        }
    }

    /// The (user, device) pairs with a stream open here, one per device.
    pub(crate) fn open_devices(&self) -> Vec<(UserId, DeviceId)> {
        let routing = self.routing();
        routing
            .by_device
            .iter()
            .filter_map(|(device, id)| Some((routing.slots.get(id)?.user, *device)))
            .collect()
    }

    /// Whether any stream is registered here (else a batch needs no reading of snapshots).
    pub(crate) fn has_streams(&self) -> bool {
        !self.routing().slots.is_empty()
    }

    /// Items queued across every stream here (the bounded-memory gauge).
    pub(crate) fn buffered_items(&self) -> usize {
        self.routing()
            .slots
            .values()
            .map(|slot| slot.items.max_capacity() - slot.items.capacity())
            .sum()
    }
}

/// The local users who were members of `conversation` at `seq`, with their view of it,
/// iterating whichever side is smaller: the users with streams here or the members.
fn recipients(
    members: &mut MemberCache,
    routing: &Routing,
    conversation: ConversationId,
    seq: i64,
) -> Vec<(UserId, View)> {
    let users: Vec<UserId> = if routing.by_user.len() <= members.size(conversation) {
        routing.by_user.keys().copied().collect()
    } else {
        members
            .members_at(conversation, seq)
            .into_iter()
            .filter(|user| routing.by_user.contains_key(user))
            .collect()
    };
    users
        .into_iter()
        .filter_map(|user| Some((user, members.view(conversation, user, seq)?)))
        .collect()
}
