//! MessageService's one error enum, used by the domain and the store alike (the store's
//! refusals are the answers the caller gets), and its one conversion into the platform's
//! [`Failure`]. Database and bus failures keep their causes as sources: only the conversion
//! decides UNAVAILABLE or INTERNAL, from [`MessageError::is_unavailable`].

use std::sync::Arc;
use std::time::Duration;

use echo_ids::UserId;
use echo_runtime::{Failure, Violation};
use tonic::Code;

/// Everything a message call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Malformed fields.
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    /// No such conversation, or the caller is not a member (indistinguishable on purpose).
    #[error("conversation not found")]
    ConversationNotFound,
    /// No such message visible to the caller.
    #[error("message not found")]
    MessageNotFound,
    /// A user is unknown or deleted (named in the `user_id` metadata when known).
    #[error("user not found")]
    UserNotFound(Option<UserId>),
    /// A block prevents the action (with the user on the other side of it, when named).
    #[error("blocked")]
    Blocked(Option<UserId>),
    /// The caller's role does not allow the action.
    #[error("not allowed")]
    NotAllowed,
    /// An idempotency key reused with another payload.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// A count quota is full.
    #[error("limit exceeded: {0}")]
    LimitExceeded(&'static str),
    /// The message was deleted for everyone.
    #[error("message deleted")]
    MessageDeleted,
    /// No report has this id (the operators' internal contract).
    #[error("report not found")]
    ReportNotFound,
    /// The message is older than the edit window.
    #[error("edit window expired")]
    EditWindowExpired,
    /// The last owner cannot leave without handing over.
    #[error("last owner")]
    LastOwner,
    /// An invite code that is unknown, revoked or used up.
    #[error("invite invalid")]
    InviteInvalid,
    /// An invite code past its expiry.
    #[error("invite expired")]
    InviteExpired,
    /// A rate limit.
    #[error("rate limited")]
    RateLimited(Duration),
    /// Too much waiting to be stored: refused at once (load shedding), retry after this.
    #[error("overloaded")]
    Overloaded(Duration),
    /// The database failed (UNAVAILABLE when it could not be reached, else INTERNAL).
    #[error(transparent)]
    Database(#[from] echo_store::StoreError),
    /// Appending or reading an event failed (UNAVAILABLE or INTERNAL, as for `Database`).
    #[error(transparent)]
    Bus(#[from] echo_bus::BusError),
    /// The group-commit batch this send was stored in failed as a whole (see
    /// `MessageStore::send_batch`): nothing of it was stored. Every send of the batch shares
    /// the batch's failure, which decides UNAVAILABLE or INTERNAL.
    #[error("batch failed: {0}")]
    BatchFailed(#[source] Arc<MessageError>),
    /// An invariant of this instance broke (its send queue stopped): a bug, with nothing
    /// underneath to keep.
    #[error("internal: {0}")]
    Internal(&'static str),
}

impl MessageError {
    /// True when the database or the bus could not be reached (the call answers UNAVAILABLE
    /// with a retry hint, not INTERNAL).
    pub fn is_unavailable(&self) -> bool {
        match self {
            MessageError::Database(error) => error.is_unavailable(),
            MessageError::Bus(error) => error.is_unavailable(),
            MessageError::BatchFailed(cause) => cause.is_unavailable(),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for MessageError {
    fn from(error: sqlx::Error) -> Self {
        MessageError::Database(error.into())
    }
}

impl From<MessageError> for Failure {
    fn from(error: MessageError) -> Failure {
        use MessageError::*;
        let reason = |code, reason, message: &str| Failure::reason(code, reason, message);
        match error {
            Invalid(violations) => Failure::InvalidArgument(violations),
            ConversationNotFound => reason(
                Code::NotFound,
                "CONVERSATION_NOT_FOUND",
                "no such conversation",
            ),
            MessageNotFound => reason(Code::NotFound, "MESSAGE_NOT_FOUND", "no such message"),
            UserNotFound(user) => naming(
                reason(Code::NotFound, "USER_NOT_FOUND", "no such user"),
                user,
            ),
            Blocked(user) => naming(
                reason(
                    Code::PermissionDenied,
                    "BLOCKED",
                    "a block between you and this user prevents this",
                ),
                user,
            ),
            NotAllowed => reason(
                Code::PermissionDenied,
                "NOT_ALLOWED",
                "your role in this conversation does not allow this",
            ),
            IdempotencyKeyReused => reason(
                Code::FailedPrecondition,
                "IDEMPOTENCY_KEY_REUSED",
                "this client_message_id was used for different content",
            ),
            LimitExceeded(limit) => {
                Failure::limit_exceeded(limit, format!("the {limit} limit is reached"))
            }
            MessageDeleted => reason(
                Code::FailedPrecondition,
                "MESSAGE_DELETED",
                "the message was deleted for everyone",
            ),
            ReportNotFound => reason(Code::NotFound, "REPORT_NOT_FOUND", "no such report"),
            EditWindowExpired => reason(
                Code::FailedPrecondition,
                "EDIT_WINDOW_EXPIRED",
                "the message is too old to edit",
            ),
            LastOwner => reason(
                Code::FailedPrecondition,
                "LAST_OWNER",
                "hand ownership to another member before leaving",
            ),
            InviteInvalid => reason(
                Code::NotFound,
                "INVITE_INVALID",
                "no such invite (unknown, revoked or used up)",
            ),
            InviteExpired => reason(
                Code::FailedPrecondition,
                "INVITE_EXPIRED",
                "the invite has expired",
            ),
            RateLimited(retry) => Failure::rate_limited(retry),
            Overloaded(retry) => Failure::unavailable(
                "OVERLOADED",
                "too many messages are waiting to be stored; retry shortly with the same \
                 client_message_id",
                retry,
            ),
            failure @ (Database(_) | Bus(_) | BatchFailed(_)) if failure.is_unavailable() => {
                Failure::dependency_unavailable("message", &failure.to_string())
            }
            failure @ (Database(_) | Bus(_) | BatchFailed(_)) => {
                Failure::Internal(Box::new(failure))
            }
            Internal(invariant) => Failure::Internal(invariant.into()),
        }
    }
}

/// `failure` with the `user_id` metadata naming `user`, when there is one (USER_NOT_FOUND and
/// BLOCKED of CreateConversation and AddMembers name the offending user).
fn naming(mut failure: Failure, user: Option<UserId>) -> Failure {
    if let (Failure::Reason { metadata, .. }, Some(user)) = (&mut failure, user) {
        metadata.push(("user_id", user.to_string()));
    }
    failure
}

impl From<MessageError> for tonic::Status {
    fn from(error: MessageError) -> Self {
        Failure::from(error).into()
    }
}
