//! Identity material for one process: the key set that signs (auth) and verifies (every
//! service and the edge) access tokens, the revocation feed, the auth secret, and the service
//! secret that signs and checks the calls of internal contracts.
//!
//! Only a process running the auth target holds the signing key and the auth secret; every
//! other process verifies with public keys alone: `auth.jwt_public_keys` (+ previous ones) and,
//! unless switched off, the keys auth's GetSigningKeys answers at `upstreams.auth`, followed as
//! they rotate ([`crate::signing_keys`]).
//!
//! Embedded development runs generate what auth lacks into `data_dir` (keys survive restarts,
//! so tokens do too); production takes everything from configuration, and `Config::check`
//! refuses to start without it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use echo_authn::{
    AuthnLayer, KeySet, PublicKey, Revocations, ServiceAuthLayer, ServiceSecret, SigningKey,
    Verifier,
};
use echo_cache::Cache;
use echo_config::{Config, Target};
use tokio_util::sync::CancellationToken;

/// Keys, verifier and revocations shared by every target of this process.
#[derive(Clone)]
pub struct Identity {
    /// Signing key (auth only) and the configured public keys.
    pub keys: KeySet,
    /// Checks access tokens locally.
    pub verifier: Arc<Verifier>,
    /// The revocation feed (started).
    pub revocations: Revocations,
    /// The auth secret (OTP hashes, refresh-token derivation); empty without auth.
    pub secret: Vec<u8>,
    /// The secret every process of the deployment shares for service tokens.
    pub service_secret: ServiceSecret,
}

impl Identity {
    /// Load (or, embedded, generate) the material, fetch auth's keys where they are followed,
    /// and start the revocation feed.
    pub async fn load(
        config: &Config,
        cache: Arc<dyn Cache>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let signs = config.target.contains(Target::Auth);
        let keys = token_keys(config, signs)?;
        let verifier = Arc::new(Verifier::new(keys.public_keys(), &config.auth.jwt_issuer));
        // Of a list of auth instances (`http://a:8080,http://b:8080`) the first: every one
        // answers the same key set.
        let auth_upstream = config.upstreams.auth.as_deref();
        match auth_upstream.and_then(|list| list.split(',').map(str::trim).next()) {
            Some(auth) if !signs && config.auth.fetch_signing_keys => {
                let timings = crate::signing_keys::Timings::DEFAULT;
                crate::signing_keys::follow(
                    auth,
                    keys.clone(),
                    verifier.clone(),
                    shutdown.clone(),
                    timings,
                )
                .await?;
            }
            _ => {}
        }
        if verifier.kids().is_empty() {
            anyhow::bail!(
                "target `{}` has no key to verify access tokens with: set auth.jwt_public_keys \
                 (auth's public key, SPKI PEM) or upstreams.auth (to fetch them from auth)",
                config.target
            );
        }
        let revocations = Revocations::new(cache);
        revocations.start(shutdown.clone()).await;
        let secret = match (&config.auth.otp_hmac_key, signs) {
            (Some(secret), _) => secret.as_bytes().to_vec(),
            (None, true) => load_or_generate_secret(&config.data_dir.join("auth-secret"))?,
            (None, false) => Vec::new(),
        };
        let service_secret = match &config.service_secret {
            Some(secret) => ServiceSecret::new(secret.as_bytes()).context("service_secret")?,
            None => ServiceSecret::new(load_or_generate_secret(
                &config.data_dir.join("service-secret"),
            )?)
            .context("development service secret in data_dir")?,
        };
        Ok(Self {
            keys,
            verifier,
            revocations,
            secret,
            service_secret,
        })
    }

    /// The layer that authenticates callers of every service (auth's public methods pass).
    pub fn layer(&self) -> AuthnLayer {
        AuthnLayer::new(
            self.verifier.clone(),
            self.revocations.clone(),
            echo_auth::PUBLIC_METHODS,
        )
    }

    /// The layer that admits only Echo's own services to internal contracts.
    pub fn service_layer(&self) -> ServiceAuthLayer {
        ServiceAuthLayer::new(&self.service_secret)
    }
}

/// The configured key set: auth's signing key (configured, or in development generated into
/// `data_dir`) when this process signs, and every configured public key.
fn token_keys(config: &Config, signs: bool) -> anyhow::Result<KeySet> {
    let mut keys = if signs {
        KeySet::new(match &config.auth.jwt_signing_key {
            Some(pem) => SigningKey::from_pkcs8_pem(pem).context("auth.jwt_signing_key")?,
            None => SigningKey::load_or_generate(&config.data_dir)
                .context("development signing key in data_dir")?,
        })
    } else {
        KeySet::verify_only()
    };
    let lists = [
        ("auth.jwt_public_keys", &config.auth.jwt_public_keys),
        (
            "auth.jwt_previous_public_keys",
            &config.auth.jwt_previous_public_keys,
        ),
    ];
    for (name, pems) in lists {
        for (i, pem) in pems.iter().enumerate() {
            let key = PublicKey::from_spki_pem(pem).with_context(|| format!("{name}[{i}]"))?;
            keys = keys.with_verifying(key);
        }
    }
    Ok(keys)
}

/// A 256-bit secret kept in `path` (created 0600 on first use).
fn load_or_generate_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return base64::engine::general_purpose::STANDARD
            .decode(existing.trim())
            .with_context(|| format!("{} is not base64", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let secret: [u8; 32] = rand::random();
    let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
    write_private(path, encoded.as_bytes())?;
    Ok(secret.to_vec())
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    Ok(std::fs::write(path, contents)?)
}
