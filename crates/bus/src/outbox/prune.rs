//! Retention: deleting rows the log no longer keeps, behind a horizon readers can check.

use std::time::Duration;

use chrono::{DateTime, Utc};
use echo_store::Database;
use sqlx::AssertSqlSafe;
use tokio_util::sync::CancellationToken;

use super::Outbox;
use crate::BusError;

/// Rows deleted per transaction. Short transactions matter: on PostgreSQL an open write
/// transaction holds the log's head (and live delivery) below its xid, and on SQLite it holds
/// the single writer.
const PRUNE_BATCH: i64 = 2000;

impl Outbox {
    /// Delete rows the bus no longer needs: published ones older than `keep` (NATS holds them),
    /// or on the embedded bus every row older than `keep` (its retention, like `max_age`).
    ///
    /// Each batch raises the horizon to the highest position it deleted (never lowering it) in
    /// the same transaction, so a reader can tell that a cursor fell behind retention. Returns
    /// how many rows were deleted.
    pub async fn prune(&self, keep: Duration, published_only: bool) -> Result<u64, BusError> {
        let cutoff = Utc::now() - chrono::Duration::from_std(keep).unwrap_or_default();
        let published = if published_only {
            "published_at IS NOT NULL AND "
        } else {
            ""
        };
        let condition = format!("{published}occurred_at < $1");
        let mut total = 0;
        loop {
            let deleted = match &self.db {
                Database::Postgres(_) => self.prune_batch_pg(&condition, cutoff).await?,
                Database::Sqlite(_) => self.prune_batch_sqlite(&condition, cutoff).await?,
            };
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// One batch on PostgreSQL: one statement, so the delete and the horizon commit together.
    /// Data-modifying CTEs run to completion even when nothing reads them (`raised`).
    async fn prune_batch_pg(
        &self,
        condition: &str,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, BusError> {
        let Database::Postgres(db) = &self.db else {
            return Ok(0);
        };
        let sql = format!(
            "WITH deleted AS ( \
               DELETE FROM outbox WHERE id IN ( \
                 SELECT id FROM outbox WHERE {condition} ORDER BY id LIMIT $2) \
               RETURNING tx_id::text::bigint AS tx, id), \
             top AS (SELECT tx, id FROM deleted ORDER BY tx DESC, id DESC LIMIT 1), \
             raised AS ( \
               UPDATE outbox_log SET horizon_tx = top.tx, horizon_id = top.id FROM top \
               WHERE (top.tx, top.id) > (outbox_log.horizon_tx, outbox_log.horizon_id) \
               RETURNING 1) \
             SELECT count(*) FROM deleted"
        );
        let deleted: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(cutoff)
            .bind(PRUNE_BATCH)
            .fetch_one(&db.pool)
            .await?;
        Ok(u64::try_from(deleted).unwrap_or_default())
    }

    /// One batch on SQLite: the lowest `PRUNE_BATCH` matching ids, in one write transaction.
    async fn prune_batch_sqlite(
        &self,
        condition: &str,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, BusError> {
        let cutoff = cutoff.timestamp_micros();
        let mut tx = self.db.begin().await?;
        let conn = tx.sqlite()?;
        // BEGIN IMMEDIATE took the write lock: every matching id up to `highest` is in the
        // batch found here, and exactly those are deleted below.
        let highest: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT max(id) FROM (SELECT id FROM outbox WHERE {condition} ORDER BY id LIMIT $2)"
        )))
        .bind(cutoff)
        .bind(PRUNE_BATCH)
        .fetch_one(&mut *conn)
        .await?;
        let Some(highest) = highest else {
            tx.rollback().await?;
            return Ok(0);
        };
        let deleted = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM outbox WHERE {condition} AND id <= $2"
        )))
        .bind(cutoff)
        .bind(highest)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        sqlx::query("UPDATE outbox_log SET horizon_tx = 0, horizon_id = $1 WHERE horizon_id < $1")
            .bind(highest)
            .execute(&mut *conn)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

/// Prune `outbox` at once and then every `every`, keeping `keep`, until `shutdown` (at once,
/// so a process restarted more often than `every` still prunes). Failures are logged and the
/// next round tries again.
pub async fn prune_periodically(
    outbox: Outbox,
    keep: Duration,
    published_only: bool,
    every: Duration,
    shutdown: CancellationToken,
) {
    let service = outbox.service();
    loop {
        let pruned = tokio::select! {
            () = shutdown.cancelled() => return,
            pruned = outbox.prune(keep, published_only) => pruned,
        };
        match pruned {
            Ok(deleted) => tracing::debug!(service, deleted, "outbox pruned"),
            Err(error) => {
                tracing::warn!(service, %error, "outbox prune failed; next round retries")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
