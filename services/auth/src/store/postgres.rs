//! [`AuthStore`] on PostgreSQL (the service's own schema, selected by `search_path`).
//!
//! Atomic methods run in one transaction at READ COMMITTED; where two calls may race on the same
//! row, the statement that decides is a conditional `UPDATE`/`DELETE`, which re-checks its
//! condition after waiting for the other writer's row lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_proto::echo::events::v1::SessionEndReason;

use crate::events;
use echo_store::{PostgresDatabase, Tx};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::{
    Account, AuthStore, OtpPurpose, PendingRegistration, RefreshRecord, Rotation, Session,
    StoreError, StoredOtp,
};

/// The session columns, as [`sessions::session`] reads them.
macro_rules! session_columns {
    () => {
        "session_id, user_id, device_id, device_name, device_platform, app_version, created_at, \
         last_active_at, last_ip, revoked_at"
    };
}

mod sessions;

/// [`AuthStore`] on PostgreSQL.
#[derive(Clone)]
pub struct PostgresAuthStore {
    db: PostgresDatabase,
    outbox: Outbox,
}

impl PostgresAuthStore {
    /// The store on `db` (auth and bus migrations applied), appending events to `outbox`.
    pub fn new(db: PostgresDatabase, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

#[async_trait]
impl AuthStore for PostgresAuthStore {
    async fn account_by_phone(&self, phone: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, phone_number, password_hash, display_name, created_at \
             FROM accounts WHERE phone_number = $1",
        )
        .bind(phone)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(account).transpose()?)
    }

