//! Group commit's storage side: many sends in one transaction (one commit, one fsync), each
//! with its own outcome. The queue that forms the batches is `crate::sending`.

use chrono::{DateTime, Utc};
use echo_bus::Event;

use super::{Actor, Message, NewMessage, Sent, StoreError};

/// One send of a batch: what [`super::MessageStore::send`] takes, as one value.
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
pub type BatchOutcome = Result<Vec<Result<Sent, StoreError>>, StoreError>;

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
