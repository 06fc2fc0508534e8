//! Sessions and their refresh tokens: inserting them, reading their rows, and the rotation.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::store::{Device, RefreshRecord, Rotation, Session, StoreError};

/// Exchange a refresh token (see [`crate::store::AuthStore::rotate_refresh`]).
pub(super) async fn rotate(
    pool: &PgPool,
    old_hash: &[u8],
    new: &RefreshRecord,
    ip: Option<&str>,
) -> Result<Rotation, StoreError> {
    let mut tx = pool.begin().await?;
    // The decision: of concurrent calls, the first takes the row lock; the others wait, then
    // see `rotated_at` set and match nothing.
    let claimed: Option<Uuid> = sqlx::query_scalar(
        "UPDATE refresh_tokens SET rotated_at = $2 \
         WHERE token_hash = $1 AND rotated_at IS NULL AND expires_at > now() \
         RETURNING session_id",
    )
    .bind(old_hash)
    // The rotation is recorded at the new token's issue time, so a retry within the grace
    // recomputes exactly the pair this call returns.
    .bind(new.issued_at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(session_id) = claimed else {
        let found = rotation_state(&mut tx, old_hash).await?;
        tx.rollback().await?;
        return Ok(found);
    };
    // Locks the session too, so a revocation racing with this refresh either lands first
    // (and this one is Invalid) or waits until the new token exists (and revokes it with
    // the session).
    let touched = sqlx::query(concat!(
        "UPDATE sessions SET last_active_at = now(), last_ip = COALESCE($2, last_ip) \
         WHERE session_id = $1 AND revoked_at IS NULL RETURNING ",
        session_columns!()
    ))
    .bind(session_id)
    .bind(ip)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = touched else {
        tx.rollback().await?;
        return Ok(Rotation::Invalid);
    };
    // The new token belongs to the old token's session: the caller knows only the hash.
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&new.token_hash)
    .bind(session_id)
    .bind(new.issued_at)
    .bind(new.expires_at)
    .execute(&mut *tx)
    .await?;
    let session = session(&row)?;
    tx.commit().await?;
    Ok(Rotation::Rotated(session))
}

/// Insert a session and its first refresh token (inside the caller's transaction).
pub(super) async fn insert_session(
    conn: &mut PgConnection,
    session: &Session,
    refresh: &RefreshRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO sessions (",
        session_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(session.session_id)
    .bind(session.user_id)
    .bind(session.device_id)
    .bind(&session.device.name)
    .bind(session.device.platform)
    .bind(&session.device.app_version)
    .bind(session.created_at)
    .bind(session.last_active_at)
    .bind(&session.last_ip)
    .bind(session.revoked_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at, rotated_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&refresh.token_hash)
    .bind(session.session_id)
    .bind(refresh.issued_at)
    .bind(refresh.expires_at)
    .bind(refresh.rotated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Why a token that could not be claimed was not: rotated before (with an active session), or
/// unusable.
async fn rotation_state(conn: &mut PgConnection, old_hash: &[u8]) -> Result<Rotation, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT t.rotated_at AS token_rotated_at, ",
        session_columns!(),
        " FROM refresh_tokens t JOIN sessions USING (session_id) WHERE t.token_hash = $1"
    ))
    .bind(old_hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Rotation::Invalid);
    };
    let rotated_at: Option<DateTime<Utc>> = row.try_get("token_rotated_at")?;
    let session = session(&row)?;
    Ok(match rotated_at {
        Some(rotated_at) if session.revoked_at.is_none() => Rotation::AlreadyRotated {
            session,
            rotated_at,
        },
        // Expired, or its session is revoked.
        _ => Rotation::Invalid,
    })
}

pub(super) fn session(row: &PgRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        session_id: row.try_get("session_id")?,
        user_id: row.try_get("user_id")?,
        device_id: row.try_get("device_id")?,
        device: Device {
            name: row.try_get("device_name")?,
            platform: row.try_get("device_platform")?,
            app_version: row.try_get("app_version")?,
        },
        created_at: row.try_get("created_at")?,
        last_active_at: row.try_get("last_active_at")?,
        last_ip: row.try_get("last_ip")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
