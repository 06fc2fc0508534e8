//! The SQLite side of the storage conventions every service's SQLite store shares: UUIDs are
//! hyphenated lowercase TEXT, times INTEGER unix microseconds (PostgreSQL's precision), id
//! lists travel as one JSON array for `json_each`. One place, so the stores cannot drift.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite};
use uuid::Uuid;

/// A time as stored: unix microseconds.
pub fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A decode failure naming what could not be read.
pub fn decode_error(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

/// A stored UUID.
pub fn parse_uuid(text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(text).map_err(|e| decode_error(format!("uuid {text:?}: {e}")))
}

/// The UUID in `column`.
pub fn uuid(row: &SqliteRow, column: &str) -> Result<Uuid, sqlx::Error> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|e| decode_error(format!("{column}: uuid {text:?}: {e}")))
}

/// The UUID in nullable `column`.
pub fn optional_uuid(row: &SqliteRow, column: &str) -> Result<Option<Uuid>, sqlx::Error> {
    match row.try_get::<Option<String>, _>(column)? {
        None => Ok(None),
        Some(_) => uuid(row, column).map(Some),
    }
}

/// The time in `column`.
pub fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    let micros: i64 = row.try_get(column)?;
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| decode_error(format!("{column}: {micros} is out of range")))
}

/// The time in nullable `column`.
pub fn optional_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    match row.try_get::<Option<i64>, _>(column)? {
        None => Ok(None),
        Some(_) => time(row, column).map(Some),
    }
}

/// `ids` as a JSON array of strings, for `json_each` (one statement for any number of ids).
pub fn json_ids(ids: &[Uuid]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    format!("[{}]", quoted.join(","))
}

/// True when `error` is a UNIQUE (or primary key) violation: a write lost to an equal one.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// A write transaction on the single writer.
pub type WriteTx = sqlx::Transaction<'static, Sqlite>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_are_json_arrays() {
        let id = Uuid::nil();
        assert_eq!(json_ids(&[]), "[]");
        assert_eq!(json_ids(&[id, id]), format!("[\"{id}\",\"{id}\"]"),);
    }
}
