//! Accounts and the registrations waiting for their phone: one script per operation for both
//! backends (see `codec` for the shared encodings).

use echo_bus::{Event, Outbox};
use echo_ids::{SessionId, UserId};
use echo_store::{with_db, with_tx};

use super::codec::{AccountRow, At, Id, account_columns, for_update, give_up, is_phone_taken, now};
use super::{Account, AuthStore, PendingRegistration, RefreshRecord, Session, sessions};
use crate::error::AuthError;

impl AuthStore {
    /// The account with this phone, if any.
    pub async fn account_by_phone(&self, phone: &str) -> Result<Option<Account>, AuthError> {
        let row: Option<AccountRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE phone_number = $1"
            ))
            .bind(phone)
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(Account::from))
    }

    /// The account with this id, if any.
    pub async fn account_by_id(&self, user_id: UserId) -> Result<Option<Account>, AuthError> {
        let row: Option<AccountRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE user_id = $1"
            ))
            .bind(Id(user_id.into()))
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(Account::from))
    }

    /// Remember (or replace) a registration until its phone is verified.
    pub async fn put_pending_registration(
        &self,
        pending: &PendingRegistration,
    ) -> Result<(), AuthError> {
        with_db!(&self.db, write, |c| {
            sqlx::query(
                "INSERT INTO pending_registrations (phone_number, password_hash, display_name, \
                 created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (phone_number) DO UPDATE SET \
                 password_hash = excluded.password_hash, display_name = excluded.display_name, \
                 created_at = excluded.created_at",
            )
            .bind(&pending.phone_number)
            .bind(&pending.password_hash)
            .bind(&pending.display_name)
            .bind(now())
            .execute(c)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The pending registration for this phone, if any.
    pub async fn pending_registration(
        &self,
        phone: &str,
    ) -> Result<Option<PendingRegistration>, AuthError> {
        let row: Option<(String, String, String)> = with_db!(&self.db, read, |c| {
            sqlx::query_as(
                "SELECT phone_number, password_hash, display_name FROM pending_registrations \
                 WHERE phone_number = $1",
            )
            .bind(phone)
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(
            |(phone_number, password_hash, display_name)| PendingRegistration {
                phone_number,
                password_hash,
                display_name,
            },
        ))
    }

    /// Set a new password hash.
    pub async fn set_password(
        &self,
        user_id: UserId,
        password_hash: &str,
    ) -> Result<(), AuthError> {
        with_db!(&self.db, write, |c| {
            sqlx::query("UPDATE accounts SET password_hash = $2 WHERE user_id = $1")
                .bind(Id(user_id.into()))
                .bind(password_hash)
                .execute(c)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Atomically: create the account from the pending registration (deleting it), open the
    /// first session, store its refresh token, and append `event` (user registered).
    /// `PhoneTaken` if the phone already has an account.
    pub async fn create_account(
        &self,
        account: &Account,
        session: &Session,
        refresh: &RefreshRecord,
        event: &Event,
    ) -> Result<(), AuthError> {
        let mut tx = self.db.begin().await?;
        let inserted = with_tx!(&mut tx, |c| {
            sqlx::query(concat!(
                "INSERT INTO accounts (",
                account_columns!(),
                ") VALUES ($1, $2, $3, $4, $5)"
            ))
            .bind(Id(account.user_id.into()))
            .bind(&account.phone_number)
            .bind(&account.password_hash)
            .bind(&account.display_name)
            .bind(At(account.created_at))
            .execute(c)
            .await
            .map(|_| ())
        });
        match inserted {
            // On PostgreSQL the failed statement aborted the transaction: roll it back.
            Err(e) if is_phone_taken(&e) => {
                give_up(tx, ()).await?;
                return Err(AuthError::PhoneTaken);
            }
            other => other?,
        };
        with_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM pending_registrations WHERE phone_number = $1")
                .bind(&account.phone_number)
                .execute(c)
                .await
                .map(|_| ())
        })?;
        sessions::insert(&mut tx, session, refresh).await?;
        Outbox::append(&mut tx, event).await?;
        self.outbox.commit(tx).await?;
        Ok(())
    }

    /// Atomically delete the account with its sessions, tokens and codes, and append `event`
    /// (user deleted). Returns the session ids that were active (to revoke them everywhere).
    pub async fn delete_account(
        &self,
        user_id: UserId,
        event: &Event,
    ) -> Result<Vec<SessionId>, AuthError> {
        let mut tx = self.db.begin().await?;
        // Locked first on PostgreSQL: the lock blocks sessions being opened for this account
        // (their foreign key check needs a share lock on the row), so the ids returned below
        // are all the active ones.
        let select = for_update(&tx, "SELECT phone_number FROM accounts WHERE user_id = $1");
        let phone: Option<String> = with_tx!(&mut tx, |c| {
            sqlx::query_scalar(select)
                .bind(Id(user_id.into()))
                .fetch_optional(c)
                .await
        })?;
        let Some(phone) = phone else {
            // Nothing to delete, so nothing happened that others must learn about.
            return give_up(tx, Vec::new()).await;
        };
        // Deleted (not left to the cascade) so that the same statement reports which were
        // active: a revocation racing on PostgreSQL is waited for, not read around. Their
        // refresh tokens go by cascade.
        let deleted: Vec<(Id, Option<At>)> = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "DELETE FROM sessions WHERE user_id = $1 RETURNING session_id, revoked_at",
            )
            .bind(Id(user_id.into()))
            .fetch_all(c)
            .await
        })?;
        let mut active: Vec<SessionId> = deleted
            .into_iter()
            .filter_map(|(Id(id), revoked_at)| revoked_at.is_none().then_some(id.into()))
            .collect();
        active.sort_unstable();
        // Their revocation outlives the rows: revoked_since must still list them if the cache
        // loses its copy while their access tokens live (a day is far beyond that; older
        // entries go now).
        let ended = now();
        with_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM ended_sessions WHERE revoked_at < $1")
                .bind(At(ended.0 - chrono::Duration::days(1)))
                .execute(c)
                .await
                .map(|_| ())
        })?;
        for session in &active {
            with_tx!(&mut tx, |c| {
                sqlx::query("INSERT INTO ended_sessions (session_id, revoked_at) VALUES ($1, $2)")
                    .bind(Id((*session).into()))
                    .bind(ended)
                    .execute(c)
                    .await
                    .map(|_| ())
            })?;
        }
        with_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM accounts WHERE user_id = $1")
                .bind(Id(user_id.into()))
                .execute(c)
                .await
                .map(|_| ())
        })?;
        for delete in [
            "DELETE FROM otp_codes WHERE phone_number = $1",
            "DELETE FROM pending_registrations WHERE phone_number = $1",
        ] {
            with_tx!(&mut tx, |c| sqlx::query(delete)
                .bind(&phone)
                .execute(c)
                .await
                .map(|_| ()))?;
        }
        Outbox::append(&mut tx, event).await?;
        self.outbox.commit(tx).await?;
        Ok(active)
    }
}
