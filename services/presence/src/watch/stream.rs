//! One WatchPresence response stream: the snapshot, then changes; a heartbeat when idle; ends
//! with RESUME when it fell behind and SESSION_REVOKED (within a second) when its session
//! ends. Shutdown is the serving layer's (SHUTTING_DOWN for every stream).
//!
//! Streams per user are capped across instances with leases in the cache: slot keys
//! `presence:watch:<user>:<n>` taken with SET NX and a TTL, refreshed while the stream lives,
//! so a crashed instance's leases lapse by themselves.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use echo_authn::Caller;
use echo_cache::Cache;
use echo_ids::UserId;
use echo_proto::echo::presence::v1 as pb;
use pb::watch_presence_response::Event;
use tokio::time::{Instant, Sleep};
use tonic::Status;
use uuid::Uuid;

use super::{Opened, Watchers};
use crate::error::{self, PresenceError};

/// How long a lease lives without a refresh.
const LEASE_TTL: Duration = Duration::from_secs(60);
/// How often a live stream refreshes its lease.
const LEASE_REFRESH: Duration = Duration::from_secs(20);

/// A held stream slot.
pub struct Lease {
    cache: Arc<dyn Cache>,
    key: String,
}

impl Lease {
    /// Take one of `max` slots of `user`, or refuse with LIMIT_EXCEEDED.
    pub async fn take(
        cache: Arc<dyn Cache>,
        user: UserId,
        max: usize,
    ) -> Result<Lease, PresenceError> {
        let holder = Uuid::now_v7();
        for slot in 0..max {
            let key = format!("presence:watch:{user}:{slot}");
            if cache
                .set_if_absent(&key, holder.as_bytes(), LEASE_TTL)
                .await?
            {
                return Ok(Lease { cache, key });
            }
        }
        Err(PresenceError::TooManyStreams(max))
    }

    async fn refresh(&self) {
        if let Err(error) = self.cache.set(&self.key, b"1", LEASE_TTL).await {
            tracing::debug!(%error, "watch lease not refreshed; it lapses unless the next refresh lands");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let cache = self.cache.clone();
        let key = std::mem::take(&mut self.key);
        tokio::spawn(async move {
            // If this fails the lease lapses after its TTL.
            let _ = cache.delete(&key).await;
        });
    }
}

/// Removes the stream from the index when it ends, however it ends.
struct Registered {
    watchers: Watchers,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.watchers.close(self.id);
    }
}

type Signal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the stream needs beside the watch.
pub struct StreamParts {
    /// The caller (its session ends the stream when revoked).
    pub caller: Caller,
    /// Fires when the caller's session is revoked.
    pub revoked: Signal,
    /// The stream's lease.
    pub lease: Lease,
}

struct State {
    registered: Registered,
    opened: Opened,
    snapshot: VecDeque<pb::Presence>,
    parts: StreamParts,
    heartbeat_every: Duration,
    /// Fires at the latest `heartbeat_every` after the last item; an item does not move it
    /// (re-arming a timer per item cost the timer wheel's lock per delivery): when it fires
    /// early it is re-armed from the last item.
    idle: Pin<Box<Sleep>>,
    last_item: Instant,
    lease_refresh: tokio::time::Interval,
    done: bool,
}

/// The response stream tonic sends.
pub type WatchStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::WatchPresenceResponse, Status>> + Send>>;

/// Turn an opened watch into its response stream.
pub fn respond(watchers: Watchers, mut opened: Opened, parts: StreamParts) -> WatchStream {
    let heartbeat_every = watchers.tracker.settings.watch_heartbeat;
    let snapshot = std::mem::take(&mut opened.snapshot).into();
    let mut lease_refresh = tokio::time::interval(LEASE_REFRESH);
    lease_refresh.reset();
    let state = State {
        registered: Registered {
            id: opened.id,
            watchers,
        },
        opened,
        snapshot,
        parts,
        heartbeat_every,
        idle: Box::pin(tokio::time::sleep(heartbeat_every)),
        last_item: Instant::now(),
        lease_refresh,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    }))
}

impl State {
    async fn next(&mut self) -> Option<Result<pb::WatchPresenceResponse, Status>> {
        if self.done {
            return None;
        }
        if let Some(presence) = self.snapshot.pop_front() {
            return Some(Ok(self.item(Event::Presence(presence))));
        }
        loop {
            tokio::select! {
                biased;
                () = &mut self.parts.revoked => {
                    self.done = true;
                    let tracker = self.registered.watchers.tracker.clone();
                    let caller = self.parts.caller;
                    tokio::spawn(async move {
                        if let Err(error) = tracker.remove_device(caller.user_id, caller.device_id).await {
                            tracing::debug!(%error, "revoked device's presence left to expire");
                        }
                    });
                    return Some(Err(error::revoked()));
                }
                change = self.opened.changes.recv() => {
                    return match change {
                        Some(presence) => Some(Ok(self.item(Event::Presence(presence)))),
                        None => {
                            self.done = true;
                            if self.opened.overflowed.load(Ordering::Acquire) {
                                metrics::counter!("echo_presence_watch_resumes_total").increment(1);
                                Some(Err(error::resume()))
                            } else {
                                None
                            }
                        }
                    };
                }
                () = &mut self.idle => {
                    let due = self.last_item + self.heartbeat_every;
                    if due > Instant::now() {
                        self.idle.as_mut().reset(due);
                        continue;
                    }
                    let heartbeat = pb::StreamHeartbeat {
                        server_time: Some(SystemTime::now().into()),
                        interval: prost_types::Duration::try_from(self.heartbeat_every).ok(),
                    };
                    return Some(Ok(self.item(Event::Heartbeat(heartbeat))));
                }
                _ = self.lease_refresh.tick() => self.parts.lease.refresh().await,
            }
        }
    }

    fn item(&mut self, event: Event) -> pb::WatchPresenceResponse {
        self.last_item = Instant::now();
        if matches!(event, Event::Heartbeat(_)) {
            self.idle
                .as_mut()
                .reset(self.last_item + self.heartbeat_every);
        }
        pb::WatchPresenceResponse { event: Some(event) }
    }
}