    async fn account_by_id(&self, user_id: Uuid) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, phone_number, password_hash, display_name, created_at \
             FROM accounts WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(account).transpose()?)
    }

    async fn put_pending_registration(
        &self,
        pending: &PendingRegistration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_registrations (phone_number, password_hash, display_name) \
             VALUES ($1, $2, $3) ON CONFLICT (phone_number) DO UPDATE SET \
             password_hash = excluded.password_hash, display_name = excluded.display_name, \
             created_at = now()",
        )
        .bind(&pending.phone_number)
        .bind(&pending.password_hash)
        .bind(&pending.display_name)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    async fn pending_registration(
        &self,
        phone: &str,
    ) -> Result<Option<PendingRegistration>, StoreError> {
        let row = sqlx::query(
            "SELECT phone_number, password_hash, display_name FROM pending_registrations \
             WHERE phone_number = $1",
        )
        .bind(phone)
        .fetch_optional(&self.db.pool)
        .await?;
        let pending = |row: &PgRow| -> Result<_, sqlx::Error> {
            Ok(PendingRegistration {
                phone_number: row.try_get("phone_number")?,
                password_hash: row.try_get("password_hash")?,
                display_name: row.try_get("display_name")?,
            })
        };
        Ok(row.as_ref().map(pending).transpose()?)
    }

    async fn put_otp(
        &self,
        phone: &str,
        purpose: OtpPurpose,
        otp: &StoredOtp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO otp_codes (phone_number, purpose, code_hash, expires_at, attempts, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (phone_number, purpose) \
             DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at, \
             attempts = excluded.attempts, created_at = excluded.created_at",
        )
        .bind(phone)
        .bind(purpose.as_str())
        .bind(&otp.code_hash)
        .bind(otp.expires_at)
        .bind(otp.attempts)
        .bind(otp.created_at)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    async fn otp(&self, phone: &str, purpose: OtpPurpose) -> Result<Option<StoredOtp>, StoreError> {
        let row = sqlx::query(
            "SELECT code_hash, expires_at, attempts, created_at FROM otp_codes \
             WHERE phone_number = $1 AND purpose = $2",
        )
        .bind(phone)
        .bind(purpose.as_str())
        .fetch_optional(&self.db.pool)
        .await?;
        let otp = |row: &PgRow| -> Result<_, sqlx::Error> {
            Ok(StoredOtp {
                code_hash: row.try_get("code_hash")?,
                expires_at: row.try_get("expires_at")?,
                attempts: row.try_get("attempts")?,
                created_at: row.try_get("created_at")?,
            })
        };
        Ok(row.as_ref().map(otp).transpose()?)
    }

    async fn record_otp_failure(
        &self,
        phone: &str,
        purpose: OtpPurpose,
    ) -> Result<i32, StoreError> {
        let attempts: Option<i32> = sqlx::query_scalar(
            "UPDATE otp_codes SET attempts = attempts + 1 \
             WHERE phone_number = $1 AND purpose = $2 RETURNING attempts",
        )
        .bind(phone)
        .bind(purpose.as_str())
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(attempts.unwrap_or(0))
    }

    async fn consume_otp(&self, phone: &str, purpose: OtpPurpose) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM otp_codes WHERE phone_number = $1 AND purpose = $2")
            .bind(phone)
            .bind(purpose.as_str())
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_account(
        &self,
        account: &Account,
        session: &Session,
        refresh: &RefreshRecord,
        event: &Event,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (user_id, phone_number, password_hash, display_name, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(account.user_id)
        .bind(&account.phone_number)
        .bind(&account.password_hash)
        .bind(&account.display_name)
        .bind(account.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("23505")
                    && e.constraint() == Some("accounts_phone_number_key") =>
            {
                // The failed statement aborted the transaction; dropping it rolls back.
                return Err(StoreError::Conflict("phone"));
            }
            other => other?,
        };
        sqlx::query("DELETE FROM pending_registrations WHERE phone_number = $1")
            .bind(&account.phone_number)
            .execute(&mut *tx)
            .await?;
        sessions::insert_session(&mut tx, session, refresh).await?;
        let mut tx = Tx::Postgres(tx);
        Outbox::append(&mut tx, event).await?;
        self.outbox.commit(tx).await?;
        Ok(())
    }

    async fn open_session(
        &self,
        session: &Session,
        refresh: &RefreshRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.pool.begin().await?;
        sessions::insert_session(&mut tx, session, refresh).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, session_id: Uuid) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE session_id = $1"
        ))
        .bind(session_id)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(sessions::session).transpose()?)
    }

    async fn active_sessions(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
              AND ($2::uuid IS NULL OR session_id > $2) ORDER BY session_id LIMIT $3"
        ))
        .bind(user_id)
        .bind(after)
        .bind(limit.max(0))
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .iter()
            .map(sessions::session)
            .collect::<Result<_, _>>()?)
    }

    async fn count_active_sessions(&self, user_id: Uuid) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.db.pool)
        .await?)
    }

    async fn revoke_sessions(
        &self,
        user_id: Uuid,
        only: Option<Uuid>,
        except: Option<Uuid>,
        reason: SessionEndReason,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        // One statement: a session a concurrent call revoked first is skipped after its row lock
        // is released (`revoked_at IS NULL` is re-checked), so no id is reported twice.
        let mut revoked: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "UPDATE sessions SET revoked_at = now() \
             WHERE user_id = $1 AND revoked_at IS NULL \
               AND ($2::uuid IS NULL OR session_id = $2) \
               AND ($3::uuid IS NULL OR session_id <> $3) \
             RETURNING session_id, device_id",
        )
        .bind(user_id)
        .bind(only)
        .bind(except)
        .fetch_all(&mut *tx)
        .await?;
        revoked.sort_unstable();
        let mut tx = Tx::Postgres(tx);
        for (session, device) in &revoked {
            let event = events::session_revoked(user_id, *session, *device, reason);
            Outbox::append(&mut tx, &event).await?;
        }
        self.outbox.commit(tx).await?;
        Ok(revoked.into_iter().map(|(session, _)| session).collect())
    }

    async fn revoked_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT session_id, revoked_at FROM sessions WHERE revoked_at > $1")
                .bind(since)
                .fetch_all(&self.db.pool)
                .await?,
        )
    }

    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new: &RefreshRecord,
        ip: Option<&str>,
    ) -> Result<Rotation, StoreError> {
        sessions::rotate(&self.db.pool, old_hash, new, ip).await
    }

    async fn set_password(&self, user_id: Uuid, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET password_hash = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(password_hash)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    async fn delete_account(&self, user_id: Uuid, event: &Event) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        // FOR UPDATE first: it blocks sessions being opened for this account (their foreign key
        // check needs a share lock on the row), so the ids returned are all the active ones.
        let phone: Option<String> =
            sqlx::query_scalar("SELECT phone_number FROM accounts WHERE user_id = $1 FOR UPDATE")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(phone) = phone else {
            // Nothing to delete, so nothing happened that others must learn about.
            tx.rollback().await?;
            return Ok(Vec::new());
        };
        let deleted: Vec<(Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(
            "DELETE FROM sessions WHERE user_id = $1 RETURNING session_id, revoked_at",
        )
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut active: Vec<Uuid> = deleted
            .into_iter()
            .filter_map(|(id, revoked_at)| revoked_at.is_none().then_some(id))
            .collect();
        active.sort_unstable();
        sqlx::query("DELETE FROM accounts WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for table in [
            "DELETE FROM otp_codes WHERE phone_number = $1",
            "DELETE FROM pending_registrations WHERE phone_number = $1",
        ] {
            sqlx::query(table).bind(&phone).execute(&mut *tx).await?;
        }
        let mut tx = Tx::Postgres(tx);
        Outbox::append(&mut tx, event).await?;
        self.outbox.commit(tx).await?;
        Ok(active)
    }
}

fn account(row: &PgRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        user_id: row.try_get("user_id")?,
        phone_number: row.try_get("phone_number")?,
        password_hash: row.try_get("password_hash")?,
        display_name: row.try_get("display_name")?,
        created_at: row.try_get("created_at")?,
    })
}
