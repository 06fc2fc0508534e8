//! The auth journeys (DESIGN §5): register → verify → tokens; password and OTP logins;
//! refresh with rotation, retry grace and reuse detection; sessions; password change and
//! reset; account deletion. Inputs arrive parsed; outputs are domain values.
//!
//! One file because it is the contract's journeys read in their order, each a short script
//! over the store; what several journeys share is already apart (`codes`: sending and checking
//! one-time codes; `sessions`: opening, issuing, revoking).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SubsecRound, Utc};
use echo_authn::{KeySet, Revocations, TokenIssuer};
use echo_ids::{DeviceId, SessionId, UserId};
use echo_proto::echo::events::v1::SessionEndReason;

use crate::domain::limits::{self, Limits};
use crate::domain::otp::{OtpCodes, OtpSender};
use crate::domain::password::{Password, PasswordHasher};
use crate::domain::phone::PhoneNumber;
use crate::domain::refresh::RefreshTokens;
use crate::error::AuthError;
use crate::events;
use crate::store::{
    Account, AuthStore, Device, OtpPurpose, PendingRegistration, RefreshRecord, Rotation, Session,
};

/// The tunable rules.
#[derive(Clone, Debug)]
pub struct Policy {
    /// How long a code works.
    pub otp_ttl: Duration,
    /// How soon a new code may be sent for the same phone and purpose.
    pub otp_resend_after: Duration,
    /// Wrong guesses one code allows.
    pub otp_max_attempts: i32,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Window in which a repeated refresh returns the same new pair.
    pub refresh_grace: Duration,
    /// Signed-in devices per account.
    pub max_devices: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            otp_ttl: Duration::from_secs(300),
            otp_resend_after: Duration::from_secs(30),
            otp_max_attempts: 5,
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::from_secs(30),
            max_devices: 10,
        }
    }
}

/// What a client sees after asking for a code (the same whether or not the phone is known).
#[derive(Clone, Debug, PartialEq)]
pub struct Challenge {
    /// How long the code works.
    pub code_ttl: Duration,
    /// When the client may ask again.
    pub resend_after: Duration,
    /// Digits in the code.
    pub code_length: usize,
}

/// A signed-in session's tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct Issued {
    /// The account.
    pub user_id: UserId,
    /// The session (`sid`).
    pub session_id: SessionId,
    /// The server-issued device id (`did`).
    pub device_id: DeviceId,
    /// The EdDSA JWT.
    pub access_token: String,
    /// When it expires.
    pub access_expires_at: SystemTime,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// When it expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// Who is calling, as far as limits care.
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// The client IP, if known.
    pub ip: Option<String>,
}

/// The auth domain.
pub struct Accounts {
    pub(crate) store: Arc<AuthStore>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) codes: OtpCodes,
    pub(crate) sender: Arc<dyn OtpSender>,
    pub(crate) limits: Limits,
    pub(crate) refresh: RefreshTokens,
    pub(crate) issuer: TokenIssuer,
    pub(crate) keys: KeySet,
    pub(crate) revocations: Revocations,
    pub(crate) policy: Policy,
}

fn now() -> DateTime<Utc> {
    // Whole seconds: JWT times are seconds, and a retried refresh must recompute the same pair.
    Utc::now().trunc_subsecs(0)
}

fn after(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(duration).unwrap_or_default()
}

impl Accounts {
    /// Start a registration: remember it and send a code. Answers the same for a phone that
    /// already has an account (which gets a code that signs it in), so nobody learns which
    /// numbers are registered.
    pub async fn register(
        &self,
        phone: &PhoneNumber,
        password: &Password,
        display_name: String,
        client: &Client,
    ) -> Result<Challenge, AuthError> {
        self.limit_sends(phone, client).await?;
        // Hash either way, so both answers take the same time.
        let password_hash = self.hasher.hash(password).await?;
        if self.store.account_by_phone(phone.as_str()).await?.is_none() {
            let pending = PendingRegistration {
                phone_number: phone.to_string(),
                password_hash,
                display_name,
            };
            self.store.put_pending_registration(&pending).await?;
        }
        self.send_code(phone, OtpPurpose::Register).await?;
        Ok(self.challenge())
    }

