//! Session revocation that takes effect within a second everywhere (DESIGN §5, §7.7, §8).
//!
//! Each process keeps a LOCAL set of revoked session ids, fed by cache pub/sub, so checking a
//! request costs no cache round trip. A session this process has never seen is looked up once
//! in the cache (a process started after a revocation must still honour it) and then
//! remembered; pub/sub keeps that answer current. Entries expire after the longest
//! access-token lifetime, when every token of the session is dead anyway, so memory stays
//! bounded by the sessions active in that window.
//!
//! Fail closed: while the feed is down (pub/sub cannot subscribe or the cache does not answer
//! pings) messages are lost, so after a grace [`Revocations::is_revoked`] answers
//! [`Decision::Unavailable`]. Within the grace it answers from what it knows (a session whose
//! first lookup fails then is let through without being remembered). When the feed comes
//! back, the remembered "not revoked" answers are dropped and looked up again, since a
//! revocation published during the gap never arrived.
//!
//! One piece: `State` (revoked, known, outage start) and the `follow` task that moves it between
//! live and outage keep one promise together, that no "not revoked" answer outlives a gap in the
//! feed (`remember_known` refuses during an outage, `mark_live` forgets `known`); split, the
//! lookups and the feed could each look right alone and fail open together.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use echo_cache::{Cache, CacheError};
use echo_ids::SessionId;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::AuthnError;

/// The cache channel revocations are announced on (payload: the session id).
pub const CHANNEL: &str = "auth.revocations";

/// The cache key that records a revocation for processes that were not listening.
fn key(session: SessionId) -> String {
    format!("auth.revoked.{session}")
}

/// What [`Revocations::is_revoked`] knows about a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not revoked: let the request through.
    Allowed,
    /// Revoked: answer UNAUTHENTICATED / SESSION_REVOKED.
    Revoked,
    /// Cannot tell (the cache has been unreachable for longer than the grace): answer
    /// UNAVAILABLE / DEPENDENCY_UNAVAILABLE so the client retries.
    Unavailable,
}

/// Tuning for [`Revocations`].
#[derive(Debug, Clone)]
pub struct RevocationOptions {
    /// How long the feed may be down before checks fail closed.
    pub grace: Duration,
    /// How long an entry (revoked or known-good) is kept: at least the longest access-token
    /// lifetime, after which no token of the session can pass verification anyway.
    pub remember_for: Duration,
    /// How often the cache is pinged (and the subscription re-established after a failure).
    pub check_every: Duration,
}

impl Default for RevocationOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(5),
            remember_for: Duration::from_secs(15 * 60),
            check_every: Duration::from_millis(500),
        }
    }
}

/// The process-local view of revoked sessions. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state();
        f.debug_struct("Revocations")
            .field("revoked", &state.revoked.len())
            .field("known", &state.known.len())
            .field("outage_since", &state.outage_since)
            .finish()
    }
}

struct Inner {
    cache: Arc<dyn Cache>,
    options: RevocationOptions,
    state: Mutex<State>,
    /// Bumped whenever the revoked set grows, waking [`Revocations::revoked_signal`]s.
    changed: watch::Sender<()>,
    /// Counts the feed's returns after an outage (see [`Revocations::feed_returns`]).
    returns: watch::Sender<u64>,
}

struct State {
    /// Revoked sessions → when to forget them.
    revoked: HashMap<SessionId, Instant>,
    /// Sessions looked up and found not revoked → when to look them up again.
    known: HashMap<SessionId, Instant>,
    /// When the feed went down; `None` while it is live. Starts down until `start` connects.
    outage_since: Option<Instant>,
}

