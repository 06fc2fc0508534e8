//! Access tokens (DESIGN §5): EdDSA JWTs that every service verifies locally, with no call to
//! the auth service per request.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::keys::{PublicKey, SigningKey};
use crate::{AuthnError, Caller};

/// The claims of an Echo access token. Ids are UUID strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The session (one per signed-in device); what revocation names.
    pub sid: String,
    /// The server-issued device.
    pub did: String,
    /// This token's own id.
    pub jti: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// The issuer; verifiers accept only their configured one.
    pub iss: String,
}

/// Signs access tokens with the current key (the auth service owns one).
pub struct TokenIssuer {
    kid: String,
    key: EncodingKey,
    issuer: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// An issuer signing with `key` and naming itself `issuer` in the `iss` claim.
    pub fn new(key: &SigningKey, issuer: impl Into<String>) -> Result<Self, AuthnError> {
        Ok(Self {
            kid: key.kid().to_owned(),
            key: EncodingKey::from_ed_der(&key.pkcs8_der()?),
            issuer: issuer.into(),
        })
    }

    /// A token for `user` on `session` and `device`, valid for `ttl` (whole seconds, at least
    /// one), and when it expires.
    pub fn issue(
        &self,
        user: Uuid,
        session: Uuid,
        device: Uuid,
        ttl: Duration,
    ) -> Result<(String, SystemTime), AuthnError> {
        self.issue_at(
            user,
            session,
            device,
            SystemTime::now(),
            ttl,
            Uuid::now_v7(),
        )
    }

    /// The token with exactly these claims. Ed25519 signatures are deterministic, so the same
    /// arguments give the same token byte for byte: a refresh retried after a lost response can
    /// be answered with the very pair it missed, without storing that pair anywhere.
    pub fn issue_at(
        &self,
        user: Uuid,
        session: Uuid,
        device: Uuid,
        issued_at: SystemTime,
        ttl: Duration,
        jti: Uuid,
    ) -> Result<(String, SystemTime), AuthnError> {
        let iat = issued_at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| AuthnError::Key("system clock is before 1970".to_owned()))?
            .as_secs();
        let exp = iat + ttl.as_secs().max(1);
        let claims = Claims {
            sub: user.to_string(),
            sid: session.to_string(),
            did: device.to_string(),
            jti: jti.to_string(),
            iat,
            exp,
            iss: self.issuer.clone(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|err| AuthnError::Key(format!("cannot sign a token: {err}")))?;
        Ok((token, UNIX_EPOCH + Duration::from_secs(exp)))
    }
}

/// Checks access tokens against a set of public keys, picking the key by the `kid` header.
///
/// Only EdDSA is accepted (no `none`, no HMAC with a public key as the secret), the issuer must
/// match, and expiry has no leeway: a token is good through the second of its `exp`. Servers
/// run NTP, and a client whose token a slightly fast clock rejects simply refreshes.
///
/// The key set can be replaced while the verifier is in use ([`Verifier::set_keys`]): a process
/// that fetches auth's keys follows a rotation without restarting. A token naming a `kid` the
/// set lacks wakes [`Verifier::unknown_kid`], so the fetcher can look for a new key early.
pub struct Verifier {
    keys: RwLock<Arc<HashMap<String, DecodingKey>>>,
    validation: Validation,
    unknown_kid: Notify,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.kids())
            .field("issuer", &self.validation.iss)
            .finish()
    }
}

impl Verifier {
    /// A verifier accepting tokens from `issuer` signed by any of `keys`.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a PublicKey>, issuer: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        Self {
            keys: RwLock::new(Arc::new(decoding_keys(keys))),
            validation,
            unknown_kid: Notify::new(),
        }
    }

    /// Accept exactly `keys` from now on (tokens of keys no longer listed stop verifying).
    pub fn set_keys<'a>(&self, keys: impl IntoIterator<Item = &'a PublicKey>) {
        let keys = Arc::new(decoding_keys(keys));
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// The ids of the accepted keys, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<_> = self.current().keys().cloned().collect();
        kids.sort();
        kids
    }

    /// Resolves once a token has named a `kid` this verifier does not know (perhaps a key
    /// that started signing since the set was fetched). Meant for one waiting task.
    pub async fn unknown_kid(&self) {
        self.unknown_kid.notified().await;
    }

    /// The caller a valid token names.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthnError> {
        let claims = self.verify_claims(token)?;
        let id = |field: &str, value: &str| {
            Uuid::parse_str(value)
                .map_err(|_| AuthnError::TokenInvalid(format!("claim {field} is not a uuid")))
        };
        Ok(Caller {
            user_id: id("sub", &claims.sub)?,
            session_id: id("sid", &claims.sid)?,
            device_id: id("did", &claims.did)?,
        })
    }

    /// All claims of a valid token.
    pub fn verify_claims(&self, token: &str) -> Result<Claims, AuthnError> {
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        let kid = header
            .kid
            .ok_or_else(|| AuthnError::TokenInvalid("no kid header".to_owned()))?;
        let keys = self.current();
        let Some(key) = keys.get(&kid) else {
            self.unknown_kid.notify_one();
            return Err(AuthnError::TokenInvalid(format!("unknown kid {kid:?}")));
        };
        // `decode` checks the header's alg against the validation (EdDSA only) before it
        // looks at the key, and the signature before any claim, so only a genuine token can
        // be reported as expired.
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(invalid)
    }

    fn current(&self) -> Arc<HashMap<String, DecodingKey>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn decoding_keys<'a>(
    keys: impl IntoIterator<Item = &'a PublicKey>,
) -> HashMap<String, DecodingKey> {
    keys.into_iter()
        .map(|key| (key.kid().to_owned(), DecodingKey::from_ed_der(&key.raw())))
        .collect()
}

fn invalid(err: jsonwebtoken::errors::Error) -> AuthnError {
    match err.kind() {
        ErrorKind::ExpiredSignature => AuthnError::TokenExpired,
        _ => AuthnError::TokenInvalid(err.to_string()),
    }
}
