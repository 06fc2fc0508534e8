//! Watchers on one instance (spec §A2, §A4): a local index user → watch streams, fed by ONE
//! subscription to the presence hints, with versions (a late hint never overwrites a newer
//! state), damping of ONLINE↔AWAY flaps, visibility per (observer, target), and a periodic
//! reconcile that heals lost hints and missed visibility changes.
//!
//! Each stream gets an item only when what *it* observes changes: a hint for a user it may
//! not see changes nothing it can see. Sends never wait: a full stream buffer ends the stream
//! with RESUME (its client reopens and gets a fresh snapshot).
//!
//! One file because the index, the versions and the damping are one piece of state under one
//! lock, changed together by every hint and every reconcile; the subscription loop (`listen`)
//! and a stream's own end (`stream`) are apart.

mod listen;
pub mod stream;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use echo_ids::UserId;
use echo_proto::echo::presence::v1 as pb;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use listen::listen;

use crate::error::PresenceError;
use crate::hints::{Changed, status_pb, timestamp};
use crate::status::{Observed, View};
use crate::tracker::Tracker;
use crate::visibility::{Relation, may_see};

/// What one watcher has been shown of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Restricted,
    Visible(View),
}

impl Shown {
    fn of(visible: bool, view: View) -> Self {
        if visible {
            Shown::Visible(view)
        } else {
            Shown::Restricted
        }
    }

    fn to_pb(self, user: UserId) -> pb::Presence {
        match self {
            Shown::Restricted => pb::Presence {
                user_id: user.to_string(),
                restricted: true,
                ..pb::Presence::default()
            },
            Shown::Visible(view) => presence_pb(user, view),
        }
    }
}

/// The proto form of `user`'s view for a permitted observer.
pub fn presence_pb(user: UserId, view: View) -> pb::Presence {
    pb::Presence {
        user_id: user.to_string(),
        status: status_pb(view.status) as i32,
        last_seen: view.last_seen.map(timestamp),
        restricted: false,
    }
}

/// One watcher's slot for one target.
#[derive(Debug, Clone, Copy)]
struct Slot {
    visible: bool,
    /// `None` until the snapshot is taken (hints before it only update the index).
    shown: Option<Shown>,
}

struct Watch {
    observer: UserId,
    /// `None` once the stream fell behind: dropping the sender ends it after what it buffered.
    tx: Option<mpsc::Sender<pb::Presence>>,
    overflowed: Arc<AtomicBool>,
    targets: HashMap<UserId, Slot>,
}

/// ONLINE↔AWAY damping of one user: when the last change went out, and the latest one held.
struct Damper {
    last_sent: Instant,
    held: Option<(u64, View)>,
}

#[derive(Default)]
struct Index {
    next_id: u64,
    streams: HashMap<u64, Watch>,
    by_target: HashMap<UserId, HashSet<u64>>,
    /// The newest view applied per watched user, with its version.
    views: HashMap<UserId, (u64, View)>,
    dampers: HashMap<UserId, Damper>,
}

/// What a new watch stream starts with.
pub struct Opened {
    /// The stream's id in the index.
    pub id: u64,
    /// One presence per watched user, to send first.
    pub snapshot: Vec<pb::Presence>,
    /// Later changes.
    pub changes: mpsc::Receiver<pb::Presence>,
    /// Set when the stream was dropped for falling behind.
    pub overflowed: Arc<AtomicBool>,
}

/// The watchers of this instance.
#[derive(Clone)]
pub struct Watchers {
    index: Arc<Mutex<Index>>,
    tracker: Tracker,
}

