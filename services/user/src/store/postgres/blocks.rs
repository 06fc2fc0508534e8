//! Blocks.

use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_store::Tx;
use sqlx::PgPool;
use uuid::Uuid;

use super::{lock_pair, refuse, sql_limit};
use crate::store::{BlockEntry, BlockPosition, StoreError};

/// See [`crate::store::UserStore::block`].
pub(super) async fn block(
    pool: &PgPool,
    outbox: &Outbox,
    blocker: Uuid,
    blocked: Uuid,
    at: DateTime<Utc>,
    event: &Event,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    // Under the pair's lock no request between the two can be sent or accepted meanwhile, so
    // none stays open past the block.
    let live = lock_pair(&mut tx, blocker, blocked).await?;
    if !live.contains(&blocked) {
        return refuse(tx, StoreError::UserNotFound).await;
    }
    let inserted = sqlx::query(
        "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
    )
    .bind(blocker)
    .bind(blocked)
    .bind(at)
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
    .bind(blocker)
    .bind(blocked)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let mut tx = Tx::Postgres(tx);
    Outbox::append(&mut tx, event).await?;
    outbox.commit(tx).await?;
    Ok(true)
}

/// See [`crate::store::UserStore::unblock`].
pub(super) async fn unblock(
    pool: &PgPool,
    outbox: &Outbox,
    blocker: Uuid,
    blocked: Uuid,
    event: &Event,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
        .bind(blocker)
        .bind(blocked)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    let mut tx = Tx::Postgres(tx);
    Outbox::append(&mut tx, event).await?;
    outbox.commit(tx).await?;
    Ok(true)
}

/// See [`crate::store::UserStore::list_blocked`].
pub(super) async fn list_blocked(
    pool: &PgPool,
    blocker: Uuid,
    after: Option<&BlockPosition>,
    limit: usize,
) -> Result<Vec<BlockEntry>, StoreError> {
    let after = match after {
        None => None,
        Some(position) => {
            let at =
                DateTime::from_timestamp_micros(position.blocked_at_micros).ok_or_else(|| {
                    sqlx::Error::InvalidArgument(format!(
                        "block position {} is out of range",
                        position.blocked_at_micros
                    ))
                })?;
            Some((at, position.user_id))
        }
    };
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT blocked_id, created_at FROM blocks \
         WHERE blocker_id = $1 \
           AND ($2::timestamptz IS NULL OR (created_at, blocked_id) < ($2, $3)) \
         ORDER BY created_at DESC, blocked_id DESC LIMIT $4",
    )
    .bind(blocker)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, user_id)| user_id))
    .bind(sql_limit(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(user_id, blocked_at)| BlockEntry {
            user_id,
            blocked_at,
        })
        .collect())
}
