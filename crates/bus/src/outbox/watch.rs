//! Waking readers of the log when rows may have been appended.
//!
//! Commits through [`Outbox::commit`] in this process bump an in-process signal. On PostgreSQL,
//! [`Outbox::append`] also sends a NOTIFY (delivered at commit, to every process), and one
//! LISTEN task per outbox turns those into a second signal. That task runs while anyone watches
//! and holds one pooled connection; it reconnects with backoff, and it stops when the last
//! watcher is dropped or the pool closes.

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use echo_store::Database;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::Outbox;

/// First pause after a failed LISTEN connection; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between LISTEN connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A waiter for "rows may have been appended" (see [`Outbox::watch_commits`]).
///
/// It never errors: when the LISTEN connection is down it only wakes on local commits, so
/// callers also poll as a fallback. Spurious wakeups happen (e.g. after a reconnect, when
/// notifications may have been missed).
pub struct CommitWatch {
    commits: watch::Receiver<u64>,
    notifications: Option<watch::Receiver<u64>>,
    // Keep both senders alive as long as this watch, so `changed` never sees them closed.
    _commits_sender: Arc<watch::Sender<u64>>,
    _notifications_sender: Arc<Notifications>,
}

impl CommitWatch {
    /// Wait until rows may have been appended since the last call (or since creation).
    pub async fn changed(&mut self) {
        let commits = &mut self.commits;
        let local = async {
            if commits.changed().await.is_err() {
                pending::<()>().await;
            }
        };
        match &mut self.notifications {
            Some(notifications) => {
                let remote = async {
                    if notifications.changed().await.is_err() {
                        pending::<()>().await;
                    }
                };
                tokio::select! {
                    () = local => {}
                    () = remote => {}
                }
            }
            None => local.await,
        }
    }
}

/// The NOTIFY signal of one outbox (shared by its clones) and whether its LISTEN task runs.
#[derive(Default)]
pub(super) struct Notifications {
    sender: watch::Sender<u64>,
    listening: Mutex<bool>,
}

impl Notifications {
    fn bump(&self) {
        self.sender.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver, starting the LISTEN task on `pool` if none runs. Both happen under one lock
    /// with the task's decision to stop, so a new watcher never meets a task on its way out.
    fn subscribe(self: &Arc<Self>, pool: &PgPool, channel: String) -> watch::Receiver<u64> {
        let mut listening = self.listening.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = self.sender.subscribe();
        if !*listening && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            *listening = true;
            runtime.spawn(listen(self.clone(), pool.clone(), channel));
        }
        receiver
    }

    /// Mark the task stopped if nobody watches any more; true when it should stop.
    fn stop_if_unwatched(&self) -> bool {
        let mut listening = self.listening.lock().unwrap_or_else(|e| e.into_inner());
        if self.sender.receiver_count() == 0 {
            *listening = false;
            return true;
        }
        false
    }

    fn stopped(&self) {
        *self.listening.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }
}

impl Outbox {
    /// A waiter for "rows may have been appended": wakes on a commit through
    /// [`Outbox::commit`] in this process and, on PostgreSQL, on the NOTIFY that
    /// [`Outbox::append`] sends (commits in ANY process). Spurious wakeups are fine.
    ///
    /// A NOTIFY says a row committed, not that it is final: a reader may still find it above
    /// the head (an older transaction is open) and must poll until the head passes it.
    pub fn watch_commits(&self) -> CommitWatch {
        let notifications = match (&self.db, self.notify_channel()) {
            (Database::Postgres(db), Some(channel)) => {
                Some(self.notifications.subscribe(&db.pool, channel))
            }
            _ => None,
        };
        CommitWatch {
            commits: self.commits.subscribe(),
            notifications,
            _commits_sender: self.commits.clone(),
            _notifications_sender: self.notifications.clone(),
        }
    }
}

/// The LISTEN task: bump `shared` on every notification until nobody watches or the pool
/// closes, reconnecting with backoff.
async fn listen(shared: Arc<Notifications>, pool: PgPool, channel: String) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if shared.stop_if_unwatched() {
            return;
        }
        match connect(&pool, &channel).await {
            Ok(mut listener) => {
                backoff = MIN_BACKOFF;
                // Commits made while not listening went unheard.
                shared.bump();
                match follow(&shared, &mut listener).await {
                    Followed::Unwatched => return,
                    Followed::PoolClosed => return shared.stopped(),
                    Followed::Failed(error) => {
                        tracing::warn!(%channel, %error, "outbox listen failed; reconnecting");
                    }
                }
            }
            Err(sqlx::Error::PoolClosed) => return shared.stopped(),
            Err(error) => {
                tracing::warn!(%channel, %error, ?backoff, "outbox listen unavailable; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shared.sender.closed() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// How following a LISTEN connection ended.
enum Followed {
    Unwatched,
    PoolClosed,
    Failed(sqlx::Error),
}

async fn follow(shared: &Notifications, listener: &mut PgListener) -> Followed {
    loop {
        tokio::select! {
            () = shared.sender.closed() => {
                if shared.stop_if_unwatched() {
                    return Followed::Unwatched;
                }
            }
            received = listener.try_recv() => match received {
                // `None`: the connection was lost and re-established; notifications in between
                // are gone, so wake watchers to look.
                Ok(_) => shared.bump(),
                Err(sqlx::Error::PoolClosed) => return Followed::PoolClosed,
                Err(error) => return Followed::Failed(error),
            },
        }
    }
}
