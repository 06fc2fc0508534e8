//! UserService's errors and their one conversion into the platform's [`Failure`].

use std::time::Duration;

use echo_runtime::{Failure, Violation};
use tonic::Code;

use crate::store::StoreError;

/// Everything a user call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Malformed fields.
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    /// No such user, deleted, or hidden from the caller (indistinguishable on purpose).
    #[error("user not found")]
    UserNotFound,
    /// The username is held by someone else.
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
    /// A block between the two users prevents the action.
    #[error("blocked")]
    Blocked,
    /// The caller may not do this (e.g. change another user's profile).
    #[error("not allowed: {0}")]
    NotAllowed(&'static str),
    /// A count quota is full.
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
    /// The database did not answer.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A dependency failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl UserError {
    /// A malformed `field`.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        UserError::Invalid(vec![Violation::new(field, description)])
    }
}

impl From<StoreError> for UserError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UsernameTaken => UserError::UsernameTaken,
            StoreError::UserNotFound => UserError::UserNotFound,
            StoreError::Blocked => UserError::Blocked,
            StoreError::AlreadyContacts => UserError::AlreadyContacts,
            StoreError::ContactLimit => UserError::LimitExceeded {
                limit: "contacts",
                max: crate::rules::MAX_CONTACTS,
            },
            StoreError::Database(error) if error.is_unavailable() => {
                UserError::Unavailable(error.to_string())
            }
            StoreError::Bus(error) if error.is_unavailable() => {
                UserError::Unavailable(error.to_string())
            }
            failure @ (StoreError::Database(_) | StoreError::Bus(_)) => {
                UserError::Internal(failure.to_string())
            }
        }
    }
}

impl From<Failure> for UserError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::InvalidArgument(violations) => UserError::Invalid(violations),
            other => UserError::Internal(format!("{other:?}")),
        }
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
            Unavailable(cause) => Failure::dependency_unavailable("user", &cause),
            Internal(cause) => Failure::Internal(cause.into()),
        }
    }
}

impl From<UserError> for tonic::Status {
    fn from(error: UserError) -> Self {
        Failure::from(error).into()
    }
}
