//! The instance's one subscription to presence hints (and one to visibility hints), the
//! damping clock, and the reconcile (spec §A4): every `reconcile_every`, and at once after the
//! bus comes back, re-read every watched user and re-check every watcher's visibility.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Watchers;
use crate::hints::{self, ACL, Changed, PRESENCE};

/// How often held (damped) changes are checked.
const RELEASE_EVERY: Duration = Duration::from_millis(100);
/// Users read per reconcile call.
const RECONCILE_CHUNK: usize = 1000;

type Hints = BoxStream<'static, (String, bytes::Bytes)>;

/// Run until `shutdown`. Hints are applied in this loop alone; the database work (the
/// reconcile, visibility re-checks) runs in tasks of its own, so a reconcile over thousands of
/// streams never holds up a hint.
pub async fn listen(watchers: Watchers, shutdown: CancellationToken) {
    let bus = watchers.tracker.hints.bus().clone();
    let mut release = tokio::time::interval(RELEASE_EVERY);
    let reconcile_now = Arc::new(Notify::new());
    tokio::spawn(reconciler(
        watchers.clone(),
        reconcile_now.clone(),
        shutdown.clone(),
    ));
    let mut connected = bus.is_connected();
    loop {
        let Some((mut changes, mut acls)) = subscribe(&watchers).await else {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => continue,
            }
        };
        // Whatever was published while nobody here listened is lost: heal it now.
        reconcile_now.notify_one();
        loop {
            let now_connected = bus.is_connected();
            if now_connected && !connected {
                reconcile_now.notify_one();
            }
            connected = now_connected;
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = release.tick() => watchers.release_held(),
                change = changes.next() => match change {
                    Some((_, payload)) => {
                        if let Some(changed) = hints::decode_changed(&payload) {
                            watchers.apply(changed);
                        }
                    }
                    None => break,
                },
                acl = acls.next() => match acl {
                    Some((_, payload)) => {
                        if let Some((user, other)) = hints::decode_acl(&payload) {
                            let watchers = watchers.clone();
                            tokio::spawn(async move {
                                if let Err(error) = watchers.recheck(user, other).await {
                                    tracing::warn!(%error, %user, "visibility not re-checked; the reconcile will");
                                }
                            });
                        }
                    }
                    None => break,
                },
            }
        }
    }
}

/// Reconcile every `reconcile_every`, and at once when `now` is notified (a new subscription,
/// a bus reconnect).
async fn reconciler(watchers: Watchers, now: Arc<Notify>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(watchers.tracker.settings.reconcile_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
            () = now.notified() => every.reset(),
        }
        if let Err(error) = run_reconcile(&watchers).await {
            tracing::warn!(%error, "presence reconcile failed; the next one heals it");
        }
    }
}

async fn subscribe(watchers: &Watchers) -> Option<(Hints, Hints)> {
    let bus = watchers.tracker.hints.bus();
    let changes = bus.subscribe_ephemeral(&format!("{PRESENCE}>")).await;
    let acls = bus.subscribe_ephemeral(&format!("{ACL}>")).await;
    match (changes, acls) {
        (Ok(changes), Ok(acls)) => Some((changes, acls)),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "no presence hints until the bus is back; the reconcile covers");
            None
        }
    }
}

/// Re-read every watched user and apply what is newer; then re-check visibility.
pub async fn run_reconcile(watchers: &Watchers) -> Result<(), crate::error::PresenceError> {
    let watched = watchers.watched();
    for chunk in watched.chunks(RECONCILE_CHUNK) {
        for state in watchers.tracker.read(chunk).await? {
            watchers.apply(Changed {
                user: state.user_id,
                view: state.view(),
                version: state.version,
            });
        }
    }
    watchers.recheck_all().await
}
