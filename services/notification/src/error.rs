//! NotificationService's one error enum and THE mapping to the platform's [`Failure`] (which
//! alone builds a `tonic::Status`).

use std::time::Duration;

use echo_runtime::{Check, Failure};
use tonic::{Code, Status};

use crate::tokens::Platform;

/// Why a notification call failed.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// Malformed fields: the INVALID_ARGUMENT a [`Check`] produced, every field at once.
    #[error("invalid request")]
    Invalid(Failure),
    /// The platform has no delivery configured on this server.
    #[error("push platform {} is not configured", .0.name())]
    PlatformUnavailable(Platform),
    /// The user already has the most push tokens allowed.
    #[error("too many push tokens")]
    TooManyTokens(usize),
    /// More registrations than the limit allows; retry after the wait.
    #[error("rate limited")]
    RateLimited(Duration),
    /// The inbox entry is unknown or another user's.
    #[error("inbox entry not found")]
    InboxEntryNotFound,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] echo_store::StoreError),
    /// The caller is missing (a wiring bug).
    #[error(transparent)]
    Authn(#[from] echo_authn::AuthnError),
}

impl From<sqlx::Error> for NotificationError {
    fn from(error: sqlx::Error) -> Self {
        NotificationError::Store(error.into())
    }
}

/// Ok when every field of `check` was well formed, else [`NotificationError::Invalid`].
pub fn checked(check: Check) -> Result<(), NotificationError> {
    check.finish().map_err(NotificationError::Invalid)
}

impl From<NotificationError> for Failure {
    fn from(error: NotificationError) -> Failure {
        match error {
            NotificationError::Invalid(failure) => failure,
            NotificationError::PlatformUnavailable(platform) => Failure::Reason {
                code: Code::FailedPrecondition,
                reason: "PUSH_PLATFORM_UNAVAILABLE",
                message: format!(
                    "push platform {} is not available on this server",
                    platform.name()
                ),
                retry_after: None,
                metadata: vec![("platform", platform.name().to_owned())],
            },
            NotificationError::TooManyTokens(limit) => Failure::limit_exceeded(
                "push_tokens",
                format!("at most {limit} push tokens per user; unregister one first"),
            ),
            NotificationError::RateLimited(wait) => Failure::rate_limited(wait),
            NotificationError::InboxEntryNotFound => Failure::reason(
                Code::NotFound,
                "INBOX_ENTRY_NOT_FOUND",
                "the inbox entry does not exist",
            ),
            NotificationError::Store(ref store) if store.is_unavailable() => {
                Failure::dependency_unavailable("notification", &error.to_string())
            }
            NotificationError::Authn(error) => Failure::from(error),
            NotificationError::Store(_) => Failure::internal(error),
        }
    }
}

impl From<NotificationError> for Status {
    fn from(error: NotificationError) -> Status {
        Failure::from(error).into()
    }
}
