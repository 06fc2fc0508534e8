//! The service credential (DESIGN §9, spec §0.2): internal contracts (`*InternalService`) are
//! for Echo's own services only. Every process of a deployment shares one secret; a caller
//! signs a short-lived HS256 JWT naming itself (`svc`) with it, and [`ServiceAuthLayer`] on
//! the internal port checks that token and puts a [`ServiceCaller`] into the request
//! extensions. User access tokens (EdDSA) are refused: a user can never call an internal
//! contract, even where the internal port is reachable.
//!
//! A symmetric secret fits here: every holder is a trusted Echo process, verification is
//! local (no call per request), and there is one key to rotate.
//!
//! One file on purpose: the secret, the tokens minted from it and the layer that checks them
//! change together (a claim added on one side is checked on the other); a third of it is tests.
//! Concretely, `mint_at` and `ServiceVerifier::new` agree on HS256, `iss` = `aud` =
//! `SERVICE_ISSUER` and the required claims, `REFRESH_BEFORE` and `LEEWAY_SECS` together absorb the
//! clock difference between minter and checker, and the tests mint with one side and check with the
//! other.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use echo_status::Failure;
use futures::future::BoxFuture;
use http::{Request, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::Code;
use tower::{Layer, Service};

use crate::AuthnError;

/// The `iss` and `aud` of every service token: no user access token carries them.
pub const SERVICE_ISSUER: &str = "echo-internal";

/// The shortest accepted secret.
pub const MIN_SERVICE_SECRET_BYTES: usize = 32;

/// How long a service token is valid.
const TOKEN_TTL: Duration = Duration::from_secs(5 * 60);

/// A cached token is replaced once less than this is left of it, so a token never expires
/// between being attached and being checked (even on a slightly fast verifier clock).
const REFRESH_BEFORE: Duration = Duration::from_secs(60);

/// Clock skew tolerated between the process that minted a token and the one checking it.
const LEEWAY_SECS: u64 = 30;

/// The deployment's shared service secret. Never printed (its `Debug` is redacted), never
/// serialised, and overwritten when the last copy is dropped. (jsonwebtoken keeps its own copy
/// inside the signing and verifying keys built from it.)
#[derive(Clone)]
pub struct ServiceSecret(Arc<SecretBytes>);

struct SecretBytes(Box<[u8]>);

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keeps the writes from being optimised away as dead stores.
        std::hint::black_box(&self.0);
    }
}

impl std::fmt::Debug for ServiceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceSecret(***)")
    }
}

impl ServiceSecret {
    /// The secret `bytes`; at least [`MIN_SERVICE_SECRET_BYTES`] long.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, AuthnError> {
        let bytes = SecretBytes(bytes.into().into_boxed_slice());
        if bytes.0.len() < MIN_SERVICE_SECRET_BYTES {
            return Err(AuthnError::Key(format!(
                "the service secret must be at least {MIN_SERVICE_SECRET_BYTES} bytes"
            )));
        }
        Ok(Self(Arc::new(bytes)))
    }

    fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_secret(&self.0.0)
    }

    fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_secret(&self.0.0)
    }
}

/// The claims of a service token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceClaims {
    /// The calling service, e.g. `notification`.
    pub svc: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// Always [`SERVICE_ISSUER`].
    pub iss: String,
    /// Always [`SERVICE_ISSUER`].
    pub aud: String,
}

/// Mints the bearer token one service attaches to its internal calls, and reuses it until a
/// minute before it expires. Cheap to clone (clones share the cache). Also a tonic
/// interceptor: `XInternalServiceClient::with_interceptor(channel, tokens.clone())`.
#[derive(Clone)]
pub struct ServiceTokens {
    inner: Arc<TokensInner>,
}

struct TokensInner {
    service: String,
    key: EncodingKey,
    cached: Mutex<Option<(String, SystemTime)>>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokens")
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

impl ServiceTokens {
    /// Tokens for `service` (the `svc` claim), signed with `secret`.
    pub fn new(secret: &ServiceSecret, service: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(TokensInner {
                service: service.into(),
                key: secret.encoding_key(),
                cached: Mutex::new(None),
            }),
        }
    }

