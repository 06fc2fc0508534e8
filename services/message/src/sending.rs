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
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::MessageError;
use crate::store::{Actor, MessageStore, NewMessage, SendRequest, Sent, StoreError};

/// What a client is told to wait before retrying a shed send: about one batch's time.
const RETRY_SHED_AFTER: Duration = Duration::from_millis(100);

/// One queued send and where its outcome goes.
struct Job {
    actor: Actor,
    new: NewMessage,
    at: DateTime<Utc>,
    answer: oneshot::Sender<Result<Sent, StoreError>>,
}

/// The group-commit queue of one instance.
#[derive(Clone)]
pub struct SendQueue {
    jobs: mpsc::Sender<Job>,
}

impl SendQueue {
    /// Starts the committers (one on SQLite, `settings.committers` on PostgreSQL). They stop
    /// once every handle to the queue is dropped and the queue has drained.
    pub fn start(store: Arc<dyn MessageStore>, settings: &SendSettings) -> Self {
        let (jobs, queued) = mpsc::channel(settings.queue.max(1));
        let queued = Arc::new(Mutex::new(queued));
        let committers = if store.single_writer() {
            1
        } else {
            settings.committers.max(1)
        };
        for _ in 0..committers {
            tokio::spawn(commit_batches(
                store.clone(),
                queued.clone(),
                settings.max_batch.max(1),
            ));
        }
        Self { jobs }
    }

    /// Stores `new` (in some batch), or refuses it at once when the queue is full.
    pub async fn send(
        &self,
        actor: Actor,
        new: NewMessage,
        at: DateTime<Utc>,
    ) -> Result<Sent, MessageError> {
        let (answer, outcome) = oneshot::channel();
        let job = Job {
            actor,
            new,
            at,
            answer,
        };
        if let Err(refused) = self.jobs.try_send(job) {
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

/// One committer: takes everything queued (up to `max_batch`), stores it in one transaction,
/// answers each send, and goes again.
async fn commit_batches(
    store: Arc<dyn MessageStore>,
    queued: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_batch: usize,
) {
    let mut jobs = Vec::with_capacity(max_batch);
    loop {
        // The lock is held only while waiting for work, so another committer takes the next
        // batch while this one stores its own.
        let taken = queued.lock().await.recv_many(&mut jobs, max_batch).await;
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
            })
            .collect();
        let outcome = store.send_batch(&requests).await;
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
                tracing::error!(%error, sends = taken, "a batch of sends failed; none stored");
                let cause = error.to_string();
                for job in jobs.drain(..) {
                    let _ = job.answer.send(Err(StoreError::BatchFailed(cause.clone())));
                }
            }
        }
    }
}
