//! MessageService's errors and their one conversion into the platform's [`Failure`].

use std::time::Duration;

use echo_runtime::{Failure, Violation};
use tonic::Code;
use uuid::Uuid;

use crate::store::StoreError;

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
    UserNotFound(Option<Uuid>),
    /// A block prevents the action (with the user on the other side of it, when named).
    #[error("blocked")]
    Blocked(Option<Uuid>),
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
    /// The database did not answer.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A dependency failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for MessageError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UserNotFound(user) => MessageError::UserNotFound(user),
            StoreError::Blocked(user) => MessageError::Blocked(user),
            StoreError::ConversationNotFound => MessageError::ConversationNotFound,
            StoreError::NotAllowed => MessageError::NotAllowed,
            StoreError::IdempotencyKeyReused => MessageError::IdempotencyKeyReused,
            StoreError::MessageNotFound => MessageError::MessageNotFound,
            StoreError::LimitExceeded(limit) => MessageError::LimitExceeded(limit),
            StoreError::MessageDeleted => MessageError::MessageDeleted,
            StoreError::EditWindowExpired => MessageError::EditWindowExpired,
            StoreError::LastOwner => MessageError::LastOwner,
            StoreError::InviteInvalid => MessageError::InviteInvalid,
            StoreError::InviteExpired => MessageError::InviteExpired,
            failure if failure.is_unavailable() => MessageError::Unavailable(failure.to_string()),
            failure @ (StoreError::Database(_)
            | StoreError::Bus(_)
            | StoreError::BatchFailed { .. }) => MessageError::Internal(failure.to_string()),
        }
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
            Unavailable(cause) => Failure::dependency_unavailable("message", &cause),
            Internal(cause) => Failure::Internal(cause.into()),
        }
    }
}

/// `failure` with the `user_id` metadata naming `user`, when there is one (USER_NOT_FOUND and
/// BLOCKED of CreateConversation and AddMembers name the offending user).
fn naming(mut failure: Failure, user: Option<Uuid>) -> Failure {
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
