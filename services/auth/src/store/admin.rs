//! What operators do to accounts (suspension) and the audit log of their actions: one script
//! per operation for both backends. The audit table is append-only in the database itself
//! (migrations 0003: triggers refuse UPDATE and DELETE), so these scripts only ever insert.

use chrono::{DateTime, Utc};
use echo_ids::{SessionId, UserId};
use echo_proto::echo::events::v1::SessionEndReason;
use echo_store::{with_db, with_tx};
use uuid::Uuid;

use super::codec::{AccountRow, At, Id, account_columns, for_update, give_up, now};
use super::{Account, AuthStore, sessions};
use crate::error::AuthError;

/// An account as operators see it.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountStatus {
    /// The account.
    pub account: Account,
    /// When and why it was suspended; None while not suspended.
    pub suspended: Option<(DateTime<Utc>, String)>,
    /// Its active sessions.
    pub active_sessions: i64,
}

/// One audit log row.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// UUIDv7: newest first is id order, descending.
    pub entry_id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// The operator's name.
    pub operator: String,
    /// The RPC.
    pub action: String,
    /// What it acted on (`user:<id>`, `phone:<e164>`), or empty.
    pub target: String,
    /// The operator's reason.
    pub reason: String,
    /// `OK` or the gRPC code name.
    pub outcome: String,
    /// A JSON object.
    pub details: String,
}

/// What [`AuthStore::suspend`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Suspension {
    /// Suspended now; these sessions were revoked (their `SessionRevoked` events appended).
    Suspended(Vec<SessionId>),
    /// It already was: nothing changed.
    AlreadySuspended,
    /// No such account.
    NoAccount,
}

impl AuthStore {
    /// The account with its suspension and active session count, if it exists.
    pub async fn account_status(
        &self,
        user_id: UserId,
    ) -> Result<Option<AccountStatus>, AuthError> {
        let row: Option<StatusRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                account_columns!(),
                ", suspended_at, suspension_reason, (SELECT count(*) FROM sessions s \
                 WHERE s.user_id = accounts.user_id AND s.revoked_at IS NULL) AS active_sessions \
                 FROM accounts WHERE user_id = $1"
            ))
            .bind(Id(user_id.into()))
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(AccountStatus::from))
    }

    /// Atomically mark the account suspended (with `reason`) and revoke every session of it,
    /// appending a `SessionRevoked` event per session.
    pub async fn suspend(&self, user_id: UserId, reason: &str) -> Result<Suspension, AuthError> {
        let mut tx = self.db.begin().await?;
        // Locked first on PostgreSQL: a session being opened now waits, then sees the
        // suspension (`open_session` reads it under the same lock).
        let select = for_update(&tx, "SELECT suspended_at FROM accounts WHERE user_id = $1");
        let found: Option<Option<At>> = with_tx!(&mut tx, |c| {
            sqlx::query_scalar(select)
                .bind(Id(user_id.into()))
                .fetch_optional(c)
                .await
        })?;
        match found {
            None => return give_up(tx, Suspension::NoAccount).await,
            Some(Some(_)) => return give_up(tx, Suspension::AlreadySuspended).await,
            Some(None) => {}
        }
        with_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE accounts SET suspended_at = $2, suspension_reason = $3 WHERE user_id = $1",
            )
            .bind(Id(user_id.into()))
            .bind(now())
            .bind(reason)
            .execute(c)
            .await
            .map(|_| ())
        })?;
        let revoked =
            sessions::revoke_in(&mut tx, user_id, None, None, SessionEndReason::Revoked).await?;
        self.outbox.commit(tx).await?;
        Ok(Suspension::Suspended(revoked))
    }

    /// Lift a suspension; false when there is no such account (an account that is not
    /// suspended stays as it is).
    pub async fn unsuspend(&self, user_id: UserId) -> Result<bool, AuthError> {
        let updated = with_db!(&self.db, write, |c| {
            sqlx::query(
                "UPDATE accounts SET suspended_at = NULL, suspension_reason = NULL \
                 WHERE user_id = $1",
            )
            .bind(Id(user_id.into()))
            .execute(c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated > 0)
    }

    /// Append one row to the audit log.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<(), AuthError> {
        with_db!(&self.db, write, |c| {
            sqlx::query(
                "INSERT INTO admin_audit_log (entry_id, at, operator, action, target, reason, \
                 outcome, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(Id(entry.entry_id))
            .bind(At(entry.at))
            .bind(&entry.operator)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(&entry.reason)
            .bind(&entry.outcome)
            .bind(&entry.details)
            .execute(c)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Audit rows newest first, older than `before` (an entry id), at most `limit`.
    pub async fn audit_log(
        &self,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, AuthError> {
        let rows: Vec<AuditRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(
                "SELECT entry_id, at, operator, action, target, reason, outcome, details \
                 FROM admin_audit_log WHERE ($1 IS NULL OR entry_id < $1) \
                 ORDER BY entry_id DESC LIMIT $2",
            )
            .bind(before.map(Id))
            .bind(limit.max(0))
            .fetch_all(c)
            .await
        })?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}

/// An account row with its suspension and session count, as both backends decode it.
#[derive(sqlx::FromRow)]
struct StatusRow {
    #[sqlx(flatten)]
    account: AccountRow,
    suspended_at: Option<At>,
    suspension_reason: Option<String>,
    active_sessions: i64,
}

impl From<StatusRow> for AccountStatus {
    fn from(row: StatusRow) -> Self {
        AccountStatus {
            account: row.account.into(),
            suspended: row
                .suspended_at
                .map(|At(at)| (at, row.suspension_reason.unwrap_or_default())),
            active_sessions: row.active_sessions,
        }
    }
}

/// An `admin_audit_log` row as both backends decode it.
#[derive(sqlx::FromRow)]
struct AuditRow {
    entry_id: Id,
    at: At,
    operator: String,
    action: String,
    target: String,
    reason: String,
    outcome: String,
    details: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            entry_id: row.entry_id.0,
            at: row.at.0,
            operator: row.operator,
            action: row.action,
            target: row.target,
            reason: row.reason,
            outcome: row.outcome,
            details: row.details,
        }
    }
}
