//! The transactional outbox: events commit with the data they describe (DESIGN §8).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use echo_store::{Database, Tx};
use sqlx::Row;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{BusError, Event, Position};

/// A service's outbox: the `outbox` table in its database plus an in-process commit signal.
#[derive(Clone)]
pub struct Outbox {
    service: &'static str,
    db: Database,
    commits: Arc<watch::Sender<u64>>,
}

/// Columns every read selects, in the order [`decode`] expects.
const COLUMNS: &str = "id, event_id, subject, event_type, payload, trace_parent, occurred_at";

impl Outbox {
    /// The outbox of `service` in `db` (whose bus migrations must have run).
    pub fn new(service: &'static str, db: Database) -> Self {
        Self {
            service,
            db,
            commits: Arc::new(watch::channel(0).0),
        }
    }

    /// The owning service (`auth`, `message`, …).
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The database holding this outbox.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Append `event` inside `tx`: it becomes visible to the bus exactly when `tx` commits.
    pub async fn append(tx: &mut Tx, event: &Event) -> Result<(), BusError> {
        match tx {
            Tx::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO outbox (event_id, subject, event_type, payload, trace_parent, \
                     occurred_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(event.id)
                .bind(&event.subject)
                .bind(&event.event_type)
                .bind(event.payload.as_ref())
                .bind(&event.trace_parent)
                .bind(event.occurred_at)
                .execute(&mut **tx)
                .await?;
                // Delivered at commit, to relays in other processes; repeats in one transaction
                // fold into one notification.
                sqlx::query("SELECT pg_notify(current_schema() || '_outbox', '')")
                    .execute(&mut **tx)
                    .await?;
            }
            Tx::Sqlite(tx) => {
                sqlx::query(
                    "INSERT INTO outbox (event_id, subject, event_type, payload, trace_parent, \
                     occurred_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(event.id.to_string())
                .bind(&event.subject)
                .bind(&event.event_type)
                .bind(event.payload.as_ref())
                .bind(&event.trace_parent)
                .bind(event.occurred_at.timestamp_micros())
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    /// Commit `tx` and wake this process's relay or embedded consumers at once.
    pub async fn commit(&self, tx: Tx) -> Result<(), BusError> {
        tx.commit().await?;
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// A receiver that changes on every commit through [`Outbox::commit`] in this process.
    pub(crate) fn commit_signal(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// The PostgreSQL NOTIFY channel that [`Outbox::append`] signals, if on PostgreSQL.
    pub(crate) fn notify_channel(&self) -> Option<String> {
        match &self.db {
            Database::Postgres(db) => Some(format!("{}_outbox", db.schema)),
            Database::Sqlite(_) => None,
        }
    }

    /// Up to `limit` rows not yet published, oldest first (for the relay).
    pub(crate) async fn unpublished(&self, limit: i64) -> Result<Vec<(i64, Event)>, BusError> {
        let sql =
            format!("SELECT {COLUMNS} FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1");
        let rows = match &self.db {
            Database::Postgres(db) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(&db.pool);
                rows.await?
                    .iter()
                    .map(decode_pg)
                    .collect::<Result<Vec<_>, _>>()?
            }
            Database::Sqlite(db) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(&db.reader);
                rows.await?
                    .iter()
                    .map(decode_sqlite)
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(position, event)| (position.id, event))
            .collect())
    }

    /// Mark rows published (only after the broker acknowledged them).
    pub(crate) async fn mark_published(&self, ids: &[i64]) -> Result<(), BusError> {
        if ids.is_empty() {
            return Ok(());
        }
        match &self.db {
            Database::Postgres(db) => {
                sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                    .bind(ids)
                    .execute(&db.pool)
                    .await?;
            }
            Database::Sqlite(db) => {
                let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                sqlx::query(
                    "UPDATE outbox SET published_at = $1 \
                     WHERE id IN (SELECT value FROM json_each($2))",
                )
                .bind(Utc::now().timestamp_micros())
                .bind(format!("[{list}]"))
                .execute(&db.writer)
                .await?;
            }
        }
        Ok(())
    }

    /// How many rows wait for the relay (the outbox lag metric).
    pub async fn unpublished_count(&self) -> Result<i64, BusError> {
        let sql = "SELECT count(*) FROM outbox WHERE published_at IS NULL";
        Ok(match &self.db {
            Database::Postgres(db) => sqlx::query_scalar(sql).fetch_one(&db.pool).await?,
            Database::Sqlite(db) => sqlx::query_scalar(sql).fetch_one(&db.reader).await?,
        })
    }

    /// Up to `limit` committed rows after `after`, in commit-safe order (embedded consumers).
    pub(crate) async fn read_after(
        &self,
        after: Position,
        limit: i64,
    ) -> Result<Vec<(Position, Event)>, BusError> {
        Ok(match &self.db {
            Database::Postgres(db) => {
                // Only rows below xmin are final: every transaction that could still commit a
                // row has an xid at or above it, and would otherwise slip in behind a reader.
                let sql = format!(
                    "SELECT {COLUMNS}, tx_id::text::bigint AS tx FROM outbox \
                     WHERE (tx_id, id) > ($1::text::xid8, $2) \
                       AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
                     ORDER BY tx_id, id LIMIT $3"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(after.tx.to_string())
                    .bind(after.id)
                    .bind(limit)
                    .fetch_all(&db.pool)
                    .await?;
                rows.iter().map(decode_pg).collect::<Result<_, _>>()?
            }
            Database::Sqlite(db) => {
                let sql =
                    format!("SELECT {COLUMNS} FROM outbox WHERE id > $1 ORDER BY id LIMIT $2");
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(after.id)
                    .bind(limit)
                    .fetch_all(&db.reader)
                    .await?;
                rows.iter().map(decode_sqlite).collect::<Result<_, _>>()?
            }
        })
    }

    /// Delete rows the bus no longer needs: published ones older than `keep` (NATS holds them),
    /// or on the embedded bus every row older than `keep` (its retention, like `max_age`).
    pub async fn prune(&self, keep: Duration, published_only: bool) -> Result<u64, BusError> {
        let cutoff = Utc::now() - chrono::Duration::from_std(keep).unwrap_or_default();
        let published = if published_only {
            "published_at IS NOT NULL AND "
        } else {
            ""
        };
        let sql = format!("DELETE FROM outbox WHERE {published}occurred_at < $1");
        let done = match &self.db {
            Database::Postgres(db) => sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(cutoff)
                .execute(&db.pool)
                .await?
                .rows_affected(),
            Database::Sqlite(db) => sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(cutoff.timestamp_micros())
                .execute(&db.writer)
                .await?
                .rows_affected(),
        };
        Ok(done)
    }

    /// Wait until a commit in this process, or `timeout` (the polling fallback).
    pub(crate) async fn wait_for_commit(signal: &mut watch::Receiver<u64>, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, signal.changed()).await;
    }
}

fn decode_pg(row: &sqlx::postgres::PgRow) -> Result<(Position, Event), BusError> {
    let tx: i64 = row.try_get("tx").unwrap_or(0);
    let event = Event {
        id: row.try_get::<Uuid, _>("event_id")?,
        subject: row.try_get("subject")?,
        event_type: row.try_get("event_type")?,
        payload: Bytes::from(row.try_get::<Vec<u8>, _>("payload")?),
        occurred_at: row.try_get::<DateTime<Utc>, _>("occurred_at")?,
        trace_parent: row.try_get("trace_parent")?,
    };
    Ok((
        Position {
            tx,
            id: row.try_get("id")?,
        },
        event,
    ))
}

fn decode_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<(Position, Event), BusError> {
    let id: String = row.try_get("event_id")?;
    let micros: i64 = row.try_get("occurred_at")?;
    let event = Event {
        id: Uuid::parse_str(&id).map_err(|e| BusError::Malformed(format!("event_id {id}: {e}")))?,
        subject: row.try_get("subject")?,
        event_type: row.try_get("event_type")?,
        payload: Bytes::from(row.try_get::<Vec<u8>, _>("payload")?),
        occurred_at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
        trace_parent: row.try_get("trace_parent")?,
    };
    Ok((
        Position {
            tx: 0,
            id: row.try_get("id")?,
        },
        event,
    ))
}
