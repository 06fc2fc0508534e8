//! Private keys from their configured forms to what jsonwebtoken signs with.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};

use crate::ConfigError;

/// An RSA key from PKCS#8 (`BEGIN PRIVATE KEY`, what Google's service-account files hold) or
/// PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM. jsonwebtoken's RustCrypto backend signs with PKCS#1
/// DER, and parsing the PEM here keeps its `use_pem` feature (and simple_asn1) out.
pub(crate) fn rsa_encoding_key(pem: &str, what: &'static str) -> Result<EncodingKey, ConfigError> {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|error| ConfigError::invalid(what, error))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|error| ConfigError::invalid(what, error))?;
    Ok(EncodingKey::from_rsa_der(der.as_bytes()))
}

/// A P-256 key from PKCS#8 PEM (Apple's `.p8`), SEC1 PEM (`BEGIN EC PRIVATE KEY`) or the
/// base64url raw scalar web-push tools print.
pub(crate) fn p256_secret(text: &str, what: &'static str) -> Result<p256::SecretKey, ConfigError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return p256::SecretKey::from_pkcs8_pem(text)
            .or_else(|_| p256::SecretKey::from_sec1_pem(text))
            .map_err(|error| ConfigError::invalid(what, error));
    }
    let raw = decode_base64url(text).ok_or_else(|| ConfigError::invalid(what, "not base64url"))?;
    p256::SecretKey::from_slice(&raw).map_err(|error| ConfigError::invalid(what, error))
}

/// jsonwebtoken's RustCrypto backend signs ES256 with PKCS#8 DER.
pub(crate) fn p256_encoding_key(
    secret: &p256::SecretKey,
    what: &'static str,
) -> Result<EncodingKey, ConfigError> {
    let der = secret
        .to_pkcs8_der()
        .map_err(|error| ConfigError::invalid(what, error))?;
    Ok(EncodingKey::from_ec_der(der.as_bytes()))
}

/// base64url with or without padding (browsers omit it, some libraries keep it).
pub(crate) fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}
