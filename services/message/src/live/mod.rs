//! Live delivery (DESIGN §7): the Subscribe stream with gap-free resume, and the ephemeral
//! items (typing, receipts, read markers) beside it.
//!
//! The message outbox is the event log. Its positions are commit-safe (PostgreSQL reads only
//! below `pg_snapshot_xmin`; SQLite has one writer), and the store takes its per-conversation
//! and per-user locks before a transaction gets its xid, so position order is seq order in
//! every conversation and for every user. Hence:
//! - one [`Hub`] per instance follows the outbox (`tail`) and fans out in-process with
//!   `try_send`; a stream whose buffer is full is ended with UNAVAILABLE / RESUME;
//! - a resuming stream replays from the database (`replay`) up to a head at or past the hub's
//!   position when it registered, then takes live items past that head (`stream`);
//! - the cursor is `{epoch, position}` ([`Cursor`]); a cursor from another epoch, behind the
//!   pruned horizon, or too far behind gets ResyncRequired first.
//!
//! Bus messages are only wake-up hints; what goes out is always read from the database.
//!
//! Also here: the feature's RPCs (`api`: Subscribe, SetTyping), typing indicators (`typing`)
//! and what live delivery reads from the store (`store`: membership periods, the send checks
//! without the send, who hid which messages).

pub(crate) mod api;
pub mod cursor;
mod ephemeral;
mod hub;
mod items;
mod membership;
mod replay;
pub(crate) mod store;
mod stream;
mod tail;
mod typing;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use echo_authn::Revocations;
use echo_bus::{BusError, EventBus, Outbox};
use echo_config::LiveSettings;
use echo_ids::{SessionId, UserId};
use echo_proto::echo::message::v1 as pb;
use tokio_util::sync::CancellationToken;

pub use cursor::Cursor;
pub use ephemeral::Publisher;
pub use hub::Hub;

use crate::error::MessageError;
use crate::store::{Actor, MessageStore};
use replay::Replay;
use stream::{Phase, Subscription, ready};

/// Why live delivery could not read what it needs.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The outbox could not be read.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] MessageError),
    /// Events a replay needed were pruned while it ran.
    #[error("events after the cursor were pruned during the replay")]
    Pruned,
}

/// Live delivery for one instance: its hub, and what streams need beside it.
#[derive(Clone)]
pub struct Live {
    hub: Hub,
    publisher: Publisher,
    revocations: Option<Revocations>,
}

/// What [`Live::start`] needs.
pub struct LiveDeps {
    /// The message store.
    pub store: Arc<MessageStore>,
    /// The message service's outbox (the event log).
    pub outbox: Outbox,
    /// The bus (hints, ephemeral items).
    pub bus: Arc<dyn EventBus>,
    /// Session revocations, so a revoked session's stream ends within a second.
    pub revocations: Option<Revocations>,
    /// Stream settings.
    pub settings: LiveSettings,
}

/// A stream's first items and what follows them.
pub type SubscribeStream = stream::Stream;

impl Live {
    /// Start the hub's reader, the ephemeral listener and the open-stream announcer (for
    /// presence); all stop at `shutdown`.
    pub async fn start(deps: LiveDeps, shutdown: CancellationToken) -> Result<Live, LiveError> {
        let hub = Hub::new(deps.store, deps.outbox, deps.bus.clone(), deps.settings).await?;
        let publisher = Publisher::new(deps.bus);
        tokio::spawn(tail::follow(hub.clone(), shutdown.clone()));
        tokio::spawn(ephemeral::listen(hub.clone(), shutdown.clone()));
        tokio::spawn(ephemeral::announce(
            hub.clone(),
            publisher.clone(),
            shutdown,
        ));
        Ok(Live {
            hub,
            publisher,
            revocations: deps.revocations,
        })
    }

    /// The publisher of ephemeral items.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The settings streams run with.
    pub fn settings(&self) -> &LiveSettings {
        &self.hub.shared.settings
    }

    /// Open the stream of `actor`'s device, signed in as `session`, from `cursor` (`None`:
    /// from now); it ends when the session is revoked.
    pub async fn subscribe(
        &self,
        actor: Actor,
        session: SessionId,
        cursor: Option<Cursor>,
    ) -> Result<SubscribeStream, LiveError> {
        let shared = &self.hub.shared;
        let Actor {
            user_id: user,
            device_id: device,
        } = actor;
        let registration = self.hub.register(user, device);
        self.publisher
            .stream_opened(user, device, registration.id)
            .await;
        // At or past the hub's position at registration: the replay and the live items meet
        // with no gap.
        let head = shared.outbox.head().await?.max(registration.position);
        let head_cursor = Cursor {
            epoch: shared.epoch,
            position: head,
        }
        .encode();
        let mut pending = VecDeque::new();
        let mut phase = Phase::Live;
        match cursor {
            None => pending.push_back(ready(&head_cursor, 0)),
            Some(cursor) => match self.resumable(user, cursor, head).await? {
                Ok(replay) => phase = Phase::Replaying(replay),
                Err(reason) => {
                    metrics::counter!("echo_live_resyncs_total", "reason" => reason.as_str_name())
                        .increment(1);
                    pending.push_back(pb::SubscribeResponse {
                        cursor: head_cursor.clone(),
                        item: Some(pb::subscribe_response::Item::ResyncRequired(
                            pb::ResyncRequired {
                                reason: reason.into(),
                            },
                        )),
                    });
                    pending.push_back(ready(&head_cursor, 0));
                }
            },
        }
        let revoked: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            match &self.revocations {
                Some(revocations) => Box::pin(revocations.revoked_signal(session)),
                None => Box::pin(std::future::pending()),
            };
        let interval = shared.settings.heartbeat_interval;
        Ok(Subscription {
            hub: self.hub.clone(),
            user,
            registration,
            phase,
            pending,
            replayed_through: head,
            ready_cursor: head_cursor,
            replayed: 0,
            sent: HashMap::new(),
            sent_user: 0,
            revoked,
            idle: Box::pin(tokio::time::sleep(interval)),
        }
        .into_stream())
    }

    /// The replay from `cursor` to `head`, or why it cannot be served.
    async fn resumable(
        &self,
        user: UserId,
        cursor: Cursor,
        head: echo_bus::Position,
    ) -> Result<Result<Replay, pb::ResyncReason>, LiveError> {
        let shared = &self.hub.shared;
        // A position past the head was never handed out by this database.
        if cursor.epoch != shared.epoch || cursor.position > head {
            return Ok(Err(pb::ResyncReason::EpochUnknown));
        }
        if shared.outbox.horizon().await? > cursor.position {
            return Ok(Err(pb::ResyncReason::CursorExpired));
        }
        let replay = Replay::plan(shared, user, cursor.position, head).await?;
        let limit = shared.settings.replay_limit;
        if replay.rows(shared, limit + 1).await? > limit {
            return Ok(Err(pb::ResyncReason::TooFarBehind));
        }
        Ok(Ok(replay))
    }
}
