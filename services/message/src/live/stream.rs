//! One Subscribe stream: the first item (Ready, or ResyncRequired then Ready), the replay, then
//! live items from the hub past the replay's head; heartbeats when idle; and its endings.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use echo_bus::Position;
use echo_ids::{ConversationId, UserId};
use echo_proto::echo::message::v1 as pb;
use echo_runtime::Failure;
use futures::FutureExt as _;
use pb::subscribe_response::Item;
use tokio::time::{Instant, Sleep};
use tonic::{Code, Status};

use super::LiveError;
use super::hub::{Ending, Hub, Registration};
use super::items::{Durable, Outgoing, Route, View};
use super::replay::Replay;

/// Where a stream is.
pub(crate) enum Phase {
    /// Replaying from the database; Ready follows.
    Replaying(Replay),
    /// Live from the hub.
    Live,
    /// Ended (after its final status, if any).
    Ended,
}

/// The state behind one Subscribe response stream.
pub(crate) struct Subscription {
    pub hub: Hub,
    pub user: UserId,
    pub registration: Registration,
    pub phase: Phase,
    /// Items ready to go out, in order.
    pub pending: VecDeque<pb::SubscribeResponse>,
    /// Live items at or below this position were replayed already.
    pub replayed_through: Position,
    /// The cursor Ready carries (the replay's head).
    pub ready_cursor: String,
    pub replayed: i32,
    /// Last seq sent per conversation and of the user's own events: never send one twice.
    pub sent: HashMap<ConversationId, i64>,
    pub sent_user: i64,
    pub revoked: Pin<Box<dyn Future<Output = ()> + Send>>,
    pub idle: Pin<Box<Sleep>>,
}

pub(crate) type Stream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

impl Subscription {
    /// The stream tonic sends.
    pub fn into_stream(self) -> Stream {
        Box::pin(futures::stream::unfold(self, |mut state| async move {
            state.next().await.map(|item| (item, state))
        }))
    }

    async fn next(&mut self) -> Option<Result<pb::SubscribeResponse, Status>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                self.rest();
                return Some(Ok(item));
            }
            if self.revoked.as_mut().now_or_never().is_some() {
                return self.end(revoked());
            }
            match &mut self.phase {
                Phase::Ended => return None,
                Phase::Replaying(replay) => {
                    // Replaced or cut while replaying: end now, not after up to
                    // replay_limit more events.
                    if let Some(ending) = (&mut self.registration.ended).now_or_never() {
                        return self.end(ending_status(ending));
                    }
                    let page = replay.next_page(&self.hub.shared).await;
                    match page {
                        Ok(Some(batch)) => {
                            for (view, durable) in batch {
                                self.replayed += 1;
                                self.push(&durable, view);
                            }
                        }
                        Ok(None) => {
                            self.pending
                                .push_back(ready(&self.ready_cursor, self.replayed));
                            self.phase = Phase::Live;
                        }
                        Err(LiveError::Pruned) => {
                            return self.end(resume(
                                "events you were catching up on were pruned; resume to resync",
                            ));
                        }
                        Err(error) => {
                            tracing::warn!(%error, "replay failed; the client resumes");
                            return self.end(resume("the server could not read your events"));
                        }
                    }
                }
                Phase::Live => {
                    if let Some(status) = self.wait_live().await {
                        return self.end(status);
                    }
                }
            }
        }
    }

    /// Wait for the next live item (queued into `pending`) or an ending.
    async fn wait_live(&mut self) -> Option<Status> {
        let interval = self.hub.shared.settings.heartbeat_interval;
        tokio::select! {
            biased;
            ending = &mut self.registration.ended => Some(ending_status(ending)),
            () = &mut self.revoked => Some(revoked()),
            item = self.registration.items.recv() => match item {
                Some(Outgoing::Durable(durable, view)) => {
                    if durable.position > self.replayed_through {
                        self.push(&durable, view);
                    }
                    None
                }
                Some(Outgoing::Ephemeral(item)) => {
                    self.pending.push_back(pb::SubscribeResponse {
                        cursor: String::new(),
                        item: Some((*item).clone()),
                    });
                    None
                }
                None => Some(resume("the server is rebalancing; resume from your last cursor")),
            },
            () = &mut self.idle => {
                self.pending.push_back(heartbeat(interval));
                None
            }
        }
    }

    /// Queue a durable event unless this stream sent its seq already.
    fn push(&mut self, durable: &Durable, view: View) {
        let fresh = match durable.route {
            Route::Conversation { id, seq, .. } => {
                let last = self.sent.entry(id).or_insert(0);
                (seq > *last).then(|| *last = seq).is_some()
            }
            Route::User { seq, .. } => (seq > self.sent_user)
                .then(|| self.sent_user = seq)
                .is_some(),
        };
        if fresh {
            self.pending
                .push_back(durable.response_for(self.user, view));
        }
    }

    fn rest(&mut self) {
        let interval = self.hub.shared.settings.heartbeat_interval;
        self.idle.as_mut().reset(Instant::now() + interval);
    }

    fn end(&mut self, status: Status) -> Option<Result<pb::SubscribeResponse, Status>> {
        self.phase = Phase::Ended;
        self.pending.clear();
        Some(Err(status))
    }
}

/// Ready: replay is over.
pub(crate) fn ready(cursor: &str, replayed: i32) -> pb::SubscribeResponse {
    pb::SubscribeResponse {
        cursor: cursor.to_owned(),
        item: Some(Item::Ready(pb::Ready {
            server_time: Some(SystemTime::now().into()),
            replayed_count: replayed,
        })),
    }
}

fn heartbeat(interval: std::time::Duration) -> pb::SubscribeResponse {
    pb::SubscribeResponse {
        cursor: String::new(),
        item: Some(Item::Heartbeat(pb::Heartbeat {
            server_time: Some(SystemTime::now().into()),
            interval: prost_types::Duration::try_from(interval).ok(),
        })),
    }
}

fn ending_status(ending: Result<Ending, tokio::sync::oneshot::error::RecvError>) -> Status {
    match ending {
        Ok(Ending::Replaced) => replaced(),
        Ok(Ending::TooSlow) | Err(_) => {
            resume("this stream fell behind; resume from your last cursor")
        }
    }
}

fn resume(message: &str) -> Status {
    Failure::unavailable("RESUME", message, std::time::Duration::ZERO).into()
}

fn replaced() -> Status {
    Failure::reason(
        Code::FailedPrecondition,
        "STREAM_REPLACED",
        "another stream of this device took over; do not reconnect from this one",
    )
    .into()
}

fn revoked() -> Status {
    Failure::from(echo_authn::AuthnError::SessionRevoked).into()
}
