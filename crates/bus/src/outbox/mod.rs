//! The transactional outbox: events commit with the data they describe (DESIGN §8).
//!
//! It is also a replayable event log: rows are read back by commit-safe [`Position`](crate::Position)
//! (`log`), pruned behind a recorded horizon (`prune`), and followed live through
//! [`CommitWatch`] (`watch`).

mod decode;
mod log;
mod prune;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use echo_store::{Database, Tx};
use tokio::sync::watch as signal;

use crate::{BusError, Event};
use decode::{decode_pg, decode_sqlite};
pub use prune::prune_periodically;
pub use watch::CommitWatch;
use watch::Notifications;

/// A service's outbox: the `outbox` table in its database plus an in-process commit signal.
#[derive(Clone)]
pub struct Outbox {
    service: &'static str,
    db: Database,
    commits: Arc<signal::Sender<u64>>,
    /// NOTIFYs from commits in any process (PostgreSQL), fed by one shared LISTEN task.
    notifications: Arc<Notifications>,
}

/// Columns every read selects, as the `decode` functions expect them.
const COLUMNS: &str = "id, event_id, subject, event_type, payload, trace_parent, occurred_at";

impl Outbox {
    /// The outbox of `service` in `db` (whose bus migrations must have run).
    pub fn new(service: &'static str, db: Database) -> Self {
        Self {
            service,
            db,
            commits: Arc::new(signal::channel(0).0),
            notifications: Arc::new(Notifications::default()),
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

    /// Append `events` inside `tx`, in order (their positions follow it): on PostgreSQL one
    /// INSERT and one notification for all of them (a batch of sends has many).
    pub async fn append_all(tx: &mut Tx, events: &[Event]) -> Result<(), BusError> {
        let Tx::Postgres(pg) = tx else {
            for event in events {
                Self::append(tx, event).await?;
            }
            return Ok(());
        };
        if let [event] = events {
            return Self::append(tx, event).await;
        }
        let mut ids = Vec::with_capacity(events.len());
        let mut subjects = Vec::with_capacity(events.len());
        let mut types = Vec::with_capacity(events.len());
        let mut payloads = Vec::with_capacity(events.len());
        let mut traces = Vec::with_capacity(events.len());
        let mut times = Vec::with_capacity(events.len());
        for event in events {
            ids.push(event.id);
            subjects.push(event.subject.as_str());
            types.push(event.event_type.as_str());
            payloads.push(event.payload.as_ref());
            traces.push(event.trace_parent.as_deref());
            times.push(event.occurred_at);
        }
        // ORDER BY the array index: the ids (bigserial) are drawn in the events' order.
        sqlx::query(
            "INSERT INTO outbox (event_id, subject, event_type, payload, trace_parent, \
             occurred_at) \
             SELECT e.id, e.subject, e.event_type, e.payload, e.trace_parent, e.occurred_at \
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::text[], \
                         $6::timestamptz[]) WITH ORDINALITY \
               AS e(id, subject, event_type, payload, trace_parent, occurred_at, n) \
             ORDER BY e.n",
        )
        .bind(&ids)
        .bind(&subjects)
        .bind(&types)
        .bind(&payloads)
        .bind(&traces)
        .bind(&times)
        .execute(&mut **pg)
        .await?;
        sqlx::query("SELECT pg_notify(current_schema() || '_outbox', '')")
            .execute(&mut **pg)
            .await?;
        Ok(())
    }

    /// Commit `tx` and wake this process's relay or embedded consumers at once.
    pub async fn commit(&self, tx: Tx) -> Result<(), BusError> {
        tx.commit().await?;
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// A receiver that changes on every commit through [`Outbox::commit`] in this process.
    pub(crate) fn commit_signal(&self) -> signal::Receiver<u64> {
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

    /// Wait until a commit in this process, or `timeout` (the polling fallback).
    pub(crate) async fn wait_for_commit(signal: &mut signal::Receiver<u64>, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, signal.changed()).await;
    }
}
