//! Passwords: checked for strength at the boundary, hashed with argon2id off the async
//! runtime, behind a semaphore so a burst of logins cannot starve every other request.

use std::sync::Arc;

use argon2::{Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

/// Shortest accepted password, in characters.
pub const MIN_LENGTH: usize = 10;
/// Longest accepted password, in characters (argon2 cost does not depend on it, but a cap
/// keeps requests small).
pub const MAX_LENGTH: usize = 128;

/// Passwords so common that length alone does not make them safe.
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "0123456789",
    "1111111111",
    "qwertyuiop",
    "password12",
    "password123",
    "password1234",
    "iloveyou12",
    "1q2w3e4r5t",
    "qwerty1234",
    "abcdefghij",
    "letmein123",
    "welcome123",
    "admin12345",
    "passw0rd12",
    "qwertyuiop123",
    "1qaz2wsx3edc",
    "zaq12wsxcde",
    "football12",
    "baseball12",
    "sunshine12",
    "princess12",
    "dragon1234",
    "monkey1234",
    "superman12",
    "trustno1234",
    "changeme123",
    "echo123456",
    "asdfghjkl1",
];

/// A password that met the strength rules.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Check `input` against the rules; the error says which one failed.
    pub fn parse(input: &str) -> Result<Self, String> {
        let length = input.chars().count();
        if length < MIN_LENGTH {
            return Err(format!("must be at least {MIN_LENGTH} characters"));
        }
        if length > MAX_LENGTH {
            return Err(format!("must be at most {MAX_LENGTH} characters"));
        }
        let lower = input.to_lowercase();
        if COMMON.contains(&lower.as_str()) || input.chars().all(|c| input.starts_with(c)) {
            return Err("is too common; choose a less guessable password".into());
        }
        Ok(Self(input.to_owned()))
    }

    /// The password's bytes (for hashing only).
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Runs argon2id on the blocking pool, at most `parallelism` at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when an account does not exist so
    /// that "no such account" takes as long as "wrong password".
    decoy: Arc<str>,
}

/// Hashing failed (a bug or an exhausted blocking pool, never a wrong password).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl PasswordHasher {
    /// A hasher allowing `parallelism` concurrent hashes (about the number of cores).
    pub fn new(parallelism: usize) -> Self {
        let decoy = Argon2::default()
            .hash_password(uuid::Uuid::new_v4().as_bytes())
            .map(|hash| hash.to_string())
            .unwrap_or_default();
        Self {
            permits: Arc::new(Semaphore::new(parallelism.max(1))),
            decoy: decoy.into(),
        }
    }

    /// The argon2id PHC string of `password` (salted by argon2 itself).
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let password = password.clone();
        self.blocking(move || {
            Argon2::default()
                .hash_password(password.expose())
                .map(|hash| hash.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await
    }

    /// Whether `password` matches `phc`. With no stored hash, spends the same time and says no.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, HashError> {
        let matches_decoy = phc.is_none();
        let phc: String = phc.map_or_else(|| self.decoy.to_string(), str::to_owned);
        let password = password.to_owned();
        let matched = self
            .blocking(move || {
                let parsed = PasswordHash::new(&phc).map_err(|e| HashError(e.to_string()))?;
                Ok(Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(matched && !matches_decoy)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| HashError(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_rules() {
        assert!(Password::parse("short").unwrap_err().contains("at least"));
        assert!(
            Password::parse("Password123")
                .unwrap_err()
                .contains("too common")
        );
        assert!(
            Password::parse("aaaaaaaaaaaa")
                .unwrap_err()
                .contains("too common")
        );
        assert!(
            Password::parse(&"x".repeat(200))
                .unwrap_err()
                .contains("at most")
        );
        assert!(Password::parse("correct horse battery").is_ok());
    }

    #[tokio::test]
    async fn hashes_and_verifies_off_the_runtime() {
        let hasher = PasswordHasher::new(2);
        let password = Password::parse("correct horse battery").unwrap();
        let phc = hasher.hash(&password).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            hasher
                .verify("correct horse battery", Some(&phc))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse battery", Some(&phc))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("anything", None).await.unwrap());
    }
}
