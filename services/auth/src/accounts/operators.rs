//! What operators do to accounts (echo.admin.v1.AdminService through [`AccountControl`]):
//! look an account up, suspend and unsuspend it, end its sessions. Revocations go through the
//! same machinery as a logout (database, then every process within a second).

use echo_ids::UserId;
use echo_proto::echo::events::v1::SessionEndReason;

use super::Accounts;
use crate::domain::phone::PhoneNumber;
use crate::error::AuthError;
use crate::events;
use crate::store::{AccountStatus, Suspension};

/// How an operator names an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountKey {
    /// By id.
    Id(UserId),
    /// By phone number.
    Phone(PhoneNumber),
}

impl Accounts {
    /// The account named by `key`; `UserNotFound` when none.
    pub async fn account_status(&self, key: &AccountKey) -> Result<AccountStatus, AuthError> {
        let user_id = match key {
            AccountKey::Id(id) => *id,
            AccountKey::Phone(phone) => {
                let account = self.store.account_by_phone(phone.as_str()).await?;
                account.ok_or(AuthError::UserNotFound)?.user_id
            }
        };
        let status = self.store.account_status(user_id).await?;
        status.ok_or(AuthError::UserNotFound)
    }

    /// Suspend the account and end its sessions everywhere; the account and how many
    /// sessions ended now (0 when it already was suspended).
    pub async fn suspend(
        &self,
        user_id: UserId,
        reason: &str,
    ) -> Result<(AccountStatus, usize), AuthError> {
        let ended = match self.store.suspend(user_id, reason).await? {
            Suspension::NoAccount => return Err(AuthError::UserNotFound),
            Suspension::AlreadySuspended => Vec::new(),
            Suspension::Suspended(ended) => ended,
        };
        for session in &ended {
            self.revocations
                .revoke(*session, self.policy.access_ttl)
                .await?;
        }
        let status = self.account_status(&AccountKey::Id(user_id)).await?;
        Ok((status, ended.len()))
    }

    /// Lift the account's suspension (its ended sessions stay ended).
    pub async fn unsuspend(&self, user_id: UserId) -> Result<AccountStatus, AuthError> {
        if !self.store.unsuspend(user_id).await? {
            return Err(AuthError::UserNotFound);
        }
        self.account_status(&AccountKey::Id(user_id)).await
    }

    /// End every active session of the account; how many ended.
    pub async fn revoke_all_sessions(&self, user_id: UserId) -> Result<usize, AuthError> {
        self.account_status(&AccountKey::Id(user_id)).await?;
        let ended = self
            .revoke(user_id, None, None, SessionEndReason::Revoked)
            .await?;
        Ok(ended.len())
    }

    /// Delete the account as its owner's DeleteAccount does, without the password: every
    /// session ends and `user deleted` goes out so other services erase what they hold.
    /// `UserNotFound` when there is no such account.
    pub async fn delete_by_operator(&self, user_id: UserId) -> Result<usize, AuthError> {
        self.account_status(&AccountKey::Id(user_id)).await?;
        let event = events::user_deleted(user_id);
        let ended = self.store.delete_account(user_id, &event).await?;
        for session in &ended {
            self.revocations
                .revoke(*session, self.policy.access_ttl)
                .await?;
        }
        Ok(ended.len())
    }
}
