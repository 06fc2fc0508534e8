//! Sessions and their refresh tokens: inserting them, reading their rows, and the rotation.

use chrono::Utc;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{micros, optional_time, time, uuid};
use crate::store::{Device, RefreshRecord, Rotation, Session, StoreError};

/// Exchange a refresh token (see [`crate::store::AuthStore::rotate_refresh`]).
pub(super) async fn rotate(
    writer: &SqlitePool,
    old_hash: &[u8],
    new: &RefreshRecord,
    ip: Option<&str>,
) -> Result<Rotation, StoreError> {
    // Checked and changed inside one writer transaction: a concurrent call with the same
    // token waits for this one to commit and then finds the token rotated.
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let now = Utc::now();
    let row = sqlx::query(concat!(
        "SELECT t.expires_at AS token_expires_at, t.rotated_at AS token_rotated_at, ",
        session_columns!(),
        " FROM refresh_tokens t JOIN sessions USING (session_id) WHERE t.token_hash = $1"
    ))
    .bind(old_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(Rotation::Invalid);
    };
    let found = session(&row)?;
    let expires_at = time(&row, "token_expires_at")?;
    let rotated_at = optional_time(&row, "token_rotated_at")?;
    let outcome = match rotated_at {
        _ if found.revoked_at.is_some() => Some(Rotation::Invalid),
        Some(rotated_at) => Some(Rotation::AlreadyRotated {
            session: found.clone(),
            rotated_at,
        }),
        None if expires_at <= now => Some(Rotation::Invalid),
        None => None,
    };
    if let Some(outcome) = outcome {
        tx.rollback().await?;
        return Ok(outcome);
    }
    // Recorded at the new token's issue time: a retry within the grace recomputes this pair.
    sqlx::query("UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1")
        .bind(old_hash)
        .bind(micros(new.issued_at))
        .execute(&mut *tx)
        .await?;
    // The new token belongs to the old token's session: the caller knows only the hash.
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&new.token_hash)
    .bind(found.session_id.to_string())
    .bind(micros(new.issued_at))
    .bind(micros(new.expires_at))
    .execute(&mut *tx)
    .await?;
    let touched = sqlx::query(concat!(
        "UPDATE sessions SET last_active_at = $2, last_ip = COALESCE($3, last_ip) \
         WHERE session_id = $1 RETURNING ",
        session_columns!()
    ))
    .bind(found.session_id.to_string())
    .bind(micros(now))
    .bind(ip)
    .fetch_one(&mut *tx)
    .await?;
    let touched = session(&touched)?;
    tx.commit().await?;
    Ok(Rotation::Rotated(touched))
}

/// Insert a session and its first refresh token (inside the caller's transaction).
pub(super) async fn insert_session(
    conn: &mut SqliteConnection,
    session: &Session,
    refresh: &RefreshRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO sessions (",
        session_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(session.session_id.to_string())
    .bind(session.user_id.to_string())
    .bind(session.device_id.to_string())
    .bind(&session.device.name)
    .bind(session.device.platform)
    .bind(&session.device.app_version)
    .bind(micros(session.created_at))
    .bind(micros(session.last_active_at))
    .bind(&session.last_ip)
    .bind(session.revoked_at.map(micros))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at, rotated_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&refresh.token_hash)
    .bind(session.session_id.to_string())
    .bind(micros(refresh.issued_at))
    .bind(micros(refresh.expires_at))
    .bind(refresh.rotated_at.map(micros))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) fn session(row: &SqliteRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        session_id: uuid(row, "session_id")?,
        user_id: uuid(row, "user_id")?,
        device_id: uuid(row, "device_id")?,
        device: Device {
            name: row.try_get("device_name")?,
            platform: row.try_get("device_platform")?,
            app_version: row.try_get("app_version")?,
        },
        created_at: time(row, "created_at")?,
        last_active_at: time(row, "last_active_at")?,
        last_ip: row.try_get("last_ip")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}
