//! One-time codes, keyed by (phone, purpose): one script per operation for both backends.

use echo_store::with_db;

use super::codec::At;
use super::{AuthStore, OtpPurpose, StoredOtp};
use crate::error::AuthError;

impl AuthStore {
    /// Store a new code for (phone, purpose), replacing any earlier one.
    pub async fn put_otp(
        &self,
        phone: &str,
        purpose: OtpPurpose,
        otp: &StoredOtp,
    ) -> Result<(), AuthError> {
        with_db!(&self.db, write, |c| {
            sqlx::query(
                "INSERT INTO otp_codes (phone_number, purpose, code_hash, expires_at, attempts, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (phone_number, purpose) \
                 DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at, \
                 attempts = excluded.attempts, created_at = excluded.created_at",
            )
            .bind(phone)
            .bind(purpose.as_str())
            .bind(&otp.code_hash)
            .bind(At(otp.expires_at))
            .bind(otp.attempts)
            .bind(At(otp.created_at))
            .execute(c)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The stored code for (phone, purpose), expired or not (the caller tells expiry apart).
    pub async fn otp(
        &self,
        phone: &str,
        purpose: OtpPurpose,
    ) -> Result<Option<StoredOtp>, AuthError> {
        let row: Option<(Vec<u8>, At, i32, At)> = with_db!(&self.db, read, |c| {
            sqlx::query_as(
                "SELECT code_hash, expires_at, attempts, created_at FROM otp_codes \
                 WHERE phone_number = $1 AND purpose = $2",
            )
            .bind(phone)
            .bind(purpose.as_str())
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(
            |(code_hash, At(expires_at), attempts, At(created_at))| StoredOtp {
                code_hash,
                expires_at,
                attempts,
                created_at,
            },
        ))
    }

    /// Count one wrong guess; returns the attempts so far (0 when there is no code).
    pub async fn record_otp_failure(
        &self,
        phone: &str,
        purpose: OtpPurpose,
    ) -> Result<i32, AuthError> {
        let attempts: Option<i32> = with_db!(&self.db, write, |c| {
            sqlx::query_scalar(
                "UPDATE otp_codes SET attempts = attempts + 1 \
                 WHERE phone_number = $1 AND purpose = $2 RETURNING attempts",
            )
            .bind(phone)
            .bind(purpose.as_str())
            .fetch_optional(c)
            .await
        })?;
        Ok(attempts.unwrap_or(0))
    }

    /// Delete the code (used, or exhausted). True if it existed: a code works at most once.
    pub async fn consume_otp(&self, phone: &str, purpose: OtpPurpose) -> Result<bool, AuthError> {
        let done = with_db!(&self.db, write, |c| {
            sqlx::query("DELETE FROM otp_codes WHERE phone_number = $1 AND purpose = $2")
                .bind(phone)
                .bind(purpose.as_str())
                .execute(c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(done > 0)
    }
}
