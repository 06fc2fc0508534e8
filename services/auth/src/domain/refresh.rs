//! Refresh tokens: opaque, 256-bit, stored only as SHA-256, rotated on every use.
//!
//! A rotation's successor is derived from the old token with a server key
//! (`HMAC(key, old)`), and the access token issued with it from the rotation time, so a
//! refresh repeated within the grace (a retry after a lost response) recomputes exactly the
//! pair it missed, while nothing but hashes is ever stored.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Makes, hashes and derives refresh tokens.
#[derive(Clone)]
pub struct RefreshTokens {
    key: Arc<[u8]>,
}

impl RefreshTokens {
    /// Derivations under `key` (a server secret).
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.into() }
    }

    /// A fresh random token (32 bytes, base64url).
    pub fn generate(&self) -> String {
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    }

    /// The stored form of `token`.
    pub fn hash(token: &str) -> Vec<u8> {
        Sha256::digest(token.as_bytes()).to_vec()
    }

    /// The token that replaces `old` when it is used.
    pub fn successor(&self, old: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"echo refresh successor\0");
        mac.update(old.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The access token id that goes with refresh token `token` (stable across retries).
    pub fn access_token_id(token: &str) -> Uuid {
        let digest = Sha256::digest([b"echo jti\0".as_slice(), token.as_bytes()].concat());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_are_deterministic_and_keyed() {
        let tokens = RefreshTokens::new(b"k1");
        let old = tokens.generate();
        assert_eq!(tokens.successor(&old), tokens.successor(&old));
        assert_ne!(
            tokens.successor(&old),
            RefreshTokens::new(b"k2").successor(&old)
        );
        assert_ne!(tokens.generate(), tokens.generate());
        assert_eq!(RefreshTokens::hash(&old).len(), 32);
        assert_eq!(
            RefreshTokens::access_token_id(&old),
            RefreshTokens::access_token_id(&old)
        );
    }
}
