//! The refresh-token exchange: one script for both backends.
//!
//! The decision is a conditional `UPDATE` (claim the token only if it is current and
//! unexpired). On PostgreSQL, of concurrent calls with one token the first takes the row lock
//! and the others, after waiting, re-check the condition and match nothing; on SQLite the
//! `BEGIN IMMEDIATE` writer runs one call at a time, so the second finds the token rotated.

use echo_store::with_tx;

use super::codec::{At, Id, SessionRow, give_up, now, session_columns};
use super::{AuthStore, RefreshRecord, Rotation, Session};
use crate::error::AuthError;

impl AuthStore {
    /// Atomically exchange a refresh token: if `old_hash` is current and unexpired and its
    /// session is active, mark it rotated AT `new.issued_at`, store `new` under the old
    /// token's session (`new.session_id` is ignored: the caller knows only the hash), touch
    /// the session (`last_ip`); see [`Rotation`] for the other cases. Concurrent calls with
    /// the same token: exactly one rotates.
    pub async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new: &RefreshRecord,
        ip: Option<&str>,
    ) -> Result<Rotation, AuthError> {
        let mut tx = self.db.begin().await?;
        let now = now();
        let claimed: Option<Id> = with_tx!(&mut tx, |c| {
            sqlx::query_scalar(
                "UPDATE refresh_tokens SET rotated_at = $2 \
                 WHERE token_hash = $1 AND rotated_at IS NULL AND expires_at > $3 \
                 RETURNING session_id",
            )
            .bind(old_hash)
            // Recorded at the new token's issue time, so a retry within the grace recomputes
            // exactly the pair this call returns.
            .bind(At(new.issued_at))
            .bind(now)
            .fetch_optional(c)
            .await
        })?;
        let Some(session_id) = claimed else {
            // Why it could not be claimed: rotated before (with an active session), or unusable
            // (unknown, expired, or its session revoked).
            let row = with_tx!(&mut tx, |c| {
                sqlx::query_as::<_, TokenState>(concat!(
                    "SELECT t.rotated_at AS token_rotated_at, ",
                    session_columns!(),
                    " FROM refresh_tokens t JOIN sessions USING (session_id) \
                      WHERE t.token_hash = $1"
                ))
                .bind(old_hash)
                .fetch_optional(c)
                .await
            })?;
            let found = match row {
                Some(TokenState {
                    token_rotated_at: Some(At(rotated_at)),
                    session,
                }) if session.revoked_at.is_none() => Rotation::AlreadyRotated {
                    session: session.into(),
                    rotated_at,
                },
                _ => Rotation::Invalid,
            };
            return give_up(tx, found).await;
        };
        // Locks the session too on PostgreSQL, so a revocation racing with this refresh either
        // lands first (and this one is Invalid) or waits until the new token exists (and
        // revokes it with the session).
        let touched: Option<SessionRow> = with_tx!(&mut tx, |c| {
            sqlx::query_as(concat!(
                "UPDATE sessions SET last_active_at = $2, last_ip = COALESCE($3, last_ip) \
                 WHERE session_id = $1 AND revoked_at IS NULL RETURNING ",
                session_columns!()
            ))
            .bind(session_id)
            .bind(now)
            .bind(ip)
            .fetch_optional(c)
            .await
        })?;
        let Some(touched) = touched else {
            return give_up(tx, Rotation::Invalid).await;
        };
        // The new token belongs to the old token's session: the caller knows only the hash.
        with_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&new.token_hash)
            .bind(session_id)
            .bind(At(new.issued_at))
            .bind(At(new.expires_at))
            .execute(c)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(Rotation::Rotated(Session::from(touched)))
    }
}

/// A refresh token's `rotated_at` with its session's row.
#[derive(sqlx::FromRow)]
struct TokenState {
    token_rotated_at: Option<At>,
    #[sqlx(flatten)]
    session: SessionRow,
}
