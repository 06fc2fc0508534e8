//! The embedded presence state: one map of users and one ordered expiry index behind a mutex,
//! the in-process twin of the Redis layout (a hash per user, one sorted set of due times).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_cache::{Bucket, RateDecision, RateLimit};
use echo_ids::{DeviceId, UserId};
use uuid::Uuid;

use super::{PresenceState, StateError, bucket_ms, duration_ms, from_millis, millis, next_version};
use crate::status::{Activity, DeviceEntry, ManualStatus, Update, UserState};

/// What the expiry index orders: a device entry or a manual status that clears itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Device(UserId, DeviceId),
    Manual(UserId),
}

#[derive(Default)]
struct Inner {
    users: HashMap<UserId, UserState>,
    /// `(due ms, what)`, the sorted set.
    index: BTreeSet<(i64, Due)>,
    /// Heartbeat buckets by device, each with the ms (of the callers' clock) after which it
    /// would be full again and so may go, as the Redis key's PEXPIRE.
    buckets: HashMap<DeviceId, (Bucket, f64)>,
    /// When `buckets` is next cleared of full ones.
    prune_at: f64,
}

/// How often (ms) the heartbeat buckets are cleared of full ones: they live ≤ 2 s each.
const PRUNE_EVERY_MS: f64 = 1_000.0;

/// [`PresenceState`] in process memory (the embedded default: one process, nothing shared).
#[derive(Default)]
pub struct MemoryState {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryState").finish_non_exhaustive()
    }
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind, still consistent enough to
        // serve presence (it is ephemeral): keep going rather than poisoning every call.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `at` to the millisecond, the unit both stores keep (Redis holds integers of ms), so both
/// read back the same instants.
fn whole_ms(at: DateTime<Utc>) -> DateTime<Utc> {
    from_millis(millis(at))
}

/// `manual` with its end to the millisecond.
fn manual_ms(manual: Option<ManualStatus>) -> Option<ManualStatus> {
    manual.map(|m| ManualStatus {
        clears_at: m.clears_at.map(whole_ms),
        ..m
    })
}

impl Inner {
    /// Runs `change` on a seeded user and returns before/after, bumping the version.
    fn write(
        &mut self,
        user: UserId,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut UserState, &mut BTreeSet<(i64, Due)>),
    ) -> Result<Update, StateError> {
        let state = self
            .users
            .get_mut(&user)
            .ok_or(StateError::Unseeded(user))?;
        let before = state.clone();
        change(state, &mut self.index);
        state.version = next_version(state.version, now);
        Ok(Update {
            before,
            after: state.clone(),
        })
    }

    /// Takes one token from `device`'s bucket at `now_ms` (its wait when empty).
    fn take_token(
        &mut self,
        device: DeviceId,
        limit: RateLimit,
        now_ms: f64,
    ) -> Result<(), StateError> {
        if now_ms >= self.prune_at {
            self.buckets.retain(|_, (_, full_at)| *full_at > now_ms);
            self.prune_at = now_ms + PRUNE_EVERY_MS;
        }
        let current = self
            .buckets
            .get(&device)
            .filter(|(_, full_at)| *full_at > now_ms)
            .map(|(bucket, _)| *bucket);
        let outcome = Bucket::take(current, now_ms, limit, 1);
        if let RateDecision::Limited { retry_after } = outcome.decision {
            return Err(StateError::Limited(retry_after));
        }
        if let Some(bucket) = outcome.store {
            let full_at = now_ms + outcome.ttl_ms as f64;
            self.buckets.insert(device, (bucket, full_at));
        }
        Ok(())
    }

    /// Refreshes `device` of a seeded `user` (refresh and heartbeat).
    fn refresh(
        &mut self,
        (user, device): (UserId, DeviceId),
        activity: Option<Activity>,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError> {
        let expires = millis(now) + duration_ms(ttl);
        let old = self.users.get(&user).and_then(|s| {
            s.devices
                .iter()
                .find(|d| d.device_id == device)
                .map(|d| millis(d.expires_at))
        });
        let update = self.write(user, now, |state, _| {
            let entry = DeviceEntry {
                device_id: device,
                activity: Activity::Online,
                expires_at: from_millis(expires),
            };
            match state.devices.iter_mut().find(|d| d.device_id == device) {
                Some(existing) => {
                    existing.expires_at = entry.expires_at;
                    existing.activity = activity.unwrap_or(existing.activity);
                }
                None => state.devices.push(DeviceEntry {
                    activity: activity.unwrap_or(Activity::Online),
                    ..entry
                }),
            }
            state.devices.sort_by_key(|d| d.device_id);
            if !state.invisible() {
                state.last_seen = Some(whole_ms(now));
            }
        })?;
        self.set_device_expiry(user, device, old, expires);
        Ok(update)
    }

    fn set_device_expiry(&mut self, user: UserId, device: DeviceId, old: Option<i64>, new: i64) {
        if let Some(old) = old {
            self.index.remove(&(old, Due::Device(user, device)));
        }
        self.index.insert((new, Due::Device(user, device)));
    }
}

