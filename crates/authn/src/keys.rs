//! Token-signing keys (DESIGN §5): Ed25519, each named by a `kid` derived from its public key,
//! grouped in a [`KeySet`] so keys rotate without downtime.
//!
//! Rotation: publish the next key's public half to every verifier first (in the key set and
//! through GetSigningKeys), then start signing with it while the old public key stays in the
//! set until the last token it signed has expired (one access-token lifetime), then drop it.
//!
//! One piece: every form one Ed25519 key takes (PKCS#8 PEM and DER, SPKI PEM, the JWK's `x`) and
//! the `kid` hashed from the same JWK members `jwk` publishes; split by form, the thumbprint in
//! `PublicKey::from_dalek` could drift from what GetSigningKeys serves, and the round-trip tests
//! would lose the pairs they compare.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand::TryRngCore;
use sha2::{Digest, Sha256};

use crate::AuthnError;

/// The file [`SigningKey::load_or_generate`] keeps the development key in.
pub const DEV_KEY_FILE: &str = "jwt-signing-key.pem";

/// The private half of a token-signing key. Its `Debug` shows the `kid` only.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, AuthnError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(seed.as_mut())
            .map_err(|err| AuthnError::Key(format!("no randomness for a new key: {err}")))?;
        Ok(Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(
            &seed,
        )))
    }

    /// Parses a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`, as written by
    /// `openssl genpkey -algorithm ed25519` or [`SigningKey::to_pkcs8_pem`]).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, AuthnError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|err| AuthnError::Key(format!("not an ed25519 pkcs#8 private key: {err}")))?;
        Ok(Self::from_dalek(key))
    }

    /// The key as PKCS#8 PEM; wiped from memory when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, AuthnError> {
        self.pkcs8_v1()
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|err| AuthnError::Key(format!("cannot encode the private key: {err}")))
    }

    /// The development default: reads `dir/jwt-signing-key.pem`, or on first run generates a
    /// key and writes it there readable by the owner only (0600). Production takes keys from
    /// configuration instead (DESIGN §5).
    pub fn load_or_generate(dir: &Path) -> Result<Self, AuthnError> {
        let path = dir.join(DEV_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(pem) => {
                warn_if_readable_by_others(&path);
                return Self::from_pkcs8_pem(&pem);
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(AuthnError::Io { path, source }),
        }
        std::fs::create_dir_all(dir).map_err(|source| AuthnError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let key = Self::generate()?;
        if write_new(&path, key.to_pkcs8_pem()?.as_bytes())? {
            tracing::info!(path = %path.display(), kid = key.kid(), "generated a development token-signing key");
            Ok(key)
        } else {
            // Another process created it first; use theirs so both sign with one key.
            let pem = std::fs::read_to_string(&path).map_err(|source| AuthnError::Io {
                path: path.clone(),
                source,
            })?;
            Self::from_pkcs8_pem(&pem)
        }
    }

    /// The key id that tokens signed with this key carry in their `kid` header.
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The public half, for verifiers.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// PKCS#8 DER, the form `jsonwebtoken` signs with.
    pub(crate) fn pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, AuthnError> {
        let doc = self
            .pkcs8_v1()
            .to_pkcs8_der()
            .map_err(|err| AuthnError::Key(format!("cannot encode the private key: {err}")))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// The key as a PKCS#8 v1 structure (RFC 8410: the private key alone), the form OpenSSL
    /// and every other tool reads. ed25519-dalek's own encoding is v2 (RFC 5958, with the
    /// public key), which OpenSSL 3.0 refuses ("unsupported"); both parse here.
    fn pkcs8_v1(&self) -> ed25519_dalek::pkcs8::KeypairBytes {
        ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        }
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> Self {
        let public = PublicKey::from_dalek(key.verifying_key());
        Self { key, public }
    }
}

/// The public half of a token-signing key, with its `kid`.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kid: String,
    key: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("kid", &self.kid).finish()
    }
}