impl Watchers {
    /// No watchers yet.
    pub fn new(tracker: Tracker) -> Self {
        Self {
            index: Arc::default(),
            tracker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open a watch of `targets` for `observer`: registered first (no hint is missed), then
    /// the snapshot is read and merged with whatever hints arrived meanwhile.
    pub async fn open(
        &self,
        observer: UserId,
        targets: Vec<UserId>,
    ) -> Result<Opened, PresenceError> {
        let (tx, changes) = mpsc::channel(self.tracker.settings.watch_buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = {
            let mut index = self.lock();
            index.next_id += 1;
            let id = index.next_id;
            for target in &targets {
                index.by_target.entry(*target).or_default().insert(id);
            }
            let slots = targets
                .iter()
                .map(|t| {
                    (
                        *t,
                        Slot {
                            visible: false,
                            shown: None,
                        },
                    )
                })
                .collect();
            index.streams.insert(
                id,
                Watch {
                    observer,
                    tx: Some(tx),
                    overflowed: overflowed.clone(),
                    targets: slots,
                },
            );
            id
        };
        let read = async {
            let (states, relations) = tokio::join!(
                self.tracker.read(&targets),
                self.tracker.store.relations(observer, &targets)
            );
            Ok::<_, PresenceError>((states?, relations?))
        };
        let (states, relations) = match read.await {
            Ok(read) => read,
            Err(error) => {
                self.close(id);
                return Err(error);
            }
        };
        let mut index = self.lock();
        let mut snapshot = Vec::with_capacity(targets.len());
        for state in states {
            let target = state.user_id;
            let fresh = (state.version, state.view());
            let entry = index.views.entry(target).or_insert(fresh);
            if fresh.0 > entry.0 {
                *entry = fresh;
            }
            let view = entry.1;
            let visible = may_see(
                observer,
                target,
                &relations.get(&target).copied().unwrap_or_default(),
            );
            let shown = Shown::of(visible, view);
            if let Some(slot) = index
                .streams
                .get_mut(&id)
                .and_then(|w| w.targets.get_mut(&target))
            {
                *slot = Slot {
                    visible,
                    shown: Some(shown),
                };
            }
            snapshot.push(shown.to_pb(target));
        }
        Ok(Opened {
            id,
            snapshot,
            changes,
            overflowed,
        })
    }

    /// Forget stream `id` (it ended).
    pub fn close(&self, id: u64) {
        let mut index = self.lock();
        let Some(watch) = index.streams.remove(&id) else {
            return;
        };
        for target in watch.targets.keys() {
            if let Some(ids) = index.by_target.get_mut(target) {
                ids.remove(&id);
                if ids.is_empty() {
                    index.by_target.remove(target);
                    index.views.remove(target);
                    index.dampers.remove(target);
                }
            }
        }
    }

    /// Open streams on this instance.
    pub fn streams(&self) -> usize {
        self.lock().streams.len()
    }

    /// Apply a hint (or a reconciled state): drop it if not newer, damp ONLINE↔AWAY flaps,
    /// else send it to every watcher whose observed value changes.
    pub fn apply(&self, changed: Changed) {
        let damping = self.tracker.settings.damping;
        let mut index = self.lock();
        let Some(&(version, previous)) = index.views.get(&changed.user) else {
            return; // nobody here watches this user
        };
        if changed.version <= version {
            return;
        }
        index
            .views
            .insert(changed.user, (changed.version, changed.view));
        let now = Instant::now();
        let flap = is_flap(previous.status, changed.view.status);
        let damper = index.dampers.entry(changed.user).or_insert(Damper {
            last_sent: now - damping,
            held: None,
        });
        if flap && now < damper.last_sent + damping {
            damper.held = Some((changed.version, changed.view));
            return;
        }
        damper.last_sent = now;
        damper.held = None;
        index.emit(changed.user, changed.view);
    }

    /// Send the damped changes whose window has passed (the latest of each).
    pub fn release_held(&self) {
        let damping = self.tracker.settings.damping;
        let now = Instant::now();
        let mut index = self.lock();
        let due: Vec<(UserId, View)> = index
            .dampers
            .iter_mut()
            .filter(|(_, d)| d.held.is_some() && now >= d.last_sent + damping)
            .filter_map(|(user, d)| {
                d.last_sent = now;
                d.held.take().map(|(_, view)| (*user, view))
            })
            .collect();
        for (user, view) in due {
            index.emit(user, view);
        }
    }

    /// Users watched here.
    pub fn watched(&self) -> Vec<UserId> {
        self.lock().by_target.keys().copied().collect()
    }

    /// Pairs whose visibility may have changed after an ACL hint about `user` (and `other`):
    /// with `other`, only the pairs between the two; without, every pair involving `user`.
    fn affected(&self, user: UserId, other: Option<UserId>) -> Vec<(u64, UserId, Vec<UserId>)> {
        let index = self.lock();
        let mut affected = Vec::new();
        for (id, watch) in &index.streams {
            let targets: Vec<UserId> = watch
                .targets
                .keys()
                .copied()
                .filter(|target| match other {
                    Some(other) => {
                        (watch.observer == user && *target == other)
                            || (watch.observer == other && *target == user)
                    }
                    None => watch.observer == user || *target == user,
                })
                .collect();
            if !targets.is_empty() {
                affected.push((*id, watch.observer, targets));
            }
        }
        affected
    }

    /// Re-check visibility of the pairs an ACL hint names, and send what changes.
    pub async fn recheck(&self, user: UserId, other: Option<UserId>) -> Result<(), PresenceError> {
        for (id, observer, targets) in self.affected(user, other) {
            let relations = self.tracker.store.relations(observer, &targets).await?;
            self.revise(id, observer, &relations);
        }
        Ok(())
    }

    /// Re-check visibility of every stream (the reconcile's half for lost ACL hints).
    pub async fn recheck_all(&self) -> Result<(), PresenceError> {
        let streams: Vec<(u64, UserId, Vec<UserId>)> = {
            let index = self.lock();
            index
                .streams
                .iter()
                .map(|(id, w)| (*id, w.observer, w.targets.keys().copied().collect()))
                .collect()
        };
        for (id, observer, targets) in streams {
            let relations = self.tracker.store.relations(observer, &targets).await?;
            self.revise(id, observer, &relations);
        }
        Ok(())
    }

    fn revise(&self, id: u64, observer: UserId, relations: &HashMap<UserId, Relation>) {
        let mut index = self.lock();
        let index = &mut *index;
        let Some(watch) = index.streams.get_mut(&id) else {
            return;
        };
        for (target, relation) in relations {
            let Some(slot) = watch.targets.get_mut(target) else {
                continue;
            };
            let Some(shown) = slot.shown else { continue };
            slot.visible = may_see(observer, *target, relation);
            let Some(&(_, view)) = index.views.get(target) else {
                continue;
            };
            let now = Shown::of(slot.visible, view);
            if now != shown {
                slot.shown = Some(now);
                watch.send(now.to_pb(*target));
            }
        }
    }
}

impl Index {
    /// Send `user`'s new view to every watcher whose observed value changes.
    fn emit(&mut self, user: UserId, view: View) {
        let Some(ids) = self.by_target.get(&user) else {
            return;
        };
        // Every watcher who sees a change gets one of two items: built once each, cloned.
        let (mut visible, mut restricted) = (None, None);
        for id in ids {
            let Some(watch) = self.streams.get_mut(id) else {
                continue;
            };
            let Some(slot) = watch.targets.get_mut(&user) else {
                continue;
            };
            let Some(shown) = slot.shown else { continue };
            let now = Shown::of(slot.visible, view);
            if now == shown {
                continue;
            }
            slot.shown = Some(now);
            let item = match now {
                Shown::Visible(_) => &mut visible,
                Shown::Restricted => &mut restricted,
            };
            watch.send(item.get_or_insert_with(|| now.to_pb(user)).clone());
        }
    }
}

impl Watch {
    /// Queue `item` without waiting; a full buffer ends the stream (RESUME).
    fn send(&mut self, item: pb::Presence) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(item).is_err() {
            self.overflowed.store(true, Ordering::Release);
            self.tx = None;
        }
    }
}

/// ONLINE↔AWAY (either way): the changes damping holds back.
fn is_flap(from: Observed, to: Observed) -> bool {
    matches!(
        (from, to),
        (Observed::Online, Observed::Away) | (Observed::Away, Observed::Online)
    )
}
