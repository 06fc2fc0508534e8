//! Sessions: opening one with its first refresh token, reading them, revoking them. One script
//! per operation for both backends; the refresh-token exchange is in `rotation`.

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use echo_ids::{DeviceId, SessionId, UserId};
use echo_proto::echo::events::v1::SessionEndReason;
use echo_store::{Tx, with_db, with_tx};

use super::codec::{At, Id, SessionRow, for_update, now, session_columns};
use super::{AuthStore, RefreshRecord, Session};
use crate::error::AuthError;
use crate::events;

impl AuthStore {
    /// Atomically open a session with its first refresh token; `AccountSuspended` (nothing
    /// opened) while an operator has the account suspended. The account row is locked first
    /// on PostgreSQL, so a suspension committing meanwhile either comes before (refused here)
    /// or after (and then revokes this session with the others).
    pub async fn open_session(
        &self,
        session: &Session,
        refresh: &RefreshRecord,
    ) -> Result<(), AuthError> {
        let mut tx = self.db.begin().await?;
        let select = for_update(&tx, "SELECT suspended_at FROM accounts WHERE user_id = $1");
        let suspended: Option<Option<At>> = with_tx!(&mut tx, |c| {
            sqlx::query_scalar(select)
                .bind(Id(session.user_id.into()))
                .fetch_optional(c)
                .await
        })?;
        if let Some(Some(_)) = suspended {
            tx.rollback().await?;
            return Err(AuthError::AccountSuspended);
        }
        insert(&mut tx, session, refresh).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session, if it exists.
    pub async fn session(&self, session_id: SessionId) -> Result<Option<Session>, AuthError> {
        let row: Option<SessionRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE session_id = $1"
            ))
            .bind(Id(session_id.into()))
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(Session::from))
    }

    /// A user's sessions that are not revoked, ordered by session id, after `after`, at most
    /// `limit`.
    pub async fn active_sessions(
        &self,
        user_id: UserId,
        after: Option<SessionId>,
        limit: i64,
    ) -> Result<Vec<Session>, AuthError> {
        let rows: Vec<SessionRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
                  AND ($2 IS NULL OR session_id > $2) ORDER BY session_id LIMIT $3"
            ))
            .bind(Id(user_id.into()))
            .bind(after.map(|id| Id(id.into())))
            .bind(limit.max(0))
            .fetch_all(c)
            .await
        })?;
        Ok(rows.into_iter().map(Session::from).collect())
    }

    /// How many active sessions a user has (the device cap).
    pub async fn count_active_sessions(&self, user_id: UserId) -> Result<i64, AuthError> {
        Ok(with_db!(&self.db, read, |c| {
            sqlx::query_scalar(
                "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(Id(user_id.into()))
            .fetch_one(c)
            .await
        })?)
    }

    /// Revoke sessions of `user_id` (all of them, or only `only`, or all except `except`),
    /// appending one `SessionRevoked` event (with `reason`) per session in the same
    /// transaction; returns the ids revoked now (already revoked ones are not repeated).
    pub async fn revoke_sessions(
        &self,
        user_id: UserId,
        only: Option<SessionId>,
        except: Option<SessionId>,
        reason: SessionEndReason,
    ) -> Result<Vec<SessionId>, AuthError> {
        let mut tx = self.db.begin().await?;
        let revoked = revoke_in(&mut tx, user_id, only, except, reason).await?;
        self.outbox.commit(tx).await?;
        Ok(revoked)
    }

    /// Every session revoked after `since`, with when — those of deleted accounts included
    /// (for a day): the revocations an access token may still be alive for, to announce again
    /// after the cache lost them.
    pub async fn revoked_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(SessionId, DateTime<Utc>)>, AuthError> {
        let rows: Vec<(Id, At)> = with_db!(&self.db, read, |c| {
            // The sessions kept, and those that ended with their account (deleted with it).
            sqlx::query_as(
                "SELECT session_id, revoked_at FROM sessions WHERE revoked_at > $1 \
                 UNION ALL SELECT session_id, revoked_at FROM ended_sessions WHERE revoked_at > $1",
            )
            .bind(At(since))
            .fetch_all(c)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(Id(id), At(at))| (id.into(), at))
            .collect())
    }
}

/// Insert a session and its first refresh token (inside the caller's transaction).
pub(super) async fn insert(
    tx: &mut Tx,
    session: &Session,
    refresh: &RefreshRecord,
) -> Result<(), sqlx::Error> {
    with_tx!(&mut *tx, |c| {
        sqlx::query(concat!(
            "INSERT INTO sessions (",
            session_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(Id(session.session_id.into()))
        .bind(Id(session.user_id.into()))
        .bind(Id(session.device_id.into()))
        .bind(&session.device.name)
        .bind(session.device.platform)
        .bind(&session.device.app_version)
        .bind(At(session.created_at))
        .bind(At(session.last_active_at))
        .bind(&session.last_ip)
        .bind(session.revoked_at.map(At))
        .execute(c)
        .await
        .map(|_| ())
    })?;
    with_tx!(&mut *tx, |c| {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at, \
             rotated_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&refresh.token_hash)
        .bind(Id(session.session_id.into()))
        .bind(At(refresh.issued_at))
        .bind(At(refresh.expires_at))
        .bind(refresh.rotated_at.map(At))
        .execute(c)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Revoke sessions of `user_id` inside the caller's transaction (see
/// [`AuthStore::revoke_sessions`]), appending one `SessionRevoked` event per session; the ids
/// revoked now, in order.
pub(super) async fn revoke_in(
    tx: &mut Tx,
    user_id: UserId,
    only: Option<SessionId>,
    except: Option<SessionId>,
    reason: SessionEndReason,
) -> Result<Vec<SessionId>, AuthError> {
    // One statement: on PostgreSQL a session a concurrent call revoked first is skipped
    // after its row lock is released (`revoked_at IS NULL` is re-checked); on SQLite the
    // writer runs one call at a time. Either way no id is reported twice.
    let mut revoked: Vec<(Id, Id)> = with_tx!(&mut *tx, |c| {
        sqlx::query_as(
            "UPDATE sessions SET revoked_at = $4 \
             WHERE user_id = $1 AND revoked_at IS NULL \
               AND ($2 IS NULL OR session_id = $2) \
               AND ($3 IS NULL OR session_id <> $3) \
             RETURNING session_id, device_id",
        )
        .bind(Id(user_id.into()))
        .bind(only.map(|id| Id(id.into())))
        .bind(except.map(|id| Id(id.into())))
        .bind(now())
        .fetch_all(c)
        .await
    })?;
    revoked.sort_unstable();
    for (Id(session), Id(device)) in &revoked {
        let (session, device) = (SessionId::from(*session), DeviceId::from(*device));
        let event = events::session_revoked(user_id, session, device, reason);
        Outbox::append(&mut *tx, &event).await?;
    }
    Ok(revoked
        .into_iter()
        .map(|(Id(session), _)| session.into())
        .collect())
}
