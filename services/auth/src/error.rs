//! AuthService's one error enum, used by the store and the journeys alike, and its one
//! conversion into the platform's [`Failure`].
//!
//! Refusals are variants of their own; infrastructure failures keep their cause as a typed
//! source. The conversion decides UNAVAILABLE (the database or the outbox did not answer,
//! retried by the client) versus INTERNAL (logged with its cause, never sent) from that source.

use std::time::Duration;

use echo_runtime::{Failure, Violation};
use tonic::Code;

use crate::domain::password::HashError;

/// Everything an auth call, or a store script under it, can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Malformed fields.
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    /// Wrong phone or password (never says which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A registration exists but its phone was never verified.
    #[error("phone not verified")]
    PhoneNotVerified,
    /// The code is wrong, or there is no code for this phone.
    #[error("invalid code")]
    OtpInvalid,
    /// The code expired.
    #[error("code expired")]
    OtpExpired,
    /// Too many wrong codes: for this code, or for this phone or range lately.
    #[error("too many code attempts")]
    OtpAttemptsExceeded(Duration),
    /// A rate limit.
    #[error("rate limited")]
    RateLimited(Duration),
    /// The account has the maximum number of signed-in devices.
    #[error("too many devices")]
    TooManyDevices,
    /// The refresh token is unknown, expired or its session ended.
    #[error("refresh token invalid")]
    RefreshTokenInvalid,
    /// A rotated refresh token was used again after the grace: the session is revoked.
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// An operator suspended the account: it cannot sign in.
    #[error("account suspended")]
    AccountSuspended,
    /// No account has this id or phone (operators' lookups and actions).
    #[error("user not found")]
    UserNotFound,
    /// No such session of the caller.
    #[error("session not found")]
    SessionNotFound,
    /// The store found the phone already has an account (a concurrent verification created
    /// it). The journeys sign in to that account instead, so no client sees this.
    #[error("the phone already has an account")]
    PhoneTaken,
    /// The database failed (UNAVAILABLE when it did not answer).
    #[error(transparent)]
    Database(#[from] echo_store::StoreError),
    /// Appending an event to the outbox failed (UNAVAILABLE when its database did not answer).
    #[error(transparent)]
    Bus(#[from] echo_bus::BusError),
    /// Hashing or verifying a password failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Issuing a token or announcing a revocation failed.
    #[error(transparent)]
    Authn(#[from] echo_authn::AuthnError),
    /// An outcome the journeys cannot answer otherwise (an account gone between two reads).
    #[error("{0}")]
    Internal(&'static str),
}

impl AuthError {
    /// A malformed `field`.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        AuthError::Invalid(vec![Violation::new(field, description)])
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(error: sqlx::Error) -> Self {
        AuthError::Database(error.into())
    }
}

impl From<AuthError> for Failure {
    fn from(error: AuthError) -> Failure {
        use AuthError::*;
        let reason = |code, reason, message: &str| Failure::reason(code, reason, message);
        match error {
            Invalid(violations) => Failure::InvalidArgument(violations),
            InvalidCredentials => reason(
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
                "phone number or password is wrong",
            ),
            PhoneNotVerified => reason(
                Code::FailedPrecondition,
                "PHONE_NOT_VERIFIED",
                "verify the phone number with the code sent to it first",
            ),
            OtpInvalid => reason(
                Code::Unauthenticated,
                "OTP_INVALID",
                "the code is not valid",
            ),
            OtpExpired => reason(
                Code::Unauthenticated,
                "OTP_EXPIRED",
                "the code expired; request a new one",
            ),
            OtpAttemptsExceeded(retry) => Failure::Reason {
                code: Code::ResourceExhausted,
                reason: "OTP_ATTEMPTS_EXCEEDED",
                message: "too many wrong codes; request a new code later".into(),
                retry_after: Some(retry),
                metadata: Vec::new(),
            },
            RateLimited(retry) => Failure::rate_limited(retry),
            TooManyDevices => reason(
                Code::FailedPrecondition,
                "TOO_MANY_DEVICES",
                "sign out of another device first",
            ),
            RefreshTokenInvalid => reason(
                Code::Unauthenticated,
                "REFRESH_TOKEN_INVALID",
                "the refresh token is not valid; sign in again",
            ),
            RefreshTokenReused => reason(
                Code::Unauthenticated,
                "REFRESH_TOKEN_REUSED",
                "this refresh token was already used; the session was ended for safety",
            ),
            SessionNotFound => reason(Code::NotFound, "SESSION_NOT_FOUND", "no such session"),
            AccountSuspended => reason(
                Code::PermissionDenied,
                "ACCOUNT_SUSPENDED",
                "this account is suspended",
            ),
            UserNotFound => reason(Code::NotFound, "USER_NOT_FOUND", "no such account"),
            Database(cause) if cause.is_unavailable() => {
                Failure::dependency_unavailable("auth", &cause.to_string())
            }
            Bus(cause) if cause.is_unavailable() => {
                Failure::dependency_unavailable("auth", &cause.to_string())
            }
            failure @ (PhoneTaken | Database(_) | Bus(_) | Hash(_) | Authn(_) | Internal(_)) => {
                Failure::internal(failure)
            }
        }
    }
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
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
        assert!(is_unavailable(&AuthError::from(timed_out).into()));
        let broker = echo_bus::BusError::Unavailable("connection refused".into());
        assert!(is_unavailable(&AuthError::from(broker).into()));
        for error in [
            AuthError::from(sqlx::Error::RowNotFound),
            AuthError::from(echo_bus::BusError::Malformed("bad".into())),
            AuthError::PhoneTaken,
            AuthError::Internal("account vanished"),
        ] {
            let shown = error.to_string();
            let failure = Failure::from(error);
            assert!(
                matches!(&failure, Failure::Internal(cause) if cause.to_string() == shown),
                "{failure:?}"
            );
        }
    }
}