    /// A valid token, to send as `authorization: Bearer <token>`: the cached one while more
    /// than a minute of it is left, a new one otherwise.
    pub fn bearer(&self) -> String {
        let now = SystemTime::now();
        let mut cached = self
            .inner
            .cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((token, expires)) = cached.as_ref()
            && expires
                .duration_since(now)
                .is_ok_and(|left| left > REFRESH_BEFORE)
        {
            return token.clone();
        }
        let (token, expires) = self.mint_at(now, TOKEN_TTL);
        *cached = Some((token.clone(), expires));
        token
    }

    /// A token issued at `issued_at`, valid for `ttl`, and when it expires.
    fn mint_at(&self, issued_at: SystemTime, ttl: Duration) -> (String, SystemTime) {
        // A clock before 1970 mints tokens that are already expired; verifiers then refuse
        // them, which is the right outcome for a broken clock.
        let iat = issued_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let exp = iat + ttl.as_secs();
        let claims = ServiceClaims {
            svc: self.inner.service.clone(),
            iat,
            exp,
            iss: SERVICE_ISSUER.to_owned(),
            aud: SERVICE_ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.inner.key)
            // HMAC over a JSON encoding of plain strings and integers cannot fail.
            .expect("service claims encode and sign");
        (token, UNIX_EPOCH + Duration::from_secs(exp))
    }
}

impl tonic::service::Interceptor for ServiceTokens {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let value = format!("Bearer {}", self.bearer())
            .parse()
            .map_err(|_| tonic::Status::internal("service token is not ascii"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

/// The authenticated caller of an internal RPC, put into the request extensions by
/// [`ServiceAuthLayer`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceCaller {
    /// The calling service (the token's `svc` claim).
    pub service: String,
}

impl ServiceCaller {
    /// The service calling `request`. Missing means the route is not behind
    /// [`ServiceAuthLayer`]: a wiring bug, reported as INTERNAL rather than trusted.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<ServiceCaller, AuthnError> {
        request
            .extensions()
            .get::<ServiceCaller>()
            .cloned()
            .ok_or(AuthnError::NoCaller)
    }
}

/// Why an internal call was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum ServiceAuthError {
    /// No `authorization: Bearer <token>` metadata.
    #[error("no bearer token")]
    TokenMissing,
    /// Not a service token of this deployment: malformed, another secret, another algorithm
    /// (a user access token), wrong claims. The text is for logs only.
    #[error("invalid service token: {0}")]
    TokenInvalid(String),
    /// A genuine service token past its `exp`.
    #[error("service token expired")]
    TokenExpired,
}

impl From<ServiceAuthError> for Failure {
    fn from(err: ServiceAuthError) -> Failure {
        let unauthenticated =
            |reason, message: &str| Failure::reason(Code::Unauthenticated, reason, message);
        match err {
            ServiceAuthError::TokenMissing => unauthenticated(
                "TOKEN_MISSING",
                "internal contracts need `authorization: Bearer <service token>` metadata",
            ),
            ServiceAuthError::TokenInvalid(_) => unauthenticated(
                "TOKEN_INVALID",
                "not a valid service token (user access tokens are refused here)",
            ),
            ServiceAuthError::TokenExpired => unauthenticated(
                "TOKEN_EXPIRED",
                "the service token has expired; mint a new one",
            ),
        }
    }
}

/// Checks service tokens: HS256 with the deployment's secret only, issuer and audience
/// [`SERVICE_ISSUER`], a non-empty `svc`.
struct ServiceVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl ServiceVerifier {
    fn new(secret: &ServiceSecret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[SERVICE_ISSUER]);
        validation.set_audience(&[SERVICE_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Self {
            key: secret.decoding_key(),
            validation,
        }
    }

    fn verify(&self, token: &str) -> Result<ServiceCaller, ServiceAuthError> {
        // `decode` checks the header's alg (HS256 only, so an EdDSA access token fails here)
        // and the signature before any claim: only a genuine token is reported as expired.
        let claims = jsonwebtoken::decode::<ServiceClaims>(token, &self.key, &self.validation)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => ServiceAuthError::TokenExpired,
                _ => ServiceAuthError::TokenInvalid(err.to_string()),
            })?
            .claims;
        if claims.svc.trim().is_empty() {
            return Err(ServiceAuthError::TokenInvalid("empty svc claim".to_owned()));
        }
        Ok(ServiceCaller {
            service: claims.svc,
        })
    }
}

