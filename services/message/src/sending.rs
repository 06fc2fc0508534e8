//! Group commit (DESIGN §6): SendMessage calls queue here, and committers store whatever has
//! queued meanwhile in one transaction ([`MessageStore::send_batch`]): one commit and one
//! fsync for the lot. Nothing waits on purpose: a lone send is a batch of one at once, and
//! under load the batches grow while the previous one commits.
//!
//! The queue is bounded: when it is full a send is refused at once with UNAVAILABLE /
//! OVERLOADED and RetryInfo (nothing stored; the client retries with the same key), instead
//! of every send waiting longer and longer. An accepted send is stored exactly as alone:
//! idempotency, seq order and the outbox are the store's guarantees for a batch too.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use echo_config::SendSettings;
use tokio::sync::{mpsc, oneshot};

use crate::error::MessageError;
use crate::store::{Actor, MessageStore, NewMessage, SendRequest, Sent, StoreError};

/// What a client is told to wait before retrying a shed send: about one batch's time.
const RETRY_SHED_AFTER: Duration = Duration::from_millis(100);

/// One queued send and where its outcome goes.
struct Job {
    actor: Actor,
    new: NewMessage,
    at: DateTime<Utc>,
    /// The call's trace context, for its event (see [`SendRequest::trace_parent`]).
    trace_parent: Option<String>,
    answer: oneshot::Sender<Result<Sent, StoreError>>,
}

/// The group-commit queue of one instance: one lane per committer, each send in the lane of
/// its conversation. Batches of different lanes then never share a conversation, so they
/// never wait for each other's write-order locks and really run at once (on PostgreSQL), and
/// one conversation's sends keep their arrival order.
#[derive(Clone)]
pub struct SendQueue {
    lanes: Arc<[mpsc::Sender<Job>]>,
}

impl SendQueue {
    /// Starts the committers (one on SQLite, `settings.committers` on PostgreSQL), sharing
    /// `settings.queue` waiting sends between them. They stop once every handle to the queue
    /// is dropped and their lanes have drained.
    pub fn start(store: Arc<MessageStore>, settings: &SendSettings) -> Self {
        let committers = if store.single_writer() {
            1
        } else {
            settings.committers.max(1)
        };
        let per_lane = settings.queue.div_ceil(committers).max(1);
        let lanes: Vec<mpsc::Sender<Job>> = (0..committers)
            .map(|_| {
                let (jobs, queued) = mpsc::channel(per_lane);
                tokio::spawn(commit_batches(
                    store.clone(),
                    queued,
                    settings.max_batch.max(1),
                    settings.commit_timeout,
                ));
                jobs
            })
            .collect();
        Self {
            lanes: lanes.into(),
        }
    }

    /// Stores `new` (in some batch), or refuses it at once when its lane is full.
    pub async fn send(
        &self,
        actor: Actor,
        new: NewMessage,
        at: DateTime<Utc>,
    ) -> Result<Sent, MessageError> {
        let (answer, outcome) = oneshot::channel();
        let (high, low) = new.conversation_id.as_u64_pair();
        let lane = &self.lanes[((high ^ low) % self.lanes.len() as u64) as usize];
        let job = Job {
            actor,
            new,
            at,
            trace_parent: echo_telemetry::current_traceparent(),
            answer,
        };
        if let Err(refused) = lane.try_send(job) {
            return Err(match refused {
                mpsc::error::TrySendError::Full(_) => {
                    metrics::counter!("echo_sends_shed_total").increment(1);
                    MessageError::Overloaded(RETRY_SHED_AFTER)
                }
                mpsc::error::TrySendError::Closed(_) => {
                    MessageError::Internal("the send queue has stopped".into())
                }
            });
        }
        match outcome.await {
            Ok(sent) => Ok(sent?),
            Err(_) => Err(MessageError::Internal(
                "a committer stopped before answering".into(),
            )),
        }
    }
}

/// One committer: takes everything queued in its lane (up to `max_batch`), stores it in one transaction,
/// answers each send, and goes again. A batch not stored within `commit_timeout` (a database
/// that stopped answering) is given up and its sends answered UNAVAILABLE, so the lane moves
/// on instead of waiting for the kernel to drop the connection.
async fn commit_batches(
    store: Arc<MessageStore>,
    mut queued: mpsc::Receiver<Job>,
    max_batch: usize,
    commit_timeout: Duration,
) {
    let mut jobs = Vec::with_capacity(max_batch);
    loop {
        let taken = queued.recv_many(&mut jobs, max_batch).await;
        if taken == 0 {
            return;
        }
        metrics::histogram!("echo_send_batch_size").record(taken as f64);
        let requests: Vec<SendRequest<'_>> = jobs
            .iter()
            .map(|job| SendRequest {
                actor: job.actor,
                new: &job.new,
                at: job.at,
                trace_parent: job.trace_parent.as_deref(),
            })
            .collect();
        let outcome = echo_store::within(commit_timeout, store.send_batch(&requests)).await;
        drop(requests);
        match outcome {
            Ok(outcomes) => {
                for (job, outcome) in jobs.drain(..).zip(outcomes) {
                    // The caller may have gone (a cancelled call): the message is stored
                    // anyway, and a retry with its key answers it.
                    let _ = job.answer.send(outcome);
                }
            }
            Err(error) => {
                let cause = error.to_string();
                let unavailable = error.is_unavailable();
                if let StoreError::Database(echo_store::StoreError::TimedOut(_)) = error {
                    // Given up, not refused: a COMMIT already sent may still land. Retries
                    // with the same keys find out (idempotency).
                    tracing::warn!(%error, sends = taken, "a batch of sends got no answer in time; outcome unknown");
                } else if unavailable {
                    // An outage: each caller gets UNAVAILABLE with a retry hint; one line per
                    // batch, dozens a second, is an operator's warning, not a defect.
                    tracing::warn!(%error, sends = taken, "a batch of sends failed (database unavailable); none stored");
                } else {
                    tracing::error!(%error, sends = taken, "a batch of sends failed; none stored");
                }
                for job in jobs.drain(..) {
                    let failed = StoreError::BatchFailed {
                        cause: cause.clone(),
                        unavailable,
                    };
                    let _ = job.answer.send(Err(failed));
                }
            }
        }
    }
}