    /// Verify the phone with its code: create the account (or sign in to the existing one)
    /// and open a session. The bool says whether the account was created now.
    pub async fn verify_phone(
        &self,
        phone: &PhoneNumber,
        code: &str,
        device: Device,
        client: &Client,
    ) -> Result<(Issued, bool), AuthError> {
        self.check_code(phone, OtpPurpose::Register, code).await?;
        if let Some(account) = self.store.account_by_phone(phone.as_str()).await? {
            return Ok((self.open_session(&account, device, client).await?, false));
        }
        let pending = self
            .store
            .pending_registration(phone.as_str())
            .await?
            .ok_or(AuthError::OtpInvalid)?;
        let at = now();
        let account = Account {
            user_id: UserId::new_v7(),
            phone_number: phone.to_string(),
            password_hash: Some(pending.password_hash),
            display_name: pending.display_name,
            created_at: at,
        };
        let (session, refresh_token, record) = self.new_session(&account, device, client, at);
        let event = events::user_registered(&account);
        match self
            .store
            .create_account(&account, &session, &record, &event)
            .await
        {
            Ok(()) => Ok((self.issue(&session, refresh_token, at)?, true)),
            // A concurrent verification created it first: sign in to that account.
            Err(AuthError::PhoneTaken) => {
                let existing = self.store.account_by_phone(phone.as_str()).await?;
                let existing = existing.ok_or_else(|| AuthError::Internal("account vanished"))?;
                Ok((
                    self.open_session(&existing, session.device.clone(), client)
                        .await?,
                    false,
                ))
            }
            Err(error) => Err(error),
        }
    }

    /// Sign in with phone and password.
    pub async fn login_with_password(
        &self,
        phone: &PhoneNumber,
        password: &str,
        device: Device,
        client: &Client,
    ) -> Result<Issued, AuthError> {
        let ip = client.ip.as_deref().unwrap_or("unknown");
        self.limits
            .take(&[
                (limits::LOGIN_PER_PHONE, phone.as_str()),
                (limits::LOGIN_PER_IP, ip),
            ])
            .await
            .map_err(AuthError::RateLimited)?;
        let account = self.store.account_by_phone(phone.as_str()).await?;
        let stored = account.as_ref().and_then(|a| a.password_hash.as_deref());
        if self.hasher.verify(password, stored).await? {
            let account = account.ok_or(AuthError::InvalidCredentials)?;
            return self.open_session(&account, device, client).await;
        }
        if account.is_none()
            && let Some(pending) = self.store.pending_registration(phone.as_str()).await?
            && self
                .hasher
                .verify(password, Some(&pending.password_hash))
                .await?
        {
            // Only someone who knows the password learns the registration is unverified.
            return Err(AuthError::PhoneNotVerified);
        }
        Err(AuthError::InvalidCredentials)
    }

    /// Send a sign-in code (only to registered phones, answering the same for all).
    pub async fn request_login_code(
        &self,
        phone: &PhoneNumber,
        client: &Client,
    ) -> Result<Challenge, AuthError> {
        self.request_code_for_account(phone, OtpPurpose::Login, client)
            .await
    }

    /// Sign in with a code.
    pub async fn login_with_code(
        &self,
        phone: &PhoneNumber,
        code: &str,
        device: Device,
        client: &Client,
    ) -> Result<Issued, AuthError> {
        self.check_code(phone, OtpPurpose::Login, code).await?;
        let account = self.store.account_by_phone(phone.as_str()).await?;
        self.open_session(&account.ok_or(AuthError::OtpInvalid)?, device, client)
            .await
    }

    /// Exchange a refresh token for a new pair (see `domain::refresh` for the retry grace).
    pub async fn refresh(&self, token: &str, client: &Client) -> Result<Issued, AuthError> {
        let successor = self.refresh.successor(token);
        let at = now();
        let new = RefreshRecord {
            token_hash: RefreshTokens::hash(&successor),
            session_id: SessionId::nil(), // the store takes the old token's session
            issued_at: at,
            expires_at: after(at, self.policy.refresh_ttl),
            rotated_at: None,
        };
        let old_hash = RefreshTokens::hash(token);
        match self
            .store
            .rotate_refresh(&old_hash, &new, client.ip.as_deref())
            .await?
        {
            Rotation::Rotated(session) => self.issue(&session, successor, at),
            Rotation::AlreadyRotated {
                session,
                rotated_at,
            } => {
                let age = (at - rotated_at).to_std().unwrap_or_default();
                if age <= self.policy.refresh_grace {
                    return self.issue(&session, successor, rotated_at);
                }
                tracing::warn!(user = %session.user_id, session = %session.session_id,
                    "rotated refresh token reused; revoking the session");
                self.revoke(
                    session.user_id,
                    Some(session.session_id),
                    None,
                    SessionEndReason::RefreshTokenReused,
                )
                .await?;
                Err(AuthError::RefreshTokenReused)
            }
            Rotation::Invalid => Err(AuthError::RefreshTokenInvalid),
        }
    }

