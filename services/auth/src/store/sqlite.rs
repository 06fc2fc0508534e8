//! [`AuthStore`] on the embedded SQLite file.
//!
//! Every write goes through the single writer connection, multi-statement ones in a
//! `BEGIN IMMEDIATE` transaction; that serialization is what makes `rotate_refresh` and
//! `revoke_sessions` race-free here (a check and the write that follows it cannot interleave
//! with another call's). Reads use the reader pool. UUIDs are stored as hyphenated TEXT and
//! times as unix microseconds (see the migration).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_proto::echo::events::v1::SessionEndReason;

use crate::events;
use echo_store::sqlite_rows::{micros, optional_time, parse_uuid, time, uuid};
use echo_store::{SqliteDatabase, Tx};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
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

/// [`AuthStore`] on SQLite.
#[derive(Clone)]
pub struct SqliteAuthStore {
    db: SqliteDatabase,
    outbox: Outbox,
}

impl SqliteAuthStore {
    /// The store on `db` (auth and bus migrations applied), appending events to `outbox`.
    pub fn new(db: SqliteDatabase, outbox: Outbox) -> Self {
        Self { db, outbox }
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.db.writer.begin_with("BEGIN IMMEDIATE").await
    }
}

#[async_trait]
impl AuthStore for SqliteAuthStore {
    async fn account_by_phone(&self, phone: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, phone_number, password_hash, display_name, created_at \
             FROM accounts WHERE phone_number = $1",
        )
        .bind(phone)
        .fetch_optional(&self.db.reader)
        .await?;
        Ok(row.as_ref().map(account).transpose()?)
    }

    async fn account_by_id(&self, user_id: Uuid) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, phone_number, password_hash, display_name, created_at \
             FROM accounts WHERE user_id = $1",
        )
        .bind(user_id.to_string())
        .fetch_optional(&self.db.reader)
        .await?;
        Ok(row.as_ref().map(account).transpose()?)
    }

    async fn put_pending_registration(
        &self,
        pending: &PendingRegistration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_registrations (phone_number, password_hash, display_name, \
             created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (phone_number) DO UPDATE SET \
             password_hash = excluded.password_hash, display_name = excluded.display_name, \
             created_at = excluded.created_at",
        )
        .bind(&pending.phone_number)
        .bind(&pending.password_hash)
        .bind(&pending.display_name)
        .bind(micros(Utc::now()))
        .execute(&self.db.writer)
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
        .fetch_optional(&self.db.reader)
        .await?;
        let pending = |row: &SqliteRow| -> Result<_, sqlx::Error> {
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
        .bind(micros(otp.expires_at))
        .bind(otp.attempts)
        .bind(micros(otp.created_at))
        .execute(&self.db.writer)
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
        .fetch_optional(&self.db.reader)
        .await?;
        let otp = |row: &SqliteRow| -> Result<_, sqlx::Error> {
            Ok(StoredOtp {
                code_hash: row.try_get("code_hash")?,
                expires_at: time(row, "expires_at")?,
                attempts: row.try_get("attempts")?,
                created_at: time(row, "created_at")?,
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
        .fetch_optional(&self.db.writer)
        .await?;
        Ok(attempts.unwrap_or(0))
    }

    async fn consume_otp(&self, phone: &str, purpose: OtpPurpose) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM otp_codes WHERE phone_number = $1 AND purpose = $2")
            .bind(phone)
            .bind(purpose.as_str())
            .execute(&self.db.writer)
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
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (user_id, phone_number, password_hash, display_name, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(account.user_id.to_string())
        .bind(&account.phone_number)
        .bind(&account.password_hash)
        .bind(&account.display_name)
        .bind(micros(account.created_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(sqlx::Error::Database(e))
                if e.kind() == sqlx::error::ErrorKind::UniqueViolation
                    && e.message().contains("accounts.phone_number") =>
            {
                tx.rollback().await?;
                return Err(StoreError::Conflict("phone"));
            }
            other => other?,
        };
        sqlx::query("DELETE FROM pending_registrations WHERE phone_number = $1")
            .bind(&account.phone_number)
            .execute(&mut *tx)
            .await?;
        sessions::insert_session(&mut tx, session, refresh).await?;
        let mut tx = Tx::Sqlite(tx);
        Outbox::append(&mut tx, event).await?;
        self.outbox.commit(tx).await?;
        Ok(())
    }

    async fn open_session(
        &self,
        session: &Session,
        refresh: &RefreshRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
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
        .bind(session_id.to_string())
        .fetch_optional(&self.db.reader)
        .await?;
        Ok(row.as_ref().map(sessions::session).transpose()?)
    }

    async fn active_sessions(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Session>, StoreError> {
        // Hyphenated lowercase text sorts like the UUID's bytes, so this pages as PostgreSQL does.
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
              AND ($2 IS NULL OR session_id > $2) ORDER BY session_id LIMIT $3"
        ))
        .bind(user_id.to_string())
        .bind(after.map(|id| id.to_string()))
        .bind(limit.max(0))
        .fetch_all(&self.db.reader)
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
        .bind(user_id.to_string())
        .fetch_one(&self.db.reader)
        .await?)
    }

    async fn revoke_sessions(
        &self,
        user_id: Uuid,
        only: Option<Uuid>,
        except: Option<Uuid>,
        reason: SessionEndReason,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.begin().await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "UPDATE sessions SET revoked_at = $4 \
             WHERE user_id = $1 AND revoked_at IS NULL \
               AND ($2 IS NULL OR session_id = $2) \
               AND ($3 IS NULL OR session_id <> $3) \
             RETURNING session_id, device_id",
        )
        .bind(user_id.to_string())
        .bind(only.map(|id| id.to_string()))
        .bind(except.map(|id| id.to_string()))
        .bind(micros(Utc::now()))
        .fetch_all(&mut *tx)
        .await?;
        let mut revoked = rows
            .iter()
            .map(|(session, device)| Ok((parse_uuid(session)?, parse_uuid(device)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        revoked.sort_unstable();
        let mut tx = Tx::Sqlite(tx);
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
        let rows = sqlx::query("SELECT session_id, revoked_at FROM sessions WHERE revoked_at > $1")
            .bind(micros(since))
            .fetch_all(&self.db.reader)
            .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((uuid(row, "session_id")?, time(row, "revoked_at")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new: &RefreshRecord,
        ip: Option<&str>,
    ) -> Result<Rotation, StoreError> {
        sessions::rotate(&self.db.writer, old_hash, new, ip).await
    }

    async fn set_password(&self, user_id: Uuid, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET password_hash = $2 WHERE user_id = $1")
            .bind(user_id.to_string())
            .bind(password_hash)
            .execute(&self.db.writer)
            .await?;
        Ok(())
    }

    async fn delete_account(&self, user_id: Uuid, event: &Event) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.begin().await?;
        let id = user_id.to_string();
        let phone: Option<String> =
            sqlx::query_scalar("SELECT phone_number FROM accounts WHERE user_id = $1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(phone) = phone else {
            // Nothing to delete, so nothing happened that others must learn about.
            tx.rollback().await?;
            return Ok(Vec::new());
        };
        let active: Vec<String> = sqlx::query_scalar(
            "SELECT session_id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
             ORDER BY session_id",
        )
        .bind(&id)
        .fetch_all(&mut *tx)
        .await?;
        let active = active
            .iter()
            .map(|id| parse_uuid(id))
            .collect::<Result<Vec<_>, _>>()?;
        // Sessions and their refresh tokens go by cascade.
        sqlx::query("DELETE FROM accounts WHERE user_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        for table in [
            "DELETE FROM otp_codes WHERE phone_number = $1",
            "DELETE FROM pending_registrations WHERE phone_number = $1",
        ] {
            sqlx::query(table).bind(&phone).execute(&mut *tx).await?;
        }
        let mut tx = Tx::Sqlite(tx);
        Outbox::append(&mut tx, event).await?;
        self.outbox.commit(tx).await?;
        Ok(active)
    }
}

fn account(row: &SqliteRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        user_id: uuid(row, "user_id")?,
        phone_number: row.try_get("phone_number")?,
        password_hash: row.try_get("password_hash")?,
        display_name: row.try_get("display_name")?,
        created_at: time(row, "created_at")?,
    })
}
