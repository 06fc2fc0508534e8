//! The one tower layer that authenticates callers (STYLE 6): verify the bearer token, check
//! the session is not revoked, put the [`Caller`] into the request extensions. Failures are
//! answered here, without calling the service.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::revocation::{Decision, Revocations};
use crate::token::Verifier;
use crate::{AuthnError, Caller};

/// Path prefixes that never need a token: operators and load balancers probe health and
/// reflection without credentials.
pub(crate) const ALWAYS_PUBLIC_PREFIXES: [&str; 2] = ["/grpc.health.v1.", "/grpc.reflection."];

/// Builds [`Authenticated`] services.
#[derive(Clone)]
pub struct AuthnLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuthnLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthnLayer")
            .field("public_methods", &self.shared.public_methods)
            .finish_non_exhaustive()
    }
}

struct Shared {
    verifier: Arc<Verifier>,
    revocations: Revocations,
    public_methods: &'static [&'static str],
}

impl AuthnLayer {
    /// A layer checking tokens with `verifier` and sessions with `revocations`, letting the
    /// full method paths in `public_methods` (e.g. `/echo.auth.v1.AuthService/Register`),
    /// health and reflection through without a token.
    pub fn new(
        verifier: Arc<Verifier>,
        revocations: Revocations,
        public_methods: &'static [&'static str],
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                verifier,
                revocations,
                public_methods,
            }),
        }
    }
}

impl<S> Layer<S> for AuthnLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A service that only sees authenticated requests (or public ones). See [`AuthnLayer`].
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Authenticated<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Routes see the wrapped server under its own name, so `Routes::add_service` works as it
/// would on the generated server itself.
impl<S: tonic::server::NamedService> tonic::server::NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<Request<B>> for Authenticated<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if self.shared.is_public(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        // Verify before the future: it is synchronous, and the future then need not hold the
        // request across an await (which would demand a `Sync` body).
        let verified = bearer_token(&request).and_then(|token| self.shared.verifier.verify(token));
        // The clone is the one tower's readiness contract requires: `self.inner` was polled
        // ready, so it is the one that serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let checked = match verified {
                Ok(caller) => shared.check_session(caller).await,
                Err(err) => Err(err),
            };
            match checked {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(err) => {
                    tracing::debug!(%err, method = %request.uri().path(), "request not authenticated");
                    let status = tonic::Status::from(echo_status::Failure::from(err));
                    Ok(status.into_http())
                }
            }
        })
    }
}

impl Shared {
    fn is_public(&self, path: &str) -> bool {
        self.public_methods.contains(&path)
            || ALWAYS_PUBLIC_PREFIXES
                .iter()
                .any(|prefix| path.starts_with(prefix))
    }

    async fn check_session(&self, caller: Caller) -> Result<Caller, AuthnError> {
        match self.revocations.is_revoked(caller.session_id).await {
            Decision::Allowed => Ok(caller),
            Decision::Revoked => Err(AuthnError::SessionRevoked),
            Decision::Unavailable => Err(AuthnError::RevocationUnknown),
        }
    }
}

/// The token of `authorization: Bearer <token>` (the scheme is case-insensitive, RFC 6750).
pub(crate) fn bearer_token<B>(request: &Request<B>) -> Result<&str, AuthnError> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthnError::TokenMissing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthnError::TokenMissing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthnError::TokenMissing);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &str) -> Request<()> {
        Request::builder()
            .header("authorization", value)
            .body(())
            .unwrap()
    }

    #[test]
    fn bearer_tokens_are_parsed_leniently_about_case_only() {
        assert_eq!(
            bearer_token(&with_authorization("Bearer abc")).unwrap(),
            "abc"
        );
        assert_eq!(
            bearer_token(&with_authorization("bearer abc")).unwrap(),
            "abc"
        );
        for value in ["Basic abc", "Bearer", "Bearer ", "abc"] {
            assert!(
                matches!(
                    bearer_token(&with_authorization(value)),
                    Err(AuthnError::TokenMissing)
                ),
                "{value}"
            );
        }
        assert!(matches!(
            bearer_token(&Request::new(())),
            Err(AuthnError::TokenMissing)
        ));
    }
}
