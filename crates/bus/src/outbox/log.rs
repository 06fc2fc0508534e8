//! The outbox as a replayable event log: its epoch, its commit-safe head, its pruning horizon,
//! and reads by position range (all subjects, or a set of them).
//!
//! PostgreSQL orders rows by `(tx_id, id)` and reads only below
//! `pg_snapshot_xmin(pg_current_snapshot())`: every transaction that could still commit a row
//! has an xid at or above it, and ids alone are not commit-safe (a slower transaction commits a
//! lower id after a reader moved past it). SQLite's single writer makes id order commit order.

use echo_store::Database;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{COLUMNS, Outbox, decode_pg, decode_sqlite};
use crate::{BusError, Event, Position};

/// An `upto` that bounds nothing.
const END: Position = Position {
    tx: i64::MAX,
    id: i64::MAX,
};

/// The rows of a PostgreSQL read, before the subject filter: `(after, upto]` and final.
/// `$1, $2` = after, `$3, $4` = upto. The plain `tx_id` bounds let an index on
/// `(subject, tx_id, id)` narrow the scan; the row comparisons are exact.
const PG_RANGE: &str = "tx_id >= $1::text::xid8 AND tx_id <= $3::text::xid8 \
     AND (tx_id, id) > ($1::text::xid8, $2) AND (tx_id, id) <= ($3::text::xid8, $4) \
     AND tx_id < pg_snapshot_xmin(pg_current_snapshot())";

/// The subjects of `$6` (a text array), each once, as table `wanted(subject)`.
const PG_WANTED: &str = "(SELECT DISTINCT unnest($6::text[])) AS wanted(subject)";

impl Outbox {
    /// This outbox's epoch: a random id fixed when its table was created. A cursor from another
    /// epoch (a rebuilt or restored database, another deployment) cannot be resumed.
    pub async fn epoch(&self) -> Result<Uuid, BusError> {
        Ok(match &self.db {
            Database::Postgres(db) => {
                sqlx::query_scalar("SELECT epoch FROM outbox_log")
                    .fetch_one(&db.pool)
                    .await?
            }
            Database::Sqlite(db) => {
                let text: String = sqlx::query_scalar("SELECT epoch FROM outbox_log")
                    .fetch_one(&db.reader)
                    .await?;
                Uuid::parse_str(&text)
                    .map_err(|e| BusError::Malformed(format!("outbox epoch {text}: {e}")))?
            }
        })
    }

