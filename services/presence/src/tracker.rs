//! The presence operations every entry point shares (the RPCs, the stream signals, the
//! sweeper, the auth events): write the state, seed it from the database when a flushed
//! store forgot a user, publish a hint when what observers see changed, and persist
//! `last_seen` when a user goes offline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use echo_cache::RateLimit;
use echo_config::PresenceSettings;
use echo_ids::{DeviceId, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::PresenceError;
use crate::hints::{Changed, Hints};
use crate::state::{PresenceState, StateError};
use crate::status::{Activity, ManualStatus, Observed, Update, UserState};
use crate::store::PresenceStore;

/// `last_seen` writes waiting for the next batch; past this, a write waits for room.
const PERSIST_QUEUE: usize = 10_000;
/// How often queued `last_seen` times are written (spec §A1: batched ≤ 1 s).
const PERSIST_EVERY: Duration = Duration::from_millis(500);

/// Shared presence operations of one instance.
#[derive(Clone)]
pub struct Tracker {
    /// Device entries.
    pub state: Arc<dyn PresenceState>,
    /// The database.
    pub store: PresenceStore,
    /// Hint publisher.
    pub hints: Hints,
    /// Settings.
    pub settings: Arc<PresenceSettings>,
    persist: mpsc::Sender<(UserId, DateTime<Utc>)>,
}

impl Tracker {
    /// A tracker; its `last_seen` writer runs until `shutdown` (then flushes what is queued).
    pub fn start(
        state: Arc<dyn PresenceState>,
        store: PresenceStore,
        hints: Hints,
        settings: PresenceSettings,
        shutdown: CancellationToken,
    ) -> Self {
        let (persist, queue) = mpsc::channel(PERSIST_QUEUE);
        tokio::spawn(write_last_seen(store.clone(), queue, shutdown));
        Self {
            state,
            store,
            hints,
            settings: Arc::new(settings),
            persist,
        }
    }

    /// Runs a state write, seeding the user from the database first when the state store has
    /// forgotten them (so a flush never turns INVISIBLE into ONLINE), then publishes.
    async fn write<F, Fut>(&self, user: UserId, write: F) -> Result<Update, PresenceError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Update, StateError>>,
    {
        let update = match write().await {
            Err(StateError::Unseeded(_)) => {
                self.seed(&[user]).await?;
                write().await?
            }
            other => other?,
        };
        self.publish(&update).await;
        Ok(update)
    }

    /// Seeds `users` from their persisted status.
    async fn seed(&self, users: &[UserId]) -> Result<(), PresenceError> {
        let persisted = self.store.load(users).await?;
        let now = Utc::now();
        for user in users {
            let saved = persisted.get(user).copied().unwrap_or_default();
            self.state
                .seed(*user, saved.manual, saved.last_seen, now)
                .await?;
        }
        Ok(())
    }

    /// Announces `update` if observers see a change, and records `last_seen` when the user
    /// went offline (or invisible).
    pub async fn publish(&self, update: &Update) {
        if !update.changed() {
            return;
        }
        let view = update.after.view();
        if view.status == Observed::Offline
            && let Some(seen) = update.after.last_seen
        {
            // Full queue: drop rather than stall (the next offline move writes it again, and
            // the state store still has it).
            let _ = self.persist.try_send((update.after.user_id, seen));
        }
        self.hints
            .changed(Changed {
                user: update.after.user_id,
                view,
                version: update.after.version,
            })
            .await;
    }

    /// Refreshes a device (Heartbeat: with its activity; an open stream: `None`, keeping it).
    pub async fn refresh(
        &self,
        user: UserId,
        device: DeviceId,
        activity: Option<Activity>,
    ) -> Result<Update, PresenceError> {
        let ttl = self.settings.ttl;
        self.write(user, || {
            self.state.refresh(user, device, activity, ttl, Utc::now())
        })
        .await
    }

    /// A Heartbeat of `device` with its `activity`, behind the device's rate `limit` (checked
    /// and taken by the state store in the same step as the refresh). A refused heartbeat
    /// writes nothing: [`PresenceError::RateLimited`].
    pub async fn heartbeat(
        &self,
        user: UserId,
        device: DeviceId,
        activity: Activity,
        limit: RateLimit,
    ) -> Result<Update, PresenceError> {
        let ttl = self.settings.ttl;
        self.write(user, || {
            self.state
                .heartbeat(user, device, activity, ttl, limit, Utc::now())
        })
        .await
        .map_err(|error| match error {
            PresenceError::State(StateError::Limited(wait)) => PresenceError::RateLimited(wait),
            other => other,
        })
    }

    /// Sets (or clears) the manual status: the database first, so it survives the state store.
    pub async fn set_manual(
        &self,
        user: UserId,
        manual: Option<ManualStatus>,
    ) -> Result<Update, PresenceError> {
        self.store.save_manual(user, manual).await?;
        self.write(user, || self.state.set_manual(user, manual, Utc::now()))
            .await
    }

    /// Removes a device at once (its session ended).
    pub async fn remove_device(&self, user: UserId, device: DeviceId) -> Result<(), PresenceError> {
        let update = self.state.remove_device(user, device, Utc::now()).await?;
        self.publish(&update).await;
        Ok(())
    }

    /// The current state of each of `users`, in order. A user the state store does not know
    /// has no live device; their manual status and `last_seen` come from the database. Reads
    /// never seed, so reading unknown ids (anyone may ask for any id) writes nothing.
    pub async fn read(&self, users: &[UserId]) -> Result<Vec<UserState>, PresenceError> {
        let states = self.state.read(users).await?;
        let unseeded: Vec<UserId> = users
            .iter()
            .zip(&states)
            .filter(|(_, state)| state.is_none())
            .map(|(user, _)| *user)
            .collect();
        let persisted = self.store.load(&unseeded).await?;
        let now = Utc::now();
        Ok(users
            .iter()
            .zip(states)
            .map(|(user, state)| {
                state.unwrap_or_else(|| {
                    let saved = persisted.get(user).copied().unwrap_or_default();
                    UserState {
                        user_id: *user,
                        devices: Vec::new(),
                        manual: saved
                            .manual
                            .filter(|m| m.clears_at.is_none_or(|at| at > now)),
                        last_seen: saved.last_seen,
                        version: 0,
                    }
                })
            })
            .collect())
    }
}

/// Writes queued `last_seen` times in batches until `shutdown`, then the rest.
async fn write_last_seen(
    store: PresenceStore,
    mut queue: mpsc::Receiver<(UserId, DateTime<Utc>)>,
    shutdown: CancellationToken,
) {
    let mut batch: HashMap<UserId, DateTime<Utc>> = HashMap::new();
    let mut tick = tokio::time::interval(PERSIST_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => flush(&store, &mut batch).await,
            item = queue.recv() => match item {
                Some((user, at)) => {
                    let entry = batch.entry(user).or_insert(at);
                    *entry = (*entry).max(at);
                }
                None => break,
            },
        }
    }
    while let Ok((user, at)) = queue.try_recv() {
        batch.insert(user, at);
    }
    flush(&store, &mut batch).await;
}

async fn flush(store: &PresenceStore, batch: &mut HashMap<UserId, DateTime<Utc>>) {
    if batch.is_empty() {
        return;
    }
    let seen: Vec<(UserId, DateTime<Utc>)> = batch.drain().collect();
    if let Err(error) = store.save_last_seen(&seen).await {
        // The state store still has them; the next offline move writes them again.
        tracing::warn!(%error, users = seen.len(), "last_seen not persisted");
    }
}
