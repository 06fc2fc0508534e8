//! One-time codes for the journeys: limits on sending, delivery, and checking.

use chrono::Utc;

use super::{Accounts, Challenge, Client, after};
use crate::domain::limits;
use crate::domain::otp::CODE_LENGTH;
use crate::domain::phone::PhoneNumber;
use crate::error::AuthError;
use crate::store::{OtpPurpose, StoredOtp};

impl Accounts {
    pub(super) async fn request_code_for_account(
        &self,
        phone: &PhoneNumber,
        purpose: OtpPurpose,
        client: &Client,
    ) -> Result<Challenge, AuthError> {
        self.limit_sends(phone, client).await?;
        if self.store.account_by_phone(phone.as_str()).await?.is_some() {
            self.send_code(phone, purpose).await?;
        }
        Ok(self.challenge())
    }

    pub(super) fn challenge(&self) -> Challenge {
        Challenge {
            code_ttl: self.policy.otp_ttl,
            resend_after: self.policy.otp_resend_after,
            code_length: CODE_LENGTH,
        }
    }

    pub(super) async fn limit_sends(
        &self,
        phone: &PhoneNumber,
        client: &Client,
    ) -> Result<(), AuthError> {
        let ip = client.ip.as_deref().unwrap_or("unknown");
        let checks = [
            (limits::OTP_SEND_PER_PHONE, phone.as_str()),
            (limits::OTP_SEND_PER_RANGE, phone.range()),
            (limits::OTP_SEND_PER_IP, ip),
        ];
        self.limits
            .take(&checks)
            .await
            .map_err(AuthError::RateLimited)
    }

    pub(super) async fn send_code(
        &self,
        phone: &PhoneNumber,
        purpose: OtpPurpose,
    ) -> Result<(), AuthError> {
        let at = Utc::now();
        if let Some(live) = self.store.otp(phone.as_str(), purpose).await?
            && after(live.created_at, self.policy.otp_resend_after) > at
            && live.expires_at > at
        {
            return Ok(()); // the code sent moments ago is still good
        }
        let code = self.codes.generate();
        let stored = StoredOtp {
            code_hash: self.codes.hash(phone, purpose, &code),
            expires_at: after(at, self.policy.otp_ttl),
            attempts: 0,
            created_at: at,
        };
        self.store.put_otp(phone.as_str(), purpose, &stored).await?;
        if let Err(error) = self.sender.send(phone, purpose, &code).await {
            // Answer as if sent: failing here would tell a caller which phones are registered.
            tracing::error!(phone = %phone.masked(), %error, "otp delivery failed");
        }
        Ok(())
    }

    pub(super) async fn check_code(
        &self,
        phone: &PhoneNumber,
        purpose: OtpPurpose,
        code: &str,
    ) -> Result<(), AuthError> {
        self.limits
            .take(&[
                (limits::OTP_CHECK_PER_PHONE, phone.as_str()),
                (limits::OTP_CHECK_PER_RANGE, phone.range()),
            ])
            .await
            .map_err(AuthError::OtpAttemptsExceeded)?;
        let store = &self.store;
        let stored = store
            .otp(phone.as_str(), purpose)
            .await?
            .ok_or(AuthError::OtpInvalid)?;
        if stored.expires_at <= Utc::now() {
            store.consume_otp(phone.as_str(), purpose).await?;
            return Err(AuthError::OtpExpired);
        }
        if self.codes.matches(&stored.code_hash, phone, purpose, code) {
            // Single use: of two concurrent correct guesses only one consumes it.
            return match store.consume_otp(phone.as_str(), purpose).await? {
                true => Ok(()),
                false => Err(AuthError::OtpInvalid),
            };
        }
        let attempts = store.record_otp_failure(phone.as_str(), purpose).await?;
        if attempts >= self.policy.otp_max_attempts {
            store.consume_otp(phone.as_str(), purpose).await?;
            return Err(AuthError::OtpAttemptsExceeded(self.policy.otp_resend_after));
        }
        Err(AuthError::OtpInvalid)
    }
}
