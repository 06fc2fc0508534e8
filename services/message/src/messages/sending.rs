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
use echo_bus::Event;
use echo_config::SendSettings;
use echo_ids::{ConversationId, MessageId, UserId};
use echo_proto::echo::message::v1::MessageContent;
use tokio::sync::{mpsc, oneshot};

use crate::error::MessageError;
use crate::store::{Actor, Message, MessageStore};

/// What a client is told to wait before retrying a shed send: about one batch's time.
const RETRY_SHED_AFTER: Duration = Duration::from_millis(100);

/// A message to send (validated: text, mentions against the text, attachments, location;
/// membership is checked by the store at write time).
#[derive(Clone, Debug, PartialEq)]
pub struct NewMessage {
    /// The id to give it (if it is new).
    pub id: MessageId,
    /// Where.
    pub conversation_id: ConversationId,
    /// The device's idempotency key.
    pub client_message_id: String,
    /// SHA-256 over the content, reply and thread: a retry with the same key must match it.
    pub request_hash: [u8; 32],
    /// What.
    pub content: MessageContent,
    /// The distinct users mentioned in `content`. Anyone may be mentioned (the mention stays in
    /// the content); only current members other than the sender are counted and notified.
    pub mentioned: Vec<UserId>,
    /// The message it answers (must be visible in the conversation).
    pub reply_to_message_id: Option<MessageId>,
    /// The thread it belongs to (must be a visible top-level message of the conversation).
    pub thread_root_message_id: Option<MessageId>,
}

/// What [`MessageStore::send`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Sent {
    /// Stored now, with the next seq (its event appended).
    Created(Message),
    /// A retry: the message stored by the first call with this key and payload.
    Repeated(Message),
}

/// One queued send and where its outcome goes.
struct Job {
    actor: Actor,
    new: NewMessage,
    at: DateTime<Utc>,
    /// The call's trace context, for its event (see [`SendRequest::trace_parent`]).
    trace_parent: Option<String>,
    answer: oneshot::Sender<Result<Sent, MessageError>>,
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
        let (high, low) = new.conversation_id.as_uuid().as_u64_pair();
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
                    MessageError::Internal("the send queue has stopped")
                }
            });
        }
        match outcome.await {
            Ok(sent) => Ok(sent?),
            Err(_) => Err(MessageError::Internal(
                "a committer stopped before answering",
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
                let unavailable = error.is_unavailable();
                if let MessageError::Database(echo_store::StoreError::TimedOut(_)) = &error {
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
                // Every send of the batch answers with the batch's own failure as its cause.
                let cause = Arc::new(error);
                for job in jobs.drain(..) {
                    let _ = job
                        .answer
                        .send(Err(MessageError::BatchFailed(cause.clone())));
                }
            }
        }
    }
}

/// One send of a batch: what [`MessageStore::send`] takes, as one value.
#[derive(Clone, Copy, Debug)]
pub struct SendRequest<'a> {
    /// Who sends.
    pub actor: Actor,
    /// What they send.
    pub new: &'a NewMessage,
    /// When the server received it.
    pub at: DateTime<Utc>,
    /// The W3C `traceparent` of the SendMessage call, for its MessageCreated: the batch is
    /// stored by a committer task, outside the call's span.
    pub trace_parent: Option<&'a str>,
}

/// Each send's outcome, in the batch's order; `Err` for the whole batch when nothing could
/// be committed (a failed database, a failed commit): then none of the batch is stored.
pub type BatchOutcome = Result<Vec<Result<Sent, MessageError>>, MessageError>;

/// What one send of a batch stored, before the batch commits.
pub(crate) enum Stored {
    /// A new message and its MessageCreated, appended when the batch commits.
    Created(Message, Event),
    /// An earlier send with the same key answers (nothing written).
    Repeated(Sent),
}

impl Stored {
    /// The answer to `request`, collecting its event (if any, continuing the request's
    /// trace) into `events`.
    pub(crate) fn record(self, request: &SendRequest<'_>, events: &mut Vec<Event>) -> Sent {
        match self {
            Stored::Created(message, mut event) => {
                if let Some(parent) = request.trace_parent {
                    event.trace_parent = Some(parent.to_owned());
                }
                events.push(event);
                Sent::Created(message)
            }
            Stored::Repeated(sent) => sent,
        }
    }
}
