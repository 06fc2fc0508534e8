//! Blocks.

use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_store::Tx;
use sqlx::SqlitePool;
use uuid::Uuid;

use super::{begin, is_live, micros, refuse, sql_limit, time, uuid};
use crate::store::{BlockEntry, BlockPosition, StoreError};

/// See [`crate::store::UserStore::block`].
pub(super) async fn block(
    writer: &SqlitePool,
    outbox: &Outbox,
    blocker: Uuid,
    blocked: Uuid,
    at: DateTime<Utc>,
    event: &Event,
) -> Result<bool, StoreError> {
    let mut tx = begin(writer).await?;
    if !is_live(&mut tx, blocked).await? {
        return refuse(tx, StoreError::UserNotFound).await;
    }
    let inserted = sqlx::query(
        "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
    )
    .bind(blocker.to_string())
    .bind(blocked.to_string())
    .bind(micros(at))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "UPDATE contact_requests SET state = 4, updated_at = $3 \
         WHERE ((sender_id = $1 AND recipient_id = $2) OR (sender_id = $2 AND recipient_id = $1)) \
           AND state IN (1, 3)",
    )
    .bind(blocker.to_string())
    .bind(blocked.to_string())
    .bind(micros(at))
    .execute(&mut *tx)
    .await?;
    let mut tx = Tx::Sqlite(tx);
    Outbox::append(&mut tx, event).await?;
    outbox.commit(tx).await?;
    Ok(true)
}

/// See [`crate::store::UserStore::unblock`].
pub(super) async fn unblock(
    writer: &SqlitePool,
    outbox: &Outbox,
    blocker: Uuid,
    blocked: Uuid,
    event: &Event,
) -> Result<bool, StoreError> {
    let mut tx = begin(writer).await?;
    let deleted = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
        .bind(blocker.to_string())
        .bind(blocked.to_string())
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    let mut tx = Tx::Sqlite(tx);
    Outbox::append(&mut tx, event).await?;
    outbox.commit(tx).await?;
    Ok(true)
}

/// See [`crate::store::UserStore::list_blocked`].
pub(super) async fn list_blocked(
    reader: &SqlitePool,
    blocker: Uuid,
    after: Option<&BlockPosition>,
    limit: usize,
) -> Result<Vec<BlockEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT blocked_id, created_at FROM blocks \
         WHERE blocker_id = $1 AND ($2 IS NULL OR (created_at, blocked_id) < ($2, $3)) \
         ORDER BY created_at DESC, blocked_id DESC LIMIT $4",
    )
    .bind(blocker.to_string())
    .bind(after.map(|a| a.blocked_at_micros))
    .bind(after.map(|a| a.user_id.to_string()))
    .bind(sql_limit(limit))
    .fetch_all(reader)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(BlockEntry {
                user_id: uuid(row, "blocked_id")?,
                blocked_at: time(row, "created_at")?,
            })
        })
        .collect()
}
