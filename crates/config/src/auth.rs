//! Identity settings (DESIGN §5): who holds which key. Only the auth target signs access tokens
//! and hashes OTP codes, so only it holds `jwt_signing_key` and `otp_hmac_key`; every other
//! target verifies tokens with public keys alone, configured (`jwt_public_keys`) and/or fetched
//! from auth's GetSigningKeys at `upstreams.auth`. Secrets may come from files (`*_file`, e.g. a
//! mounted Kubernetes Secret or a compose secret), so they need not sit in the environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, MIN_SECRET_BYTES, Target, Targets, humantime_secs, is_weak_secret};

/// Identity settings. In development, the auth target generates missing keys into `data_dir`;
/// production refuses to start without strong ones (see [`crate::Config::check`]).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// The Ed25519 private key that signs access tokens (PKCS#8 PEM). Auth only. Secret.
    pub jwt_signing_key: Option<String>,
    /// A file holding `jwt_signing_key`, read at load. Setting both is an error.
    pub jwt_signing_key_file: Option<PathBuf>,
    /// The public keys (SPKI PEM, `-----BEGIN PUBLIC KEY-----`) whose tokens this process
    /// accepts: what verifiers (every target but auth) check tokens with. In auth they are
    /// accepted and published through GetSigningKeys too (the next key, before it signs).
    /// A list, or one string of concatenated PEM blocks (`ECHO_AUTH__JWT_PUBLIC_KEYS="$(cat
    /// public.pem)"`).
    #[serde(deserialize_with = "pem_list")]
    pub jwt_public_keys: Vec<String>,
    /// A file holding one or more SPKI PEM public keys, read at load into `jwt_public_keys`.
    /// Setting both is an error.
    pub jwt_public_keys_file: Option<PathBuf>,
    /// Older public keys (SPKI PEM) whose tokens are still accepted while keys rotate; a list
    /// or one string of PEM blocks, like `jwt_public_keys`.
    #[serde(deserialize_with = "pem_list")]
    pub jwt_previous_public_keys: Vec<String>,
    /// In a process without the auth target: also accept the keys auth's GetSigningKeys
    /// (at `upstreams.auth`) returns, fetched at start and refreshed as it says, so a rotation
    /// reaches every verifier without a restart. False: the configured keys only.
    pub fetch_signing_keys: bool,
    /// The `iss` claim of every token.
    pub jwt_issuer: String,
    /// The key that HMACs OTP codes before they are stored (at least 32 bytes). Auth only.
    /// Secret.
    pub otp_hmac_key: Option<String>,
    /// A file holding `otp_hmac_key`, read at load (surrounding whitespace is ignored).
    /// Setting both is an error.
    pub otp_hmac_key_file: Option<PathBuf>,
    /// Access token lifetime.
    #[serde(with = "humantime_secs")]
    pub access_token_ttl: Duration,
    /// Refresh token lifetime (each use rotates it).
    #[serde(with = "humantime_secs")]
    pub refresh_token_ttl: Duration,
    /// How long a repeated refresh with the same token returns the same new pair (a retry
    /// after a lost response) instead of counting as reuse.
    #[serde(with = "humantime_secs")]
    pub refresh_retry_grace: Duration,
    /// How OTP codes are delivered: `log` (development) or an `http://` webhook URL (an SMS
    /// gateway, or a sidecar that terminates TLS towards one). A password in it is redacted.
    pub otp_sender: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_signing_key: None,
            jwt_signing_key_file: None,
            jwt_public_keys: Vec::new(),
            jwt_public_keys_file: None,
            jwt_previous_public_keys: Vec::new(),
            fetch_signing_keys: true,
            jwt_issuer: "echo".into(),
            otp_hmac_key: None,
            otp_hmac_key_file: None,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_retry_grace: Duration::from_secs(30),
            otp_sender: "log".into(),
        }
    }
}

impl AuthSettings {
    /// Take the keys named by `*_file` from their files.
    pub(crate) fn read_files(&mut self) -> Result<(), ConfigError> {
        crate::read_secret_file(
            "auth.jwt_signing_key",
            &mut self.jwt_signing_key,
            self.jwt_signing_key_file.as_deref(),
        )?;
        crate::read_secret_file(
            "auth.otp_hmac_key",
            &mut self.otp_hmac_key,
            self.otp_hmac_key_file.as_deref(),
        )?;
        if let Some(path) = &self.jwt_public_keys_file {
            if !self.jwt_public_keys.is_empty() {
                return Err(ConfigError::Inconsistent(
                    "auth.jwt_public_keys and auth.jwt_public_keys_file are both set; set one"
                        .into(),
                ));
            }
            self.jwt_public_keys = public_key_blocks(path)?;
        }
        Ok(())
    }

    /// Mistakes that are wrong in any mode: a private key where a public one belongs.
    pub(crate) fn problem(&self) -> Option<String> {
        let lists = [
            ("auth.jwt_public_keys", &self.jwt_public_keys),
            (
                "auth.jwt_previous_public_keys",
                &self.jwt_previous_public_keys,
            ),
        ];
        for (name, keys) in lists {
            for (i, key) in keys.iter().enumerate() {
                if key.contains("PRIVATE KEY") {
                    return Some(format!(
                        "{name}[{i}] is a private key: give it the public half only \
                         (`openssl pkey -in signing.pem -pubout`)"
                    ));
                }
                if !key.contains("-----BEGIN PUBLIC KEY-----") {
                    return Some(format!(
                        "{name}[{i}] is not an SPKI PEM public key (-----BEGIN PUBLIC KEY-----)"
                    ));
                }
            }
        }
        None
    }

