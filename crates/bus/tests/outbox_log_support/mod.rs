//! Setup for `outbox_log.rs`: one isolated outbox database per test on either backend, and the
//! reads and assertions its cases share.

use std::time::Duration;

use bytes::Bytes;
use echo_bus::{CommitWatch, Event, Outbox, Position};
use echo_store::{Database, Tx};
use echo_testenv::Server;
use uuid::Uuid;

use crate::common::{WAIT, commit, drop_schemas, init_logging, open_db, unique_prefix};

/// The subject family the subject cases use (`<SUBJECT>.a`, `<SUBJECT>.a2`, …).
pub const SUBJECT: &str = "echo.message.user_event";

/// Which database a case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One case per backend for each named `async fn(Backend)`.
#[macro_export]
macro_rules! both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(super::Backend::Postgres).await
            }
        }
    )*};
}

/// An isolated, migrated outbox database: a unique PostgreSQL schema or a tempdir of SQLite
/// files.
pub struct Log {
    pub outbox: Outbox,
    url: String,
    prefix: String,
    _dir: Option<tempfile::TempDir>,
}

impl Log {
    /// `None` (after a loud skip notice) when PostgreSQL is needed and absent.
    pub async fn open(backend: Backend) -> Option<Log> {
        init_logging();
        let (url, prefix, dir) = match backend {
            Backend::Postgres => (echo_testenv::url(Server::Postgres)?, unique_prefix(), None),
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}/echo.db", dir.path().display());
                (url, String::new(), Some(dir))
            }
        };
        let db = open_db(&url, "auth", &prefix).await;
        Some(Log {
            outbox: Outbox::new("auth", db),
            url,
            prefix,
            _dir: dir,
        })
    }

    /// Another `Outbox` on the same database with pools of its own, as another process has
    /// (the bus migrations run again, as they do at every start).
    pub async fn reopen(&self) -> Outbox {
        Outbox::new("auth", open_db(&self.url, "auth", &self.prefix).await)
    }

    /// Mark the row of `event_id` published, as the relay does after a PubAck.
    pub async fn mark_published(&self, event_id: Uuid) {
        match self.outbox.database() {
            Database::Postgres(db) => {
                sqlx::query("UPDATE outbox SET published_at = now() WHERE event_id = $1")
                    .bind(event_id)
                    .execute(&db.pool)
                    .await
                    .expect("mark published");
            }
            Database::Sqlite(db) => {
                sqlx::query("UPDATE outbox SET published_at = 1 WHERE event_id = $1")
                    .bind(event_id.to_string())
                    .execute(&db.writer)
                    .await
                    .expect("mark published");
            }
        }
    }

    /// Close the pools and drop this test's schema.
    pub async fn cleanup(self) {
        self.outbox.database().close().await;
        if !self.prefix.is_empty() {
            drop_schemas(&self.url, &self.prefix, &["auth"]).await;
        }
    }
}

/// The head once it covers at least `count` rows, and those rows (from the start). On
/// PostgreSQL the head waits for every older transaction on the shared server to end.
pub async fn settled(outbox: &Outbox, count: usize) -> (Position, Vec<(Position, Event)>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let head = outbox.head().await.expect("head");
        let rows = outbox
            .read_range(Position::default(), head, 10_000)
            .await
            .expect("read range");
        if rows.len() >= count {
            return (head, rows);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "head {head:?} never covered {count} rows (has {})",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `names` as full subjects under [`SUBJECT`].
pub fn subjects(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| format!("{SUBJECT}.{name}"))
        .collect()
}

/// A fresh event on `<SUBJECT>.<name>`.
pub fn event_on(name: &str) -> Event {
    Event::new(
        format!("{SUBJECT}.{name}"),
        "echo.events.v1.UserEvent",
        Bytes::from(name.to_owned()),
    )
}

/// Commit one event per name, in order, one transaction each.
pub async fn commit_subjects(outbox: &Outbox, names: &[&str]) -> Vec<Event> {
    let mut events = Vec::new();
    for name in names {
        let event = event_on(name);
        commit(outbox, &event).await;
        events.push(event);
    }
    events
}

/// The event ids of `rows`, in order.
pub fn ids(rows: &[(Position, Event)]) -> Vec<Uuid> {
    rows.iter().map(|(_, event)| event.id).collect()
}

/// The ids of `events`, in order.
pub fn ids_of(events: &[Event]) -> Vec<Uuid> {
    events.iter().map(|event| event.id).collect()
}

/// Positions strictly increase along `rows`.
pub fn assert_increasing(rows: &[(Position, Event)]) {
    for pair in rows.windows(2) {
        assert!(pair[0].0 < pair[1].0, "positions out of order: {rows:?}");
    }
}

/// The xid of `tx` (assigning one now if it has none), as stored in `outbox.tx_id`.
pub async fn current_xid(tx: &mut Tx) -> i64 {
    sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(tx.postgres().expect("a postgres transaction"))
        .await
        .expect("current xid")
}

/// Consume pending wakeups until the watch has been quiet for a while (the first LISTEN
/// connection wakes it once, as any reconnect does).
pub async fn drain(watch: &mut CommitWatch) {
    let mut wakes = 0;
    while tokio::time::timeout(Duration::from_millis(300), watch.changed())
        .await
        .is_ok()
    {
        wakes += 1;
        assert!(wakes < 20, "the watch never goes quiet");
    }
}
