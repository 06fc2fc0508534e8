//! The event as the bus carries it.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One event: an encoded `echo.events.v1` protobuf message plus what routes and dedupes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// UUIDv7; also the `Nats-Msg-Id`, so JetStream drops a re-publish within its window.
    pub id: Uuid,
    /// `echo.<domain>.<event>.<key>`, without the deployment's subject prefix.
    pub subject: String,
    /// The full protobuf type name of `payload` (header `Echo-Event-Type`).
    pub event_type: String,
    /// The encoded protobuf message.
    pub payload: Bytes,
    /// When the change happened (the commit it belongs to).
    pub occurred_at: DateTime<Utc>,
    /// W3C `traceparent` of the request that caused it, so traces cross the bus.
    pub trace_parent: Option<String>,
}

impl Event {
    /// A new event with a fresh UUIDv7 and the current time.
    pub fn new(subject: impl Into<String>, event_type: impl Into<String>, payload: Bytes) -> Self {
        Self {
            id: Uuid::now_v7(),
            subject: subject.into(),
            event_type: event_type.into(),
            payload,
            occurred_at: Utc::now(),
            trace_parent: None,
        }
    }

    /// Event `id` (the id its payload also carries) of `event_type` on `subject`, happening
    /// now, carrying the current request's trace context so traces cross the bus.
    pub fn now(id: Uuid, subject: String, event_type: &str, payload: impl Into<Bytes>) -> Self {
        Self {
            id,
            subject,
            event_type: event_type.to_owned(),
            payload: payload.into(),
            occurred_at: Utc::now(),
            trace_parent: echo_telemetry::current_traceparent(),
        }
    }

    /// The domain of the subject (`echo.auth.…` → `auth`), which names its stream.
    pub fn domain(&self) -> Option<&str> {
        crate::subject::domain(&self.subject)
    }
}

/// A commit-safe position in an outbox: `(transaction, id)`.
///
/// On PostgreSQL `tx` is the writing transaction's `xid8` and rows are read in `(tx, id)` order
/// only below `pg_snapshot_xmin`, where nothing can still commit. On SQLite the single writer
/// makes id order commit order, so `tx` is always 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The writing transaction (0 on SQLite).
    pub tx: i64,
    /// The outbox row id.
    pub id: i64,
}
