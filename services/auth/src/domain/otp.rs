//! One-time codes: random, single-use, expiring, stored only as a keyed hash (a plain hash of
//! six digits is reversed in a millisecond), delivered through an [`OtpSender`].

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::phone::PhoneNumber;
use crate::store::OtpPurpose;

/// Digits in a code.
pub const CODE_LENGTH: usize = 6;

/// Delivers codes to phones (SMS gateway, webhook, or the log in development).
#[async_trait]
pub trait OtpSender: Send + Sync + 'static {
    /// Send `code` to `phone`.
    async fn send(
        &self,
        phone: &PhoneNumber,
        purpose: OtpPurpose,
        code: &str,
    ) -> Result<(), String>;
}

/// Development sender: writes the code to the log, where a newcomer finds it.
#[derive(Debug, Default)]
pub struct LogOtpSender;

#[async_trait]
impl OtpSender for LogOtpSender {
    async fn send(
        &self,
        phone: &PhoneNumber,
        purpose: OtpPurpose,
        code: &str,
    ) -> Result<(), String> {
        // Development only: production refuses `otp_sender = log` at start-up.
        tracing::info!(phone = %phone, purpose = purpose.as_str(), code, "otp code (development sender)");
        Ok(())
    }
}

/// Keeps the codes it was asked to send, for tests that read them like a user reads an SMS.
#[derive(Debug, Default, Clone)]
pub struct CapturingOtpSender {
    sent: Arc<Mutex<Vec<(String, OtpPurpose, String)>>>,
}

impl CapturingOtpSender {
    /// The last code sent to `phone` for `purpose`.
    pub fn last_code(&self, phone: &str, purpose: OtpPurpose) -> Option<String> {
        let sent = self.sent.lock().expect("sent codes");
        sent.iter()
            .rev()
            .find(|(p, k, _)| p == phone && *k == purpose)
            .map(|(_, _, c)| c.clone())
    }

    /// How many codes were sent to `phone`.
    pub fn count(&self, phone: &str) -> usize {
        self.sent
            .lock()
            .expect("sent codes")
            .iter()
            .filter(|(p, _, _)| p == phone)
            .count()
    }
}

#[async_trait]
impl OtpSender for CapturingOtpSender {
    async fn send(
        &self,
        phone: &PhoneNumber,
        purpose: OtpPurpose,
        code: &str,
    ) -> Result<(), String> {
        self.sent
            .lock()
            .expect("sent codes")
            .push((phone.to_string(), purpose, code.to_owned()));
        Ok(())
    }
}

/// Makes and checks codes under the server's secret key.
#[derive(Clone)]
pub struct OtpCodes {
    key: Arc<[u8]>,
}

impl OtpCodes {
    /// Codes hashed under `key` (at least 32 bytes in production).
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.into() }
    }

    /// A fresh uniformly random code.
    pub fn generate(&self) -> String {
        format!(
            "{:0width$}",
            rand::random_range(0..1_000_000u32),
            width = CODE_LENGTH
        )
    }

    fn mac(&self, phone: &PhoneNumber, purpose: OtpPurpose, code: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        // Binding phone and purpose means a code cannot be replayed for another number or flow.
        for part in [phone.as_str(), purpose.as_str(), code] {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The stored form of `code`.
    pub fn hash(&self, phone: &PhoneNumber, purpose: OtpPurpose, code: &str) -> Vec<u8> {
        self.mac(phone, purpose, code)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `code` matches `stored`, in constant time.
    pub fn matches(
        &self,
        stored: &[u8],
        phone: &PhoneNumber,
        purpose: OtpPurpose,
        code: &str,
    ) -> bool {
        self.mac(phone, purpose, code.trim())
            .verify_slice(stored)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_hashed_with_the_key() {
        let codes = OtpCodes::new(b"0123456789abcdef0123456789abcdef");
        let phone = PhoneNumber::parse("+14155552671").unwrap();
        let code = codes.generate();
        assert_eq!(code.len(), 6);
        assert!(code.chars().all(|c| c.is_ascii_digit()));
        let stored = codes.hash(&phone, OtpPurpose::Login, &code);
        assert!(codes.matches(&stored, &phone, OtpPurpose::Login, &code));
        assert!(!codes.matches(&stored, &phone, OtpPurpose::Register, &code));
        let other = OtpCodes::new(b"another key another key another k");
        assert!(!other.matches(&stored, &phone, OtpPurpose::Login, &code));
        assert_ne!(stored, codes.hash(&phone, OtpPurpose::Login, "000000"));
    }
}