impl Revocations {
    /// Revocations on `cache` with [`RevocationOptions::default`]. Call [`Revocations::start`].
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self::with_options(cache, RevocationOptions::default())
    }

    /// Revocations on `cache` with explicit tuning. Call [`Revocations::start`].
    pub fn with_options(cache: Arc<dyn Cache>, options: RevocationOptions) -> Self {
        let state = State {
            revoked: HashMap::new(),
            known: HashMap::new(),
            outage_since: Some(Instant::now()),
        };
        Self {
            inner: Arc::new(Inner {
                cache,
                options,
                state: Mutex::new(state),
                changed: watch::channel(()).0,
                returns: watch::channel(0).0,
            }),
        }
    }

    /// Subscribes to the feed (one attempt, so revocations published after this returns are
    /// seen if the cache is up) and spawns the task that follows it, pings the cache, retries
    /// the subscription and sweeps expired entries until `shutdown`. Without it every check
    /// fails closed once the grace has passed.
    pub async fn start(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let inner = Arc::clone(&self.inner);
        let feed = inner.subscribe().await;
        if feed.is_some() && inner.cache.ping().await.is_ok() {
            inner.mark_live();
        }
        tokio::spawn(follow(inner, feed, shutdown))
    }

    /// Revokes `session` here at once and everywhere else within a second: recorded in the
    /// cache for `ttl` (at least the access-token lifetime) for processes that start later,
    /// and announced on the channel. An error means other processes may not know yet; the
    /// caller should fail the request so the client retries (revoking again is harmless).
    pub async fn revoke(&self, session: SessionId, ttl: Duration) -> Result<(), AuthnError> {
        self.inner.insert_revoked(session, ttl);
        self.inner.cache.set(&key(session), b"1", ttl).await?;
        self.inner
            .cache
            .publish(CHANNEL, session.to_string().as_bytes())
            .await?;
        Ok(())
    }

    /// Whether requests of `session` may pass. No cache round trip, except once per session
    /// this process has not seen within [`RevocationOptions::remember_for`] (concurrent first
    /// requests of one session may each look it up).
    pub async fn is_revoked(&self, session: SessionId) -> Decision {
        if let Some(decision) = self.inner.local_decision(session) {
            return decision;
        }
        match self.inner.cache.get(&key(session)).await {
            Ok(Some(_)) => {
                self.inner
                    .insert_revoked(session, self.inner.options.remember_for);
                Decision::Revoked
            }
            Ok(None) => {
                self.inner.remember_known(session);
                Decision::Allowed
            }
            Err(err) => {
                tracing::warn!(%err, %session, "revocation lookup failed");
                self.inner.mark_outage();
                self.inner.outage_decision()
            }
        }
    }

    /// Changes each time the feed comes back after an outage (the first connection included).
    /// The cache may have come back empty — a restarted Redis keeps nothing — and with it
    /// every revocation recorded for processes that start later: whoever holds the durable
    /// record (the auth service) announces again what may still matter.
    pub fn feed_returns(&self) -> watch::Receiver<u64> {
        self.inner.returns.subscribe()
    }

    /// Completes once `session` is revoked (as seen by this process), so an open stream can
    /// `select!` on it and end within a second of a revocation anywhere (DESIGN §7.7).
    pub fn revoked_signal(&self, session: SessionId) -> impl Future<Output = ()> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        let mut changes = inner.changed.subscribe();
        async move {
            loop {
                if inner.locally_revoked(session) {
                    return;
                }
                // The sender lives in `inner`, which this future holds: never closed.
                if changes.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every await-free step, so a panic elsewhere while
        // holding the lock leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer from local state, or `None` when the session needs a first-sight lookup.
    fn local_decision(&self, session: SessionId) -> Option<Decision> {
        let now = Instant::now();
        let state = self.state();
        if state
            .revoked
            .get(&session)
            .is_some_and(|until| *until > now)
        {
            return Some(Decision::Revoked);
        }
        if let Some(since) = state.outage_since
            && now.duration_since(since) > self.options.grace
        {
            return Some(Decision::Unavailable);
        }
        if state.known.get(&session).is_some_and(|until| *until > now) {
            return Some(Decision::Allowed);
        }
        None
    }

    fn outage_decision(&self) -> Decision {
        let state = self.state();
        match state.outage_since {
            Some(since) if since.elapsed() > self.options.grace => Decision::Unavailable,
            _ => Decision::Allowed,
        }
    }

    fn locally_revoked(&self, session: SessionId) -> bool {
        let now = Instant::now();
        self.state()
            .revoked
            .get(&session)
            .is_some_and(|until| *until > now)
    }

    fn insert_revoked(&self, session: SessionId, ttl: Duration) {
        let until = Instant::now() + ttl;
        {
            let mut state = self.state();
            state.known.remove(&session);
            let entry = state.revoked.entry(session).or_insert(until);
            *entry = (*entry).max(until);
        }
        self.changed.send_replace(());
    }

    /// Remembers a "not revoked" lookup, but only while the feed is live: otherwise a
    /// revocation could be missed for the whole `remember_for`.
    fn remember_known(&self, session: SessionId) {
        let mut state = self.state();
        if state.outage_since.is_none() && !state.revoked.contains_key(&session) {
            state
                .known
                .insert(session, Instant::now() + self.options.remember_for);
        }
    }

    fn mark_outage(&self) {
        let mut state = self.state();
        if state.outage_since.is_none() {
            tracing::warn!(grace = ?self.options.grace, "revocation feed down; checks fail closed after the grace");
            state.outage_since = Some(Instant::now());
        }
    }

    fn mark_live(&self) {
        let mut state = self.state();
        if let Some(since) = state.outage_since.take() {
            // Announcements made during the gap are lost: look every session up again.
            state.known.clear();
            tracing::info!(down_for = ?since.elapsed(), "revocation feed live");
            self.returns.send_modify(|returns| *returns += 1);
        }
    }

    fn sweep(&self) {
        let now = Instant::now();
        let mut state = self.state();
        state.revoked.retain(|_, until| *until > now);
        state.known.retain(|_, until| *until > now);
    }

    fn on_message(&self, payload: &[u8]) {
        match std::str::from_utf8(payload)
            .ok()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(SessionId::from)
        {
            Some(session) => self.insert_revoked(session, self.options.remember_for),
            None => tracing::warn!(?payload, "ignoring a malformed revocation announcement"),
        }
    }

    async fn subscribe(&self) -> Option<BoxStream<'static, Vec<u8>>> {
        match self.cache.subscribe(CHANNEL).await {
            Ok(feed) => Some(feed),
            Err(err) => {
                log_cache_error(&err, "cannot subscribe to revocations");
                self.mark_outage();
                None
            }
        }
    }
}

