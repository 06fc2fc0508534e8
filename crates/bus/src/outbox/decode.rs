//! Outbox rows to `(Position, Event)`, one function per backend.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use crate::{BusError, Event, Position};

/// A PostgreSQL row of `COLUMNS`, plus `tx` (the writing transaction as bigint) when selected.
pub(super) fn decode_pg(row: &sqlx::postgres::PgRow) -> Result<(Position, Event), BusError> {
    // The relay's reads do not select `tx`: it needs only ids.
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

/// A SQLite row of `COLUMNS`; `tx` is always 0 there (id order is commit order).
pub(super) fn decode_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<(Position, Event), BusError> {
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