impl PublicKey {
    /// Parses an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_spki_pem(pem: &str) -> Result<Self, AuthnError> {
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
            .map_err(|err| AuthnError::Key(format!("not an ed25519 spki public key: {err}")))?;
        Ok(Self::from_dalek(key))
    }

    /// Parses the JWK `x` member (base64url, 32 bytes), as GetSigningKeys returns it.
    pub fn from_jwk_x(x: &str) -> Result<Self, AuthnError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|err| AuthnError::Key(format!("jwk x is not base64url: {err}")))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| AuthnError::Key("jwk x is not 32 bytes".to_owned()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|err| AuthnError::Key(format!("jwk x is not an ed25519 point: {err}")))?;
        Ok(Self::from_dalek(key))
    }

    /// The key as SPKI PEM.
    pub fn to_spki_pem(&self) -> Result<String, AuthnError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|err| AuthnError::Key(format!("cannot encode the public key: {err}")))
    }

    /// The key id: the RFC 7638 JWK thumbprint (SHA-256, base64url, 43 characters), so it is
    /// stable, needs no bookkeeping, and any JOSE library can recompute it from the JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key in JWK (RFC 8037 OKP) terms, for GetSigningKeys.
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kid: self.kid.clone(),
            kty: "OKP",
            alg: "EdDSA",
            crv: "Ed25519",
            x: self.x(),
        }
    }

    /// The raw 32-byte public key.
    pub(crate) fn raw(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    fn x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.as_bytes())
    }

    fn from_dalek(key: ed25519_dalek::VerifyingKey) -> Self {
        let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self { kid, key }
    }
}

/// One public key as a JWK (RFC 8037), the shape of GetSigningKeys' `SigningKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// Key id, matching the `kid` header of the tokens it signed.
    pub kid: String,
    /// Always `OKP`.
    pub kty: &'static str,
    /// Always `EdDSA`.
    pub alg: &'static str,
    /// Always `Ed25519`.
    pub crv: &'static str,
    /// The public key, base64url without padding.
    pub x: String,
}

/// The key that signs new tokens (auth only) plus every public key whose tokens are accepted.
///
/// Only the auth service holds a signing key; every other process verifies with public keys
/// alone ([`KeySet::verify_only`]), so a leak of a verifier's configuration cannot mint tokens.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    signing: Option<SigningKey>,
    verifying: BTreeMap<String, PublicKey>,
}

impl KeySet {
    /// A set that signs with `signing` and accepts its tokens.
    pub fn new(signing: SigningKey) -> Self {
        let mut verifying = BTreeMap::new();
        verifying.insert(signing.kid().to_owned(), signing.public_key().clone());
        Self {
            signing: Some(signing),
            verifying,
        }
    }

    /// A set that signs nothing and accepts no token yet: a verifier's, to which
    /// [`KeySet::with_verifying`] adds the public keys it accepts.
    pub fn verify_only() -> Self {
        Self::default()
    }

    /// Also accepts tokens signed by `key` (a retired key whose tokens have not expired yet,
    /// or the next key, published before it starts signing).
    pub fn with_verifying(mut self, key: PublicKey) -> Self {
        self.verifying.insert(key.kid().to_owned(), key);
        self
    }

    /// The key new tokens are signed with; `None` in a verifier.
    pub fn signing_key(&self) -> Option<&SigningKey> {
        self.signing.as_ref()
    }

    /// Every accepted public key, the signing key's included.
    pub fn public_keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.verifying.values()
    }

    /// True when no key is accepted at all.
    pub fn is_empty(&self) -> bool {
        self.verifying.is_empty()
    }

    /// Every accepted key as a JWK, for the GetSigningKeys RPC.
    pub fn public_jwks(&self) -> Vec<Jwk> {
        self.verifying.values().map(PublicKey::jwk).collect()
    }
}