fn log_cache_error(err: &CacheError, what: &str) {
    if err.is_unavailable() {
        tracing::debug!(%err, "{what}");
    } else {
        tracing::error!(%err, "{what}");
    }
}

/// The background task of [`Revocations::start`].
async fn follow(
    inner: Arc<Inner>,
    mut feed: Option<BoxStream<'static, Vec<u8>>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(inner.options.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            message = next(&mut feed) => match message {
                Some(payload) => inner.on_message(&payload),
                None => {
                    tracing::warn!("revocation subscription ended; resubscribing");
                    feed = None;
                    inner.mark_outage();
                }
            },
            _ = tick.tick() => {
                inner.sweep();
                if feed.is_none() {
                    feed = inner.subscribe().await;
                }
                match inner.cache.ping().await {
                    Ok(()) if feed.is_some() => inner.mark_live(),
                    Ok(()) => {}
                    Err(err) => {
                        log_cache_error(&err, "revocation feed: cache ping failed");
                        inner.mark_outage();
                    }
                }
            }
        }
    }
}

/// The next announcement, or never while there is no subscription.
async fn next(feed: &mut Option<BoxStream<'static, Vec<u8>>>) -> Option<Vec<u8>> {
    match feed {
        Some(feed) => feed.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Revocations {
        Revocations::new(Arc::new(echo_cache::MemoryCache::new("t")))
    }

    #[tokio::test]
    async fn entries_expire_so_memory_stays_bounded() {
        let revocations = memory();
        let _task = revocations.start(CancellationToken::new()).await;
        let session = SessionId::new_v7();
        revocations
            .inner
            .insert_revoked(session, Duration::from_millis(10));
        assert_eq!(revocations.is_revoked(session).await, Decision::Revoked);
        tokio::time::sleep(Duration::from_millis(20)).await;
        revocations.inner.sweep();
        assert!(revocations.inner.state().revoked.is_empty());
    }

    #[tokio::test]
    async fn without_start_checks_fail_closed_after_the_grace() {
        let cache = Arc::new(echo_cache::MemoryCache::new("t"));
        let options = RevocationOptions {
            grace: Duration::from_millis(50),
            ..RevocationOptions::default()
        };
        let revocations = Revocations::with_options(cache, options);
        assert_eq!(
            revocations.is_revoked(SessionId::new_v7()).await,
            Decision::Allowed
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            revocations.is_revoked(SessionId::new_v7()).await,
            Decision::Unavailable
        );
    }

    #[tokio::test]
    async fn a_recovered_feed_forgets_known_sessions() {
        let revocations = memory();
        let _task = revocations.start(CancellationToken::new()).await;
        let session = SessionId::new_v7();
        assert_eq!(revocations.is_revoked(session).await, Decision::Allowed);
        assert_eq!(revocations.inner.state().known.len(), 1);
        revocations.inner.mark_outage();
        revocations.inner.mark_live();
        assert!(revocations.inner.state().known.is_empty());
    }
}
