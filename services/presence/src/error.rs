//! PresenceService's one error enum and its mapping to the platform's [`Failure`].

use std::time::Duration;

use echo_runtime::{Failure, Violation};
use tonic::{Code, Status};

use crate::state::StateError;

/// Why a presence call failed.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// Malformed fields.
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    /// More calls than the limit allows; retry after the wait.
    #[error("rate limited")]
    RateLimited(Duration),
    /// Too many open watch streams for the user.
    #[error("too many watch streams")]
    TooManyStreams(usize),
    /// The presence state (Redis) cannot be reached.
    #[error(transparent)]
    State(#[from] StateError),
    /// Presence's database failed.
    #[error(transparent)]
    Store(#[from] echo_store::StoreError),
    /// The cache (stream leases) failed.
    #[error(transparent)]
    Cache(#[from] echo_cache::CacheError),
    /// The caller is missing (a wiring bug).
    #[error(transparent)]
    Authn(#[from] echo_authn::AuthnError),
}

impl From<PresenceError> for Failure {
    fn from(error: PresenceError) -> Failure {
        match error {
            PresenceError::Invalid(violations) => Failure::InvalidArgument(violations),
            PresenceError::RateLimited(wait) | PresenceError::State(StateError::Limited(wait)) => {
                Failure::rate_limited(wait)
            }
            PresenceError::TooManyStreams(limit) => Failure::limit_exceeded(
                "watch_streams",
                format!("at most {limit} presence watch streams may be open per user"),
            ),
            PresenceError::State(ref state) if state.is_unavailable() => {
                Failure::dependency_unavailable("presence", &error.to_string())
            }
            PresenceError::Cache(echo_cache::CacheError::Unavailable(_)) => {
                Failure::dependency_unavailable("presence", &error.to_string())
            }
            PresenceError::Store(ref store) if store.is_unavailable() => {
                Failure::dependency_unavailable("presence", &error.to_string())
            }
            PresenceError::Authn(error) => Failure::from(error),
            other => Failure::internal(other),
        }
    }
}

impl From<PresenceError> for Status {
    fn from(error: PresenceError) -> Status {
        Failure::from(error).into()
    }
}

/// The status a stream ends with when `error` stops it.
pub fn status(error: PresenceError) -> Status {
    error.into()
}

/// UNAVAILABLE RESUME: the watcher fell behind; it reopens and gets a fresh snapshot.
pub fn resume() -> Status {
    Failure::unavailable(
        "RESUME",
        "the stream fell behind; reopen it for a fresh snapshot",
        Duration::ZERO,
    )
    .into()
}

/// UNAUTHENTICATED SESSION_REVOKED for a watch whose session ended.
pub fn revoked() -> Status {
    Failure::reason(
        Code::Unauthenticated,
        "SESSION_REVOKED",
        "the session has ended; sign in again",
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_outage_is_unavailable_and_a_malformed_reply_internal() {
        let timed_out = PresenceError::State(StateError::TimedOut(Duration::from_millis(250)));
        let Failure::Reason {
            code, retry_after, ..
        } = Failure::from(timed_out)
        else {
            panic!("a reason");
        };
        assert_eq!(code, Code::Unavailable);
        assert_eq!(retry_after, Some(Duration::from_secs(1)));
        let malformed = PresenceError::State(StateError::Malformed("bad reply".into()));
        assert!(matches!(Failure::from(malformed), Failure::Internal(_)));
    }
}