    /// End the caller's session.
    pub async fn logout(&self, caller: &SignedIn) -> Result<(), AuthError> {
        self.revoke(
            caller.user_id,
            Some(caller.session_id),
            None,
            SessionEndReason::Logout,
        )
        .await
        .map(|_| ())
    }

    /// The caller's active sessions, by id, after `after`.
    pub async fn sessions(
        &self,
        caller: &SignedIn,
        after: Option<SessionId>,
        limit: i64,
    ) -> Result<Vec<Session>, AuthError> {
        self.store
            .active_sessions(caller.user_id, after, limit)
            .await
    }

    /// End one of the caller's sessions.
    pub async fn revoke_session(
        &self,
        caller: &SignedIn,
        session_id: SessionId,
    ) -> Result<(), AuthError> {
        match self.store.session(session_id).await? {
            Some(session) if session.user_id == caller.user_id => self
                .revoke(
                    caller.user_id,
                    Some(session_id),
                    None,
                    SessionEndReason::Revoked,
                )
                .await
                .map(|_| ()),
            _ => Err(AuthError::SessionNotFound),
        }
    }

    /// End every session of the caller but the current one; how many ended.
    pub async fn revoke_other_sessions(&self, caller: &SignedIn) -> Result<usize, AuthError> {
        self.revoke(
            caller.user_id,
            None,
            Some(caller.session_id),
            SessionEndReason::Revoked,
        )
        .await
        .map(|ids| ids.len())
    }

    /// Change the password, knowing the current one.
    pub async fn change_password(
        &self,
        caller: &SignedIn,
        current: &str,
        new: &Password,
        revoke_others: bool,
    ) -> Result<(), AuthError> {
        let account = self.account(caller).await?;
        if !self
            .hasher
            .verify(current, account.password_hash.as_deref())
            .await?
        {
            return Err(AuthError::InvalidCredentials);
        }
        self.store
            .set_password(caller.user_id, &self.hasher.hash(new).await?)
            .await?;
        if revoke_others {
            self.revoke(
                caller.user_id,
                None,
                Some(caller.session_id),
                SessionEndReason::Revoked,
            )
            .await?;
        }
        Ok(())
    }

    /// Send a password-reset code (only to registered phones, answering the same for all).
    pub async fn request_password_reset(
        &self,
        phone: &PhoneNumber,
        client: &Client,
    ) -> Result<Challenge, AuthError> {
        self.request_code_for_account(phone, OtpPurpose::PasswordReset, client)
            .await
    }

    /// Set a new password with a reset code; every session ends.
    pub async fn reset_password(
        &self,
        phone: &PhoneNumber,
        code: &str,
        new: &Password,
    ) -> Result<(), AuthError> {
        self.check_code(phone, OtpPurpose::PasswordReset, code)
            .await?;
        let account = self.store.account_by_phone(phone.as_str()).await?;
        let account = account.ok_or(AuthError::OtpInvalid)?;
        self.store
            .set_password(account.user_id, &self.hasher.hash(new).await?)
            .await?;
        self.revoke(account.user_id, None, None, SessionEndReason::PasswordReset)
            .await
            .map(|_| ())
    }

    /// Delete the caller's account (confirmed with the password); every session ends and
    /// `user deleted` goes out so other services remove what they hold.
    pub async fn delete_account(&self, caller: &SignedIn, password: &str) -> Result<(), AuthError> {
        let account = self.account(caller).await?;
        if !self
            .hasher
            .verify(password, account.password_hash.as_deref())
            .await?
        {
            return Err(AuthError::InvalidCredentials);
        }
        let event = events::user_deleted(caller.user_id);
        let ended = self.store.delete_account(caller.user_id, &event).await?;
        for session in ended {
            self.revocations
                .revoke(session, self.policy.access_ttl)
                .await?;
        }
        Ok(())
    }

    /// The keys verifiers should accept.
    pub fn signing_keys(&self) -> Vec<echo_authn::Jwk> {
        self.keys.public_jwks()
    }

    async fn account(&self, caller: &SignedIn) -> Result<Account, AuthError> {
        let account = self.store.account_by_id(caller.user_id).await?;
        account.ok_or(AuthError::InvalidCredentials)
    }
}

mod codes;
mod operators;
mod sessions;

pub use operators::AccountKey;
pub use sessions::SignedIn;
