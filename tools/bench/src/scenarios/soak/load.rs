//! What the soak's clients do: a send (and every fourth a page of history), a heartbeat of
//! every user every 5 s, a refresh of every user's tokens every 10 minutes; counted in
//! [`Shared`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::check::Acked;
use crate::client::live::stamp;
use crate::client::presence::{heartbeat, presence_client};
use crate::client::users::{self, User};
use crate::client::{MessageClient, failure_label, send_text};
use crate::scenarios::Failures;
use crate::stats::Latencies;

/// How often every user's tokens are refreshed: well inside the access token's 15 minutes.
const REFRESH_EVERY: Duration = Duration::from_secs(600);

/// What the clients saw, for the report.
pub(super) struct Shared {
    pub(super) acked: Mutex<Acked>,
    pub(super) window: Mutex<Latencies>,
    pub(super) failures: Mutex<Failures>,
    pub(super) sends: AtomicU64,
    pub(super) reads: AtomicU64,
    pub(super) heartbeats: AtomicU64,
}

/// One send, and for a read round also a page of the conversation's history.
pub(super) async fn one_round(
    mut client: MessageClient,
    conversation: String,
    clock: crate::stats::Clock,
    read: bool,
    shared: Arc<Shared>,
) {
    let started = Instant::now();
    match send_text(&mut client, &conversation, stamp(clock.now_micros(), false)).await {
        Ok(sent) => {
            if let Ok(mut window) = shared.window.lock() {
                window.record(started.elapsed());
            }
            if let Ok(mut acked) = shared.acked.lock() {
                acked.add(&conversation, sent.message.seq);
            }
            shared.sends.fetch_add(1, Ordering::Relaxed);
        }
        Err(status) => {
            if let Ok(mut failures) = shared.failures.lock() {
                failures.add(failure_label(&status));
            }
        }
    }
    if read {
        let page = client
            .list_messages(echo_proto::echo::message::v1::ListMessagesRequest {
                conversation_id: conversation,
                page_size: 50,
                ..Default::default()
            })
            .await;
        match page {
            Ok(_) => {
                shared.reads.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                if let Ok(mut failures) = shared.failures.lock() {
                    failures.add(format!("ListMessages {}", failure_label(&status)));
                }
            }
        }
    }
}

/// Every user heartbeats every 5 s until `stop` (the device's limit is 1/s after a burst).
pub(super) async fn heartbeat_all(
    users: Vec<User>,
    pool: crate::client::Pool,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        for (index, user) in users.iter().enumerate() {
            let mut client = presence_client(pool.get(index), &user.bearer);
            match heartbeat(&mut client, false).await {
                Ok(()) => {
                    shared.heartbeats.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) => {
                    if let Ok(mut failures) = shared.failures.lock() {
                        failures.add(format!("Heartbeat {}", failure_label(&status)));
                    }
                }
            }
        }
    }
}

/// Every user's tokens refreshed every [`REFRESH_EVERY`], as an app refreshes before its
/// access token expires (about 15 minutes): a longer soak measures the load, not a wall of
/// TOKEN_EXPIRED.
pub(super) async fn refresh_tokens(
    users: Vec<User>,
    pool: crate::client::Pool,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(REFRESH_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(error) = users::refresh_all(&pool, &users).await {
            eprintln!("refreshing the soak's tokens: {error:#}");
            if let Ok(mut failures) = shared.failures.lock() {
                failures.add("RefreshTokens".into());
            }
        }
    }
}
