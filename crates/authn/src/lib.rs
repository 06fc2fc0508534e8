//! Who is calling (DESIGN §5): Ed25519 signing keys that rotate without downtime, EdDSA access
//! tokens verified locally by every service, session revocations that take effect within a
//! second everywhere, and the tower layer that turns a bearer token into a [`Caller`].
//!
//! Wiring, per service: `AuthnLayer::new(verifier, revocations, PUBLIC_METHODS)` wraps the
//! generated server; handlers read `request.extensions().get::<Caller>()` (or
//! [`Caller::of`]); long-lived streams also `select!` on [`Revocations::revoked_signal`].
//!
//! Internal contracts (`*InternalService`, served on the internal port only) take a service
//! credential instead: [`ServiceTokens`] mints the caller's token from the shared
//! [`ServiceSecret`], [`ServiceAuthLayer`] checks it and puts a [`ServiceCaller`] into the
//! request extensions.

use std::path::PathBuf;
use std::time::Duration;

use echo_ids::{DeviceId, SessionId, UserId};
use echo_status::Failure;
use tonic::Code;

mod keys;
mod layer;
pub mod phone;
mod revocation;
mod service;
mod token;

pub use keys::{DEV_KEY_FILE, Jwk, KeySet, PublicKey, SigningKey};
pub use layer::{Authenticated, AuthnLayer};
pub use phone::PhoneNumber;
pub use revocation::{CHANNEL as REVOCATION_CHANNEL, Decision, RevocationOptions, Revocations};
pub use service::{
    MIN_SERVICE_SECRET_BYTES, SERVICE_ISSUER, ServiceAuthError, ServiceAuthLayer,
    ServiceAuthenticated, ServiceCaller, ServiceClaims, ServiceSecret, ServiceTokens,
};
pub use token::{Claims, TokenIssuer, Verifier};

/// How long a client should wait before retrying when revocations cannot be checked.
const RETRY_AFTER_OUTAGE: Duration = Duration::from_secs(1);

/// The authenticated caller of an RPC, put into the request extensions by [`AuthnLayer`].
/// Its ids are parsed once, from the token's claims, so handlers take them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The user (`sub`).
    pub user_id: UserId,
    /// The session (`sid`), what logout and revocation end.
    pub session_id: SessionId,
    /// The device the session belongs to (`did`).
    pub device_id: DeviceId,
}

impl Caller {
    /// The caller of `request`. Missing means the route is not behind [`AuthnLayer`] (or the
    /// method is public): a wiring bug, reported as INTERNAL rather than trusted.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Caller, AuthnError> {
        request
            .extensions()
            .get::<Caller>()
            .copied()
            .ok_or(AuthnError::NoCaller)
    }
}

/// Why a caller could not be authenticated, or a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// No `authorization: Bearer <token>` metadata.
    #[error("no bearer token")]
    TokenMissing,
    /// The token is malformed, badly signed, signed by an unknown key, uses another
    /// algorithm, or has wrong claims. The text is for logs only.
    #[error("invalid token: {0}")]
    TokenInvalid(String),
    /// A genuine token past its `exp`.
    #[error("token expired")]
    TokenExpired,
    /// The session behind a genuine token was revoked.
    #[error("session revoked")]
    SessionRevoked,
    /// Revocations cannot be checked (the cache has been unreachable past the grace).
    #[error("revocation state unknown: cache unreachable")]
    RevocationUnknown,
    /// A cache call failed (recording or announcing a revocation).
    #[error(transparent)]
    Cache(#[from] echo_cache::CacheError),
    /// A key cannot be parsed, encoded or generated, or a token cannot be signed.
    #[error("signing key: {0}")]
    Key(String),
    /// The key file cannot be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A handler asked for the caller of a request that did not pass [`AuthnLayer`].
    #[error("no authenticated caller in the request (route not behind the authn layer?)")]
    NoCaller,
}

impl From<AuthnError> for Failure {
    fn from(err: AuthnError) -> Failure {
        let unauthenticated =
            |reason, message: &str| Failure::reason(Code::Unauthenticated, reason, message);
        match err {
            AuthnError::TokenMissing => unauthenticated(
                "TOKEN_MISSING",
                "this call needs `authorization: Bearer <access token>` metadata",
            ),
            AuthnError::TokenInvalid(_) => {
                unauthenticated("TOKEN_INVALID", "the access token is not valid")
            }
            AuthnError::TokenExpired => {
                unauthenticated("TOKEN_EXPIRED", "the access token has expired; refresh it")
            }
            AuthnError::SessionRevoked => {
                unauthenticated("SESSION_REVOKED", "the session has ended; sign in again")
            }
            AuthnError::RevocationUnknown => Failure::unavailable(
                "DEPENDENCY_UNAVAILABLE",
                "cannot check the session right now; retry shortly",
                RETRY_AFTER_OUTAGE,
            ),
            AuthnError::Cache(err) if err.is_unavailable() => Failure::unavailable(
                "DEPENDENCY_UNAVAILABLE",
                "the cache is unreachable; retry shortly",
                RETRY_AFTER_OUTAGE,
            ),
            err @ (AuthnError::Cache(_)
            | AuthnError::Key(_)
            | AuthnError::Io { .. }
            | AuthnError::NoCaller) => Failure::internal(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;
    use tonic_types::StatusExt;

    fn reason(err: AuthnError) -> (Code, String) {
        let status = Status::from(Failure::from(err));
        let info = status.get_error_details().error_info().cloned().unwrap();
        (status.code(), info.reason)
    }

    #[test]
    fn errors_map_to_stable_reasons() {
        let cases = [
            (
                AuthnError::TokenMissing,
                Code::Unauthenticated,
                "TOKEN_MISSING",
            ),
            (
                AuthnError::TokenInvalid("x".into()),
                Code::Unauthenticated,
                "TOKEN_INVALID",
            ),
            (
                AuthnError::TokenExpired,
                Code::Unauthenticated,
                "TOKEN_EXPIRED",
            ),
            (
                AuthnError::SessionRevoked,
                Code::Unauthenticated,
                "SESSION_REVOKED",
            ),
            (
                AuthnError::RevocationUnknown,
                Code::Unavailable,
                "DEPENDENCY_UNAVAILABLE",
            ),
            (AuthnError::NoCaller, Code::Internal, "INTERNAL"),
        ];
        for (err, code, expected) in cases {
            assert_eq!(reason(err), (code, expected.to_owned()));
        }
    }

    #[test]
    fn invalid_tokens_do_not_tell_the_client_why() {
        let status = Status::from(Failure::from(AuthnError::TokenInvalid(
            "unknown kid \"secret-detail\"".into(),
        )));
        assert!(!status.message().contains("secret-detail"));
    }
}
