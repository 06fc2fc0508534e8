//! What a storage call can fail with.

use uuid::Uuid;

/// What a storage call can fail with. The refusals are outcomes the caller maps to an answer;
/// `Database` and `Bus` are failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A user is unknown to this service or their account was deleted; names the user when
    /// the caller listed several (creating a conversation, adding members).
    #[error("user not found")]
    UserNotFound(Option<Uuid>),
    /// A block between the two users of a direct conversation (either direction), or between
    /// the creator and a user they add (named, as for `UserNotFound`).
    #[error("blocked")]
    Blocked(Option<Uuid>),
    /// The conversation does not exist, or the actor is not (or no longer) a member.
    #[error("conversation not found")]
    ConversationNotFound,
    /// The actor's role does not allow this (e.g. a MEMBER posting in a CHANNEL).
    #[error("not allowed")]
    NotAllowed,
    /// The same idempotency key was used before with a different payload.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// A referenced message (reply target, thread root) is not visible in the conversation.
    #[error("message not found")]
    MessageNotFound,
    /// A count quota is full (e.g. members of a group).
    #[error("limit exceeded: {0}")]
    LimitExceeded(&'static str),
    /// The message was deleted for everyone (it cannot be edited, reacted to or pinned).
    #[error("message deleted")]
    MessageDeleted,
    /// The message is older than the edit window.
    #[error("edit window expired")]
    EditWindowExpired,
    /// The actor is the last OWNER and would leave the conversation without one.
    #[error("last owner")]
    LastOwner,
    /// An invite code that is unknown, revoked or used up.
    #[error("invite invalid")]
    InviteInvalid,
    /// An invite code past its expiry.
    #[error("invite expired")]
    InviteExpired,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] echo_store::StoreError),
    /// Appending an event failed.
    #[error(transparent)]
    Bus(#[from] echo_bus::BusError),
    /// The batch this write was grouped into failed as a whole (see `send_batch`): nothing
    /// of it was stored. Carries the batch's failure, for the log.
    #[error("batch failed: {cause}")]
    BatchFailed {
        /// The batch's failure.
        cause: String,
        /// Whether it was the database being unreachable (UNAVAILABLE, not INTERNAL).
        unavailable: bool,
    },
}

impl StoreError {
    /// True when the database could not be reached (the call answers UNAVAILABLE).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(error) => error.is_unavailable(),
            StoreError::Bus(error) => error.is_unavailable(),
            StoreError::BatchFailed { unavailable, .. } => *unavailable,
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Database(error.into())
    }
}
