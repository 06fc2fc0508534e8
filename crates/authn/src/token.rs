//! Access tokens (DESIGN §5): EdDSA JWTs that every service verifies locally, with no call to
//! the auth service per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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
///
/// [`Verifier::verify`] remembers the tokens it has verified (see [`Verified`]): a client sends
/// the same token on every call for its lifetime, and the Ed25519 check was a fifth of a
/// heartbeat's CPU.
pub struct Verifier {
    keys: RwLock<Arc<Keys>>,
    validation: Validation,
    unknown_kid: Notify,
}

/// One key set and the tokens verified with it. Replacing the keys replaces this whole value,
/// so a token verified by a key that is no longer accepted is forgotten with it — even when
/// its verification was still in flight as the keys changed (it lands in the old value).
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    verified: Verified,
}

/// Valid tokens already verified, by the SHA-256 of the whole token (a hit needs every byte
/// to match: a genuine signature under a forged payload hashes elsewhere), each with its
/// caller and `exp`. A hit costs a hash of the token (~1 µs) instead of an Ed25519 verify
/// (~45 µs here) and is still refused once expired. Only successes are remembered. Bounded:
/// [`Verified::CAPACITY`] entries of ~90 bytes (~12 MiB with the map's spare buckets); when
/// full, expired entries go, and if that frees too little, all of them (each is then verified
/// once more).
#[derive(Default)]
struct Verified(Mutex<HashMap<[u8; 32], (Caller, u64)>>);

impl Verified {
    const CAPACITY: usize = 65_536;

    fn get(&self, digest: &[u8; 32]) -> Option<(Caller, u64)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .copied()
    }

    fn insert(&self, digest: [u8; 32], caller: Caller, exp: u64) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= Self::CAPACITY {
            let now = jsonwebtoken::get_current_timestamp();
            map.retain(|_, (_, exp)| *exp >= now);
            if map.len() >= Self::CAPACITY * 3 / 4 {
                map.clear();
            }
        }
        map.insert(digest, (caller, exp));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
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
            keys: RwLock::new(Keys::new(keys)),
            validation,
            unknown_kid: Notify::new(),
        }
    }

    /// Accept exactly `keys` from now on (tokens of keys no longer listed stop verifying).
    pub fn set_keys<'a>(&self, keys: impl IntoIterator<Item = &'a PublicKey>) {
        let keys = Keys::new(keys);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// The ids of the accepted keys, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<_> = self.current().by_kid.keys().cloned().collect();
        kids.sort();
        kids
    }

    /// Resolves once a token has named a `kid` this verifier does not know (perhaps a key
    /// that started signing since the set was fetched). Meant for one waiting task.
    pub async fn unknown_kid(&self) {
        self.unknown_kid.notified().await;
    }

    /// The caller a valid token names; a token verified before (with the current keys) is
    /// only checked for expiry.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthnError> {
        let keys = self.current();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((caller, exp)) = keys.verified.get(&digest) {
            // The rule `decode` applies with no leeway: good through the second of `exp`.
            return if exp >= jsonwebtoken::get_current_timestamp() {
                Ok(caller)
            } else {
                Err(AuthnError::TokenExpired)
            };
        }
        let claims = self.verify_with(&keys, token)?;
        let caller = Caller {
            user_id: claim_id("sub", &claims.sub)?,
            session_id: claim_id("sid", &claims.sid)?,
            device_id: claim_id("did", &claims.did)?,
        };
        keys.verified.insert(digest, caller, claims.exp);
        Ok(caller)
    }

    /// All claims of a valid token (always fully verified).
    pub fn verify_claims(&self, token: &str) -> Result<Claims, AuthnError> {
        self.verify_with(&self.current(), token)
    }

    fn verify_with(&self, keys: &Keys, token: &str) -> Result<Claims, AuthnError> {
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        let kid = header
            .kid
            .ok_or_else(|| AuthnError::TokenInvalid("no kid header".to_owned()))?;
        let Some(key) = keys.by_kid.get(&kid) else {
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

    fn current(&self) -> Arc<Keys> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Keys {
    fn new<'a>(keys: impl IntoIterator<Item = &'a PublicKey>) -> Arc<Self> {
        Arc::new(Self {
            by_kid: keys
                .into_iter()
                .map(|key| (key.kid().to_owned(), DecodingKey::from_ed_der(&key.raw())))
                .collect(),
            verified: Verified::default(),
        })
    }
}

/// The id in claim `field`: parsed here, once, into the caller's typed ids.
fn claim_id<T: From<Uuid>>(field: &str, value: &str) -> Result<T, AuthnError> {
    Uuid::parse_str(value)
        .map(T::from)
        .map_err(|_| AuthnError::TokenInvalid(format!("claim {field} is not a uuid")))
}

fn invalid(err: jsonwebtoken::errors::Error) -> AuthnError {
    match err.kind() {
        ErrorKind::ExpiredSignature => AuthnError::TokenExpired,
        _ => AuthnError::TokenInvalid(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_ids::{DeviceId, SessionId, UserId};

    fn caller() -> Caller {
        Caller {
            user_id: UserId::new_v7(),
            session_id: SessionId::new_v7(),
            device_id: DeviceId::new_v7(),
        }
    }

    #[test]
    fn the_remembered_tokens_are_bounded_and_the_expired_go_first() {
        let verified = Verified::default();
        let now = jsonwebtoken::get_current_timestamp();
        let digest = |i: usize| -> [u8; 32] { Sha256::digest(i.to_be_bytes()).into() };
        // Full: every other entry expired.
        for i in 0..Verified::CAPACITY {
            let exp = if i % 2 == 0 { now - 1 } else { now + 900 };
            verified.insert(digest(i), caller(), exp);
        }
        assert_eq!(verified.len(), Verified::CAPACITY);
        verified.insert(digest(usize::MAX), caller(), now + 900);
        assert_eq!(
            verified.len(),
            Verified::CAPACITY / 2 + 1,
            "the expired half went"
        );
        assert!(verified.get(&digest(1)).is_some(), "a live entry stayed");
        assert!(verified.get(&digest(0)).is_none(), "an expired one went");

        // Full of live entries: all go, and the map never grows past its capacity.
        for i in 0..Verified::CAPACITY {
            verified.insert(digest(i), caller(), now + 900);
            assert!(verified.len() <= Verified::CAPACITY);
        }
        verified.insert(digest(usize::MAX - 1), caller(), now + 900);
        assert!(verified.len() <= Verified::CAPACITY);
    }
}