/// Writes `contents` to `path` only if nothing is there yet, atomically and with mode 0600:
/// written to a private temporary file first and then hard-linked into place, which fails
/// rather than replaces when another process won the race. Returns false if it lost.
fn write_new(path: &Path, contents: &[u8]) -> Result<bool, AuthnError> {
    let io = |path: &Path| {
        let path: PathBuf = path.to_owned();
        move |source| AuthnError::Io { path, source }
    };
    let temp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp).map_err(io(&temp))?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    drop(file);
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(io(path)(source)),
    }
}

/// A private key others can read is a leak waiting to happen; say so rather than refuse, since
/// this is the development default only.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "token-signing key is readable by others; chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_and_kid_is_stable() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(key.kid(), again.kid());
        let public = PublicKey::from_spki_pem(&key.public_key().to_spki_pem().unwrap()).unwrap();
        assert_eq!(&public, key.public_key());
        let from_jwk = PublicKey::from_jwk_x(&key.public_key().jwk().x).unwrap();
        assert_eq!(&from_jwk, key.public_key());
        assert_eq!(key.kid().len(), 43);
        assert_ne!(key.kid(), SigningKey::generate().unwrap().kid());
    }

    #[test]
    fn the_pem_is_standard_pkcs8_that_openssl_reads() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{}",
            pem.as_str()
        );
        // RFC 8410 §10.3: version v1 (0), the Ed25519 OID, the key; no public key.
        let (_, der) = ed25519_dalek::pkcs8::spki::der::pem::decode_vec(pem.as_bytes()).unwrap();
        let mut expected = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03];
        expected.extend_from_slice(&[0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
        expected.extend_from_slice(&key.key.to_bytes());
        assert_eq!(der, expected);
        assert_eq!(*key.pkcs8_der().unwrap(), der);
        // Keys written before (PKCS#8 v2, with the public key) still load.
        let v2 = key.key.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(SigningKey::from_pkcs8_pem(&v2).unwrap().kid(), key.kid());
        // And OpenSSL itself accepts the file, where it is installed.
        let dir = tempfile::tempdir().unwrap();
        let written = SigningKey::load_or_generate(dir.path()).unwrap();
        let path = dir.path().join(DEV_KEY_FILE);
        let pem = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            SigningKey::from_pkcs8_pem(&pem).unwrap().kid(),
            written.kid()
        );
        match std::process::Command::new("openssl")
            .args(["pkey", "-noout", "-in"])
            .arg(&path)
            .output()
        {
            Ok(out) => assert!(
                out.status.success(),
                "openssl pkey refused the key: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(error) => eprintln!("openssl not installed ({error}); checked the DER instead"),
        }
    }

    #[test]
    fn kid_is_the_rfc_7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of the A.2 public key.
        let key = PublicKey::from_jwk_x("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let body = pem.lines().nth(1).unwrap().to_owned();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()));
        assert!(!shown.contains(&body));
    }

    #[test]
    fn key_set_lists_every_accepted_key() {
        let old = SigningKey::generate().unwrap();
        let new = SigningKey::generate().unwrap();
        let set = KeySet::new(new.clone()).with_verifying(old.public_key().clone());
        let mut kids: Vec<_> = set.public_jwks().into_iter().map(|j| j.kid).collect();
        kids.sort();
        let mut expected = vec![old.kid().to_owned(), new.kid().to_owned()];
        expected.sort();
        assert_eq!(kids, expected);
        assert_eq!(set.signing_key().unwrap().kid(), new.kid());
        assert!(KeySet::verify_only().signing_key().is_none());
        assert!(KeySet::verify_only().is_empty());
        assert!(
            set.public_jwks()
                .iter()
                .all(|j| j.alg == "EdDSA" && j.crv == "Ed25519")
        );
    }

    #[test]
    fn dev_key_is_written_private_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = SigningKey::load_or_generate(&dir.path().join("data")).unwrap();
        let second = SigningKey::load_or_generate(&dir.path().join("data")).unwrap();
        assert_eq!(first.kid(), second.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("data").join(DEV_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
