//! AuthService's errors and their one conversion into the platform's [`Failure`].

use std::time::Duration;

use echo_runtime::{Failure, Violation};
use tonic::Code;

/// Everything an auth call can fail with.
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
    /// No such session of the caller.
    #[error("session not found")]
    SessionNotFound,
    /// The database did not answer.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A dependency failed (database, cache, code delivery).
    #[error("internal: {0}")]
    Internal(String),
}

impl AuthError {
    /// A malformed `field`.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        AuthError::Invalid(vec![Violation::new(field, description)])
    }

    /// An internal failure from any error.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        AuthError::Internal(error.to_string())
    }
}

impl From<crate::store::StoreError> for AuthError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Database(error) if error.is_unavailable() => {
                AuthError::Unavailable(error.to_string())
            }
            crate::store::StoreError::Bus(error) if error.is_unavailable() => {
                AuthError::Unavailable(error.to_string())
            }
            error => AuthError::internal(error),
        }
    }
}

impl From<crate::domain::password::HashError> for AuthError {
    fn from(error: crate::domain::password::HashError) -> Self {
        AuthError::internal(error)
    }
}

impl From<echo_authn::AuthnError> for AuthError {
    fn from(error: echo_authn::AuthnError) -> Self {
        AuthError::internal(error)
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
            Unavailable(cause) => Failure::dependency_unavailable("auth", &cause),
            Internal(cause) => Failure::Internal(cause.into()),
        }
    }
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        Failure::from(error).into()
    }
}
