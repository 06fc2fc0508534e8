//! UserService's one error enum, used by the store and the domain alike, and its one
//! conversion into the platform's [`Failure`].
//!
//! Refusals are variants of their own (the store answers the ones it must decide atomically:
//! a taken username, a full contact list, a block or a contact found at the write);
//! infrastructure failures keep their cause as a typed source. The conversion decides
//! UNAVAILABLE (the database or the outbox did not answer, retried by the client) versus
//! INTERNAL (logged with its cause, never sent) from that source.

use std::time::Duration;

use echo_runtime::{Failure, Violation};
use tonic::Code;

/// Everything a user call, or a store script under it, can fail with.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Malformed fields.
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    /// No such user, deleted, or hidden from the caller (indistinguishable on purpose).
    #[error("user not found")]
    UserNotFound,
    /// The username is held by someone else (case-insensitively).
    #[error("username taken")]
    UsernameTaken,
    /// Not in the caller's contacts.
    #[error("contact not found")]
    ContactNotFound,
    /// No such request the caller may act on.
    #[error("contact request not found")]
    ContactRequestNotFound,
    /// Already mutual contacts.
    #[error("already contacts")]
    AlreadyContacts,
    /// A block between the two users (either direction) prevents the action.
    #[error("blocked")]
    Blocked,
    /// The caller may not do this (e.g. change another user's profile).
    #[error("not allowed: {0}")]
    NotAllowed(&'static str),
    /// A count quota is full (the contact list: checked by the store under its lock).
    #[error("limit exceeded")]
    LimitExceeded {
        /// The quota's name.
        limit: &'static str,
        /// Its size.
        max: u32,
    },
    /// The caller's account was deleted (its sessions are ending).
    #[error("account deleted")]
    AccountDeleted,
    /// A rate limit.
    #[error("rate limited")]
    RateLimited(Duration),
    /// The database failed (UNAVAILABLE when it did not answer).
    #[error(transparent)]
    Database(#[from] echo_store::StoreError),
    /// Appending an event to the outbox failed (UNAVAILABLE when its database did not answer).
    #[error(transparent)]
    Bus(#[from] echo_bus::BusError),
}

impl UserError {
    /// A malformed `field`.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        UserError::Invalid(vec![Violation::new(field, description)])
    }
}

impl From<sqlx::Error> for UserError {
    fn from(error: sqlx::Error) -> Self {
        UserError::Database(error.into())
    }
}

impl From<UserError> for Failure {
    fn from(error: UserError) -> Failure {
        use UserError::*;
        let reason = |code, reason, message: &str| Failure::reason(code, reason, message);
        match error {
            Invalid(violations) => Failure::InvalidArgument(violations),
            UserNotFound => reason(Code::NotFound, "USER_NOT_FOUND", "no such user"),
            UsernameTaken => reason(
                Code::AlreadyExists,
                "USERNAME_TAKEN",
                "this username is taken; choose another",
            ),
            ContactNotFound => reason(
                Code::NotFound,
                "CONTACT_NOT_FOUND",
                "this user is not in your contacts",
            ),
            ContactRequestNotFound => reason(
                Code::NotFound,
                "CONTACT_REQUEST_NOT_FOUND",
                "no such pending contact request",
            ),
            AlreadyContacts => reason(
                Code::AlreadyExists,
                "ALREADY_CONTACTS",
                "you are already contacts",
            ),
            Blocked => reason(
                Code::PermissionDenied,
                "BLOCKED",
                "a block between you and this user prevents this",
            ),
            NotAllowed(what) => reason(Code::PermissionDenied, "NOT_ALLOWED", what),
            LimitExceeded { limit, max } => Failure::limit_exceeded(
                limit,
                format!("you have reached the maximum of {max} {limit}"),
            ),
            AccountDeleted => reason(
                Code::Unauthenticated,
                "SESSION_REVOKED",
                "this account was deleted",
            ),
            RateLimited(retry) => Failure::rate_limited(retry),
            Database(cause) if cause.is_unavailable() => {
                Failure::dependency_unavailable("user", &cause.to_string())
            }
            Bus(cause) if cause.is_unavailable() => {
                Failure::dependency_unavailable("user", &cause.to_string())
            }
            failure @ (Database(_) | Bus(_)) => Failure::internal(failure),
        }
    }
}

impl From<UserError> for tonic::Status {
    fn from(error: UserError) -> Self {
        Failure::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_unavailable(failure: &Failure) -> bool {
        matches!(
            failure,
            Failure::Reason {
                code: Code::Unavailable,
                reason: "DEPENDENCY_UNAVAILABLE",
                retry_after: Some(retry),
                ..
            } if *retry == Duration::from_secs(1)
        )
    }

    #[test]
    fn the_source_decides_unavailable_or_internal() {
        let timed_out = echo_store::StoreError::TimedOut(Duration::from_secs(5));
        assert!(is_unavailable(&UserError::from(timed_out).into()));
        let broker = echo_bus::BusError::Unavailable("connection refused".into());
        assert!(is_unavailable(&UserError::from(broker).into()));
        for error in [
            UserError::from(sqlx::Error::RowNotFound),
            UserError::from(echo_bus::BusError::Malformed("bad".into())),
        ] {
            let shown = error.to_string();
            let failure = Failure::from(error);
            assert!(
                matches!(&failure, Failure::Internal(cause) if cause.to_string() == shown),
                "{failure:?}"
            );
        }
    }

    #[test]
    fn the_contact_quota_is_named() {
        let full = UserError::LimitExceeded {
            limit: "contacts",
            max: crate::rules::MAX_CONTACTS,
        };
        let Failure::Reason {
            code,
            reason,
            metadata,
            ..
        } = Failure::from(full)
        else {
            panic!("a reason");
        };
        assert_eq!((code, reason), (Code::ResourceExhausted, "LIMIT_EXCEEDED"));
        assert_eq!(metadata, vec![("limit", "contacts".to_owned())]);
    }
}