/// The tower layer of the internal port: every call but health and reflection needs a valid
/// service token; failures are answered here, without calling the service.
#[derive(Clone)]
pub struct ServiceAuthLayer {
    verifier: Arc<ServiceVerifier>,
}

impl std::fmt::Debug for ServiceAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAuthLayer").finish_non_exhaustive()
    }
}

impl ServiceAuthLayer {
    /// A layer accepting tokens signed with `secret`.
    pub fn new(secret: &ServiceSecret) -> Self {
        Self {
            verifier: Arc::new(ServiceVerifier::new(secret)),
        }
    }
}

impl<S> Layer<S> for ServiceAuthLayer {
    type Service = ServiceAuthenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServiceAuthenticated {
            inner,
            verifier: Arc::clone(&self.verifier),
        }
    }
}

/// A service that only sees calls from Echo's own services. See [`ServiceAuthLayer`].
#[derive(Clone)]
pub struct ServiceAuthenticated<S> {
    inner: S,
    verifier: Arc<ServiceVerifier>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for ServiceAuthenticated<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAuthenticated")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Routes see the wrapped server under its own name.
impl<S: tonic::server::NamedService> tonic::server::NamedService for ServiceAuthenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<Request<B>> for ServiceAuthenticated<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        if crate::layer::ALWAYS_PUBLIC_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix))
        {
            return Box::pin(self.inner.call(request));
        }
        // Verification is synchronous, so the polled-ready inner service is called right
        // here (no clone, no request held across an await).
        match bearer_token(&request).and_then(|token| self.verifier.verify(token)) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(err) => {
                tracing::debug!(%err, method = %request.uri().path(), "internal call not authenticated");
                let status = tonic::Status::from(Failure::from(err));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// The token of `authorization: Bearer <token>`, as the user layer reads it.
fn bearer_token<B>(request: &Request<B>) -> Result<&str, ServiceAuthError> {
    crate::layer::bearer_token(request).map_err(|_| ServiceAuthError::TokenMissing)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tonic_types::StatusExt;
    use tower::ServiceExt as _;
    use uuid::Uuid;

    use super::*;
    use crate::{SigningKey, TokenIssuer};

    fn secret(fill: u8) -> ServiceSecret {
        ServiceSecret::new(vec![fill; 32]).unwrap()
    }

    /// Answers OK with the caller's service name in a header.
    async fn echo_caller(request: Request<()>) -> Result<Response<String>, Infallible> {
        let service = request
            .extensions()
            .get::<ServiceCaller>()
            .map(|c| c.service.clone())
            .unwrap_or_default();
        Ok(Response::new(service))
    }

    /// What the layer answers for `path` with `authorization`: the caller seen by the inner
    /// service, or the refusal's code and reason.
    async fn call(
        layer: &ServiceAuthLayer,
        path: &str,
        authorization: Option<String>,
    ) -> Result<String, (Code, String)> {
        let mut request = Request::builder().uri(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let service = layer.layer(tower::service_fn(echo_caller));
        let response = service.oneshot(request.body(()).unwrap()).await.unwrap();
        match tonic::Status::from_header_map(response.headers()) {
            None => Ok(response.into_body()),
            Some(status) => {
                let reason = status
                    .get_error_details()
                    .error_info()
                    .map(|i| i.reason.clone())
                    .unwrap_or_default();
                Err((status.code(), reason))
            }
        }
    }

    const METHOD: &str = "/echo.presence.v1.PresenceInternalService/GetDeliveryState";

    fn bearer(token: &str) -> Option<String> {
        Some(format!("Bearer {token}"))
    }

    fn refused(reason: &str) -> Result<String, (Code, String)> {
        Err((Code::Unauthenticated, reason.to_owned()))
    }

    #[tokio::test]
    async fn a_service_token_round_trips_and_names_the_caller() {
        let secret = secret(7);
        let tokens = ServiceTokens::new(&secret, "notification");
        let layer = ServiceAuthLayer::new(&secret);
        let token = tokens.bearer();
        assert_eq!(
            call(&layer, METHOD, bearer(&token)).await,
            Ok("notification".to_owned())
        );
        // Cached: the same token until a minute before it expires.
        assert_eq!(tokens.bearer(), token);
        assert_eq!(tokens.clone().bearer(), token);
    }

    #[tokio::test]
    async fn missing_tokens_are_refused_but_health_and_reflection_pass() {
        let layer = ServiceAuthLayer::new(&secret(7));
        assert_eq!(call(&layer, METHOD, None).await, refused("TOKEN_MISSING"));
        assert_eq!(
            call(&layer, METHOD, Some("Basic abc".into())).await,
            refused("TOKEN_MISSING")
        );
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(call(&layer, path, None).await, Ok(String::new()), "{path}");
        }
    }

    #[tokio::test]
    async fn expired_tokens_are_refused_as_expired() {
        let secret = secret(7);
        let layer = ServiceAuthLayer::new(&secret);
        let tokens = ServiceTokens::new(&secret, "notification");
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        let (token, expires) = tokens.mint_at(long_ago, TOKEN_TTL);
        assert!(expires < SystemTime::now());
        assert_eq!(
            call(&layer, METHOD, bearer(&token)).await,
            refused("TOKEN_EXPIRED")
        );
        // Within the leeway a token still passes (clocks differ a little between pods).
        let (recent, _) = tokens.mint_at(
            SystemTime::now() - TOKEN_TTL - Duration::from_secs(5),
            TOKEN_TTL,
        );
        assert!(call(&layer, METHOD, bearer(&recent)).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_signed_with_another_secret_is_invalid() {
        let layer = ServiceAuthLayer::new(&secret(7));
        let other = ServiceTokens::new(&secret(8), "notification").bearer();
        assert_eq!(
            call(&layer, METHOD, bearer(&other)).await,
            refused("TOKEN_INVALID")
        );
    }

    #[tokio::test]
    async fn a_user_access_token_is_invalid() {
        let layer = ServiceAuthLayer::new(&secret(7));
        let key = SigningKey::generate().unwrap();
        let issuer = TokenIssuer::new(&key, "echo").unwrap();
        let (access, _) = issuer
            .issue(
                Uuid::now_v7(),
                Uuid::now_v7(),
                Uuid::now_v7(),
                Duration::from_secs(300),
            )
            .unwrap();
        assert_eq!(
            call(&layer, METHOD, bearer(&access)).await,
            refused("TOKEN_INVALID")
        );
    }

    #[tokio::test]
    async fn tampered_tokens_are_invalid() {
        let secret = secret(7);
        let layer = ServiceAuthLayer::new(&secret);
        let token = ServiceTokens::new(&secret, "notification").bearer();
        let [header, payload, signature]: [&str; 3] =
            token.split('.').collect::<Vec<_>>().try_into().unwrap();
        // Another caller name under the original signature.
        let forged_claims = ServiceClaims {
            svc: "auth".into(),
            iat: 0,
            exp: u64::MAX / 2,
            iss: SERVICE_ISSUER.into(),
            aud: SERVICE_ISSUER.into(),
        };
        use base64::Engine as _;
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&forged_claims).unwrap());
        // A changed signature character (the first: the last one holds padding bits), and
        // `alg: none` with no signature.
        let first = if signature.starts_with('A') { "B" } else { "A" };
        let flipped = format!("{first}{}", &signature[1..]);
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        for tampered in [
            format!("{header}.{forged}.{signature}"),
            format!("{header}.{payload}.{flipped}"),
            format!("{none}.{payload}."),
            "not-a-jwt".to_owned(),
        ] {
            assert_eq!(
                call(&layer, METHOD, bearer(&tampered)).await,
                refused("TOKEN_INVALID"),
                "{tampered}"
            );
        }
    }

    #[test]
    fn secrets_are_long_and_never_printed() {
        assert!(ServiceSecret::new(vec![1; 31]).is_err());
        let secret = ServiceSecret::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("0123"), "{shown}");
        let tokens = format!("{:?}", ServiceTokens::new(&secret, "presence"));
        assert!(!tokens.contains("0123"), "{tokens}");
    }
}
