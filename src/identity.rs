//! Identity material for one process: the key set that signs (auth) and verifies (every
//! service and the edge) access tokens, the revocation feed, the auth secret, and the service
//! secret that signs and checks the calls of internal contracts.
//!
//! Embedded development runs generate what is missing into `data_dir` (keys survive restarts,
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
use echo_config::Config;
use tokio_util::sync::CancellationToken;

/// Keys, verifier and revocations shared by every target of this process.
#[derive(Clone)]
pub struct Identity {
    /// Signing key and accepted public keys.
    pub keys: KeySet,
    /// Checks access tokens locally.
    pub verifier: Arc<Verifier>,
    /// The revocation feed (started).
    pub revocations: Revocations,
    /// The auth secret (OTP hashes, refresh-token derivation).
    pub secret: Vec<u8>,
    /// The secret every process of the deployment shares for service tokens.
    pub service_secret: ServiceSecret,
}

impl Identity {
    /// Load (or, embedded, generate) the material and start the revocation feed.
    pub async fn load(
        config: &Config,
        cache: Arc<dyn Cache>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let signing = match &config.auth.jwt_signing_key {
            Some(pem) => SigningKey::from_pkcs8_pem(pem).context("auth.jwt_signing_key")?,
            None => SigningKey::load_or_generate(&config.data_dir)
                .context("development signing key in data_dir")?,
        };
        let mut keys = KeySet::new(signing);
        for (i, pem) in config.auth.jwt_previous_public_keys.iter().enumerate() {
            let key = PublicKey::from_spki_pem(pem)
                .with_context(|| format!("auth.jwt_previous_public_keys[{i}]"))?;
            keys = keys.with_verifying(key);
        }
        let verifier = Arc::new(Verifier::new(keys.public_keys(), &config.auth.jwt_issuer));
        let revocations = Revocations::new(cache);
        revocations.start(shutdown.clone()).await;
        let secret = match &config.auth.otp_hmac_key {
            Some(secret) => secret.as_bytes().to_vec(),
            None => load_or_generate_secret(&config.data_dir.join("auth-secret"))?,
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