    /// What production refuses for `targets` (DESIGN §5): auth must have its secrets and a
    /// real OTP sender; everything else must have a public key and none of auth's secrets.
    pub(crate) fn production_problem(
        &self,
        targets: &Targets,
        auth_upstream: Option<&str>,
    ) -> Option<String> {
        if targets.contains(Target::Auth) {
            return self.signer_problem();
        }
        let alone = targets.to_string();
        if self.jwt_signing_key.is_some() || self.otp_hmac_key.is_some() {
            return Some(format!(
                "refuses auth.jwt_signing_key and auth.otp_hmac_key for target `{alone}`: only \
                 the auth target holds them; give it auth.jwt_public_keys (the public half) or \
                 upstreams.auth instead"
            ));
        }
        let fetches = self.fetch_signing_keys && auth_upstream.is_some();
        if self.jwt_public_keys.is_empty() && !fetches {
            return Some(format!(
                "needs a public key to verify access tokens with for target `{alone}`: set \
                 auth.jwt_public_keys (ECHO_AUTH__JWT_PUBLIC_KEYS, or auth.jwt_public_keys_file: \
                 auth's public key as SPKI PEM) or upstreams.auth (ECHO_UPSTREAMS__AUTH: the \
                 keys are then fetched from auth's GetSigningKeys)"
            ));
        }
        None
    }

    /// The auth target's own secrets.
    fn signer_problem(&self) -> Option<String> {
        match &self.jwt_signing_key {
            None => {
                return Some(
                    "needs auth.jwt_signing_key for the auth target (ECHO_AUTH__JWT_SIGNING_KEY, \
                     or auth.jwt_signing_key_file): development keys are generated only for \
                     embedded runs"
                        .into(),
                );
            }
            Some(key) if !key.contains("PRIVATE KEY") => {
                return Some(
                    "needs auth.jwt_signing_key as a PKCS#8 PEM Ed25519 private key".into(),
                );
            }
            Some(_) => {}
        }
        match &self.otp_hmac_key {
            None => {
                return Some(
                    "needs auth.otp_hmac_key for the auth target (ECHO_AUTH__OTP_HMAC_KEY, or \
                     auth.otp_hmac_key_file)"
                        .into(),
                );
            }
            Some(key) if is_weak_secret(key) => {
                return Some(format!(
                    "refuses a weak auth.otp_hmac_key: use at least {MIN_SECRET_BYTES} random bytes"
                ));
            }
            Some(_) => {}
        }
        if self.otp_sender == "log" {
            return Some(
                "refuses otp_sender = log (codes would only reach the log); set \
                 auth.otp_sender to a webhook URL"
                    .into(),
            );
        }
        if !self.otp_sender.starts_with("http://") {
            return Some(format!(
                "needs auth.otp_sender as an http:// webhook URL (TLS is terminated by a \
                 sidecar or gateway), got {}",
                crate::redact_url(&self.otp_sender)
            ));
        }
        None
    }

    /// These settings with the secrets hidden.
    pub(crate) fn redacted(&self) -> Self {
        let hide = |secret: &Option<String>| secret.as_ref().map(|_| "***".to_owned());
        Self {
            jwt_signing_key: hide(&self.jwt_signing_key),
            otp_hmac_key: hide(&self.otp_hmac_key),
            otp_sender: crate::redact_url(&self.otp_sender),
            ..self.clone()
        }
    }
}

/// Every `-----BEGIN PUBLIC KEY-----` block of the file at `path`, at least one.
fn public_key_blocks(path: &Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigError::Inconsistent(format!(
            "auth.jwt_public_keys_file {}: {error}",
            path.display()
        ))
    })?;
    let keys = pem_blocks(&text);
    if keys.is_empty() || text.contains("PRIVATE KEY") {
        return Err(ConfigError::Inconsistent(format!(
            "auth.jwt_public_keys_file {} must hold SPKI PEM public keys only \
             (-----BEGIN PUBLIC KEY-----)",
            path.display()
        )));
    }
    Ok(keys)
}

/// The PEM blocks (`-----BEGIN X-----` … `-----END X-----`) of `text`, each with a final
/// newline; text outside them is ignored.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let Some(end_marker) = rest[start..].find("-----END ") else {
            break;
        };
        let after = start + end_marker + "-----END ".len();
        let Some(close) = rest[after..].find("-----") else {
            break;
        };
        let end = after + close + "-----".len();
        blocks.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    blocks
}

/// A list of PEM strings, or one string of concatenated PEM blocks (what an environment
/// variable holds). A string without any block is kept whole, so the check names it.
fn pem_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Many(keys) => keys,
        OneOrMany::One(text) if text.trim().is_empty() => Vec::new(),
        OneOrMany::One(text) => match pem_blocks(&text) {
            blocks if blocks.is_empty() => vec![text],
            blocks => blocks,
        },
    })
}