#[async_trait]
impl PresenceState for MemoryState {
    async fn refresh(
        &self,
        user: UserId,
        device: DeviceId,
        activity: Option<Activity>,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError> {
        self.lock().refresh((user, device), activity, ttl, now)
    }

    async fn heartbeat(
        &self,
        user: UserId,
        device: DeviceId,
        activity: Activity,
        ttl: Duration,
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError> {
        let mut inner = self.lock();
        if !inner.users.contains_key(&user) {
            return Err(StateError::Unseeded(user));
        }
        inner.take_token(device, limit, bucket_ms(now))?;
        inner.refresh((user, device), Some(activity), ttl, now)
    }

    async fn expire_within(
        &self,
        user: UserId,
        device: DeviceId,
        within: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut inner = self.lock();
        let latest = millis(now) + duration_ms(within);
        let Some(entry) = inner
            .users
            .get_mut(&user)
            .and_then(|s| s.devices.iter_mut().find(|d| d.device_id == device))
        else {
            return Ok(());
        };
        let old = millis(entry.expires_at);
        if old > latest {
            entry.expires_at = from_millis(latest);
            inner.set_device_expiry(user, device, Some(old), latest);
        }
        Ok(())
    }

    async fn remove_device(
        &self,
        user: UserId,
        device: DeviceId,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError> {
        let mut inner = self.lock();
        let Some(state) = inner.users.get(&user) else {
            // Nothing to remove from a user this store knows nothing of.
            let empty = UserState::empty(user);
            return Ok(Update {
                before: empty.clone(),
                after: empty,
            });
        };
        let old = state
            .devices
            .iter()
            .find(|d| d.device_id == device)
            .map(|d| millis(d.expires_at));
        if let Some(old) = old {
            inner.index.remove(&(old, Due::Device(user, device)));
        }
        inner.write(user, now, |state, _| {
            state.devices.retain(|d| d.device_id != device);
        })
    }

    async fn set_manual(
        &self,
        user: UserId,
        manual: Option<ManualStatus>,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError> {
        let manual = manual_ms(manual);
        let mut inner = self.lock();
        inner.write(user, now, |state, index| {
            if let Some(clears) = state.manual.and_then(|m| m.clears_at) {
                index.remove(&(millis(clears), Due::Manual(user)));
            }
            if let Some(clears) = manual.and_then(|m| m.clears_at) {
                index.insert((millis(clears), Due::Manual(user)));
            }
            state.manual = manual;
        })
    }

    async fn read(&self, users: &[UserId]) -> Result<Vec<Option<UserState>>, StateError> {
        let inner = self.lock();
        Ok(users.iter().map(|u| inner.users.get(u).cloned()).collect())
    }

    async fn seed(
        &self,
        user: UserId,
        manual: Option<ManualStatus>,
        last_seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut inner = self.lock();
        if inner.users.contains_key(&user) {
            return Ok(());
        }
        // A status whose end has passed is no status (nothing swept it while unseeded).
        let manual = manual_ms(manual.filter(|m| m.clears_at.is_none_or(|at| at > now)));
        if let Some(clears) = manual.and_then(|m| m.clears_at) {
            inner.index.insert((millis(clears), Due::Manual(user)));
        }
        inner.users.insert(
            user,
            UserState {
                user_id: user,
                devices: Vec::new(),
                manual,
                last_seen: last_seen.map(whole_ms),
                version: next_version(0, now),
            },
        );
        Ok(())
    }

    async fn sweep(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Update>, StateError> {
        let mut inner = self.lock();
        let due: Vec<(i64, Due)> = inner
            .index
            .range(..=(millis(now), Due::Manual(Uuid::max().into())))
            .take(limit)
            .copied()
            .collect();
        let mut updates: Vec<Update> = Vec::new();
        for entry in due {
            inner.index.remove(&entry);
            let (user, change): (UserId, Box<dyn FnOnce(&mut UserState)>) = match entry.1 {
                Due::Device(user, device) => (
                    user,
                    Box::new(move |s| s.devices.retain(|d| d.device_id != device)),
                ),
                Due::Manual(user) => (user, Box::new(|s| s.manual = None)),
            };
            let Ok(update) = inner.write(user, now, |state, _| change(state)) else {
                continue;
            };
            match updates.iter_mut().find(|u| u.after.user_id == user) {
                Some(merged) => merged.after = update.after,
                None => updates.push(update),
            }
        }
        Ok(updates)
    }

    async fn extend_until(&self, until: DateTime<Utc>, limit: usize) -> Result<usize, StateError> {
        let mut inner = self.lock();
        let until_ms = millis(until);
        let early: Vec<(i64, Due)> = inner
            .index
            .range(..(until_ms, Due::Device(UserId::nil(), DeviceId::nil())))
            .filter(|(_, due)| matches!(due, Due::Device(..)))
            .take(limit)
            .copied()
            .collect();
        for (at, due) in &early {
            let Due::Device(user, device) = *due else {
                continue;
            };
            inner.index.remove(&(*at, *due));
            inner.index.insert((until_ms, *due));
            if let Some(entry) = inner
                .users
                .get_mut(&user)
                .and_then(|s| s.devices.iter_mut().find(|d| d.device_id == device))
            {
                entry.expires_at = from_millis(until_ms);
            }
        }
        Ok(early.len())
    }

    async fn forget(&self, user: UserId) -> Result<(), StateError> {
        let mut inner = self.lock();
        inner.index.retain(|(_, due)| match due {
            Due::Device(u, _) | Due::Manual(u) => *u != user,
        });
        inner.users.remove(&user);
        Ok(())
    }
}