    /// The commit-safe head: every row at or below it is final (committed, or never will be).
    ///
    /// PostgreSQL: `Position { tx: xmin - 1, id: i64::MAX }` with xmin =
    /// `pg_snapshot_xmin(pg_current_snapshot())`, so `(tx_id, id) > head` means `tx_id >= xmin`.
    /// SQLite: `Position { tx: 0, id: <largest id ever allocated> }` (from `sqlite_sequence`, so
    /// it never goes back after pruning; 0 when empty).
    pub async fn head(&self) -> Result<Position, BusError> {
        Ok(match &self.db {
            Database::Postgres(db) => {
                let xmin: i64 = sqlx::query_scalar(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                )
                .fetch_one(&db.pool)
                .await?;
                Position {
                    tx: xmin - 1,
                    id: i64::MAX,
                }
            }
            Database::Sqlite(db) => {
                let id: i64 = sqlx::query_scalar(
                    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)",
                )
                .fetch_one(&db.reader)
                .await?;
                Position { tx: 0, id }
            }
        })
    }

    /// Rows at or below the horizon may have been pruned (`Position::default()` if never
    /// pruned). A cursor below it cannot be resumed without loss.
    pub async fn horizon(&self) -> Result<Position, BusError> {
        let sql = "SELECT horizon_tx, horizon_id FROM outbox_log";
        let (tx, id): (i64, i64) = match &self.db {
            Database::Postgres(db) => sqlx::query_as(sql).fetch_one(&db.pool).await?,
            Database::Sqlite(db) => sqlx::query_as(sql).fetch_one(&db.reader).await?,
        };
        Ok(Position { tx, id })
    }

    /// Rows of any subject with position in `(after, upto]`, in position order, at most
    /// `limit`. On PostgreSQL only final rows (below xmin) are read, whatever `upto` says.
    pub async fn read_range(
        &self,
        after: Position,
        upto: Position,
        limit: i64,
    ) -> Result<Vec<(Position, Event)>, BusError> {
        if limit <= 0 || upto <= after {
            return Ok(Vec::new());
        }
        Ok(match &self.db {
            Database::Postgres(db) => {
                let sql = format!(
                    "SELECT {COLUMNS}, tx_id::text::bigint AS tx FROM outbox \
                     WHERE {PG_RANGE} ORDER BY tx_id, id LIMIT $5"
                );
                let (after_tx, after_id, upto_tx, upto_id) = pg_bounds(after, upto);
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(after_tx)
                    .bind(after_id)
                    .bind(upto_tx)
                    .bind(upto_id)
                    .bind(limit)
                    .fetch_all(&db.pool)
                    .await?;
                rows.iter().map(decode_pg).collect::<Result<_, _>>()?
            }
            Database::Sqlite(db) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM outbox WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(after.id)
                    .bind(upto.id)
                    .bind(limit)
                    .fetch_all(&db.reader)
                    .await?;
                rows.iter().map(decode_sqlite).collect::<Result<_, _>>()?
            }
        })
    }

    /// Rows whose subject is one of `subjects` (exact match) with position in `(after, upto]`,
    /// in position order, at most `limit`.
    ///
    /// Each subject is an index range scan of its own (`(subject, tx_id, id)` on PostgreSQL,
    /// `(subject, id)` on SQLite), so the cost follows the rows wanted, not the outbox size.
    pub async fn read_subjects(
        &self,
        subjects: &[String],
        after: Position,
        upto: Position,
        limit: i64,
    ) -> Result<Vec<(Position, Event)>, BusError> {
        if limit <= 0 || subjects.is_empty() || upto <= after {
            return Ok(Vec::new());
        }
        Ok(match &self.db {
            Database::Postgres(db) => {
                // Per subject, at most `limit` positions in order, from the index alone; the
                // first `limit` of them merged are the answer, and only those rows are fetched.
                // (A plain `subject = ANY` would read and sort every row in range first.)
                let sql = format!(
                    "SELECT {COLUMNS}, tx_id::text::bigint AS tx FROM outbox WHERE id IN ( \
                       SELECT picked.id FROM {PG_WANTED} CROSS JOIN LATERAL ( \
                         SELECT tx_id, id FROM outbox \
                         WHERE outbox.subject = wanted.subject AND {PG_RANGE} \
                         ORDER BY tx_id, id LIMIT $5) AS picked \
                       ORDER BY picked.tx_id, picked.id LIMIT $5) \
                     ORDER BY tx_id, id"
                );
                let (after_tx, after_id, upto_tx, upto_id) = pg_bounds(after, upto);
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(after_tx)
                    .bind(after_id)
                    .bind(upto_tx)
                    .bind(upto_id)
                    .bind(limit)
                    .bind(subjects)
                    .fetch_all(&db.pool)
                    .await?;
                rows.iter().map(decode_pg).collect::<Result<_, _>>()?
            }
            Database::Sqlite(db) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM outbox INDEXED BY outbox_subject_order \
                     WHERE subject IN (SELECT value FROM json_each($1)) \
                       AND id > $2 AND id <= $3 ORDER BY id LIMIT $4"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(json_string_array(subjects))
                    .bind(after.id)
                    .bind(upto.id)
                    .bind(limit)
                    .fetch_all(&db.reader)
                    .await?;
                rows.iter().map(decode_sqlite).collect::<Result<_, _>>()?
            }
        })
    }

    /// How many rows of `subjects` lie in `(after, upto]`, counting at most `cap` (it stops
    /// early, so asking "more than N behind?" stays cheap however far behind a cursor is).
    pub async fn count_subjects(
        &self,
        subjects: &[String],
        after: Position,
        upto: Position,
        cap: i64,
    ) -> Result<i64, BusError> {
        if cap <= 0 || subjects.is_empty() || upto <= after {
            return Ok(0);
        }
        Ok(match &self.db {
            Database::Postgres(db) => {
                let sql = format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {PG_WANTED} CROSS JOIN LATERAL ( \
                       SELECT 1 FROM outbox \
                       WHERE outbox.subject = wanted.subject AND {PG_RANGE} LIMIT $5) AS hit \
                     LIMIT $5) AS capped"
                );
                let (after_tx, after_id, upto_tx, upto_id) = pg_bounds(after, upto);
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(after_tx)
                    .bind(after_id)
                    .bind(upto_tx)
                    .bind(upto_id)
                    .bind(cap)
                    .bind(subjects)
                    .fetch_one(&db.pool)
                    .await?
            }
            Database::Sqlite(db) => {
                let sql = "SELECT count(*) FROM (SELECT 1 FROM outbox \
                     INDEXED BY outbox_subject_order \
                     WHERE subject IN (SELECT value FROM json_each($1)) \
                       AND id > $2 AND id <= $3 LIMIT $4)";
                sqlx::query_scalar(sql)
                    .bind(json_string_array(subjects))
                    .bind(after.id)
                    .bind(upto.id)
                    .bind(cap)
                    .fetch_one(&db.reader)
                    .await?
            }
        })
    }

    /// Up to `limit` final rows after `after`, in commit-safe order (embedded consumers).
    pub(crate) async fn read_after(
        &self,
        after: Position,
        limit: i64,
    ) -> Result<Vec<(Position, Event)>, BusError> {
        self.read_range(after, END, limit).await
    }
}

/// `after` and `upto` as `$1..$4` of [`PG_RANGE`] bind them. xid8 has no binary binding in
/// sqlx, so it travels as text; a negative `tx` (before every transaction) becomes 0, which is
/// also before every transaction.
fn pg_bounds(after: Position, upto: Position) -> (String, i64, String, i64) {
    (
        after.tx.max(0).to_string(),
        after.id,
        upto.tx.max(0).to_string(),
        upto.id,
    )
}

/// `values` as a JSON array of strings, for SQLite's `json_each` (a list of any length in one
/// bound parameter).
fn json_string_array(values: &[String]) -> String {
    let mut json = String::from("[");
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push('"');
        for c in value.chars() {
            match c {
                '"' => json.push_str("\\\""),
                '\\' => json.push_str("\\\\"),
                c if u32::from(c) < 0x20 => json.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => json.push(c),
            }
        }
        json.push('"');
    }
    json.push(']');
    json
}

#[cfg(test)]
mod tests {
    use super::json_string_array;

    #[test]
    fn json_string_array_escapes_what_json_requires() {
        let values = ["a".to_owned(), "q\"b\\s".to_owned(), "nl\n".to_owned()];
        assert_eq!(json_string_array(&values), r#"["a","q\"b\\s","nl\u000a"]"#);
        assert_eq!(json_string_array(&[]), "[]");
    }
}
