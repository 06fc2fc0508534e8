//! Shared setup for the bus integration tests: isolated databases (a unique Postgres schema
//! prefix or a tempdir of SQLite files), a unique NATS subject prefix, running consumers and
//! bounded waits (a failure fails; nothing hangs).
#![allow(dead_code)]

mod effects;

use std::future::Future;
use std::sync::{Arc, Once};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use echo_bus::{ConsumerSpec, EmbeddedBus, Event, EventBus, NatsBus, NatsSettings, Outbox};
use echo_store::Database;
use echo_testenv::{Server, unique_name};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use effects::*;

/// The longest any single wait in these tests may take before it counts as a failure.
pub const WAIT: Duration = Duration::from_secs(12);

/// Logs stay silent unless `TEST_LOG=1`.
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "echo_bus=debug,info".into()),
                )
                .with_test_writer()
                .try_init();
        }
    });
}

/// The bus/database combinations the conformance suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    EmbeddedSqlite,
    EmbeddedPostgres,
    NatsPostgres,
    NatsSqlite,
}

impl Kind {
    fn postgres(self) -> bool {
        matches!(self, Kind::EmbeddedPostgres | Kind::NatsPostgres)
    }
    fn nats(self) -> bool {
        matches!(self, Kind::NatsPostgres | Kind::NatsSqlite)
    }
}

/// A direct JetStream handle for inspecting streams (not through the bus under test).
pub struct NatsSide {
    pub settings: NatsSettings,
    pub js: jetstream::Context,
}

/// One isolated environment: a bus, a producing service's outbox, a consumer's own database.
pub struct Env {
    pub kind: Kind,
    pub bus: Arc<dyn EventBus>,
    pub outbox: Outbox,
    pub consumer_db: Database,
    pub nats: Option<NatsSide>,
    pg: Option<(String, String)>, // (url, schema prefix)
    _dir: Option<tempfile::TempDir>,
}

/// A Postgres schema prefix unique to this test.
pub fn unique_prefix() -> String {
    format!("{}_", unique_name("t"))
}

/// NATS settings with a unique subject prefix and explicit windows.
pub fn nats_settings() -> NatsSettings {
    NatsSettings {
        subject_prefix: format!("{}.", unique_name("t")),
        duplicate_window: Duration::from_secs(120),
        max_age: Duration::from_secs(600),
    }
}

/// Open `service`'s database and apply the bus migrations.
pub async fn open_db(url: &str, service: &str, prefix: &str) -> Database {
    let db = Database::connect(url, service, prefix)
        .await
        .expect("connect database");
    db.migrate(&echo_bus::migrations())
        .await
        .expect("bus migrations");
    db
}

impl Env {
    /// `None` (after a loud skip notice) when a server this kind needs is absent.
    pub async fn new(kind: Kind) -> Option<Env> {
        init_logging();
        let pg_url = if kind.postgres() {
            Some(echo_testenv::url(Server::Postgres)?)
        } else {
            None
        };
        let nats_url = if kind.nats() {
            Some(echo_testenv::url(Server::Nats)?)
        } else {
            None
        };
        let (dir, pg, outbox_db, consumer_db) = match &pg_url {
            Some(url) => {
                let prefix = unique_prefix();
                let outbox_db = open_db(url, "auth", &prefix).await;
                let consumer_db = open_db(url, "consumer", &prefix).await;
                (None, Some((url.clone(), prefix)), outbox_db, consumer_db)
            }
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}/echo.db", dir.path().display());
                let outbox_db = open_db(&url, "auth", "").await;
                let consumer_db = open_db(&url, "consumer", "").await;
                (Some(dir), None, outbox_db, consumer_db)
            }
        };
        create_effects_table(&consumer_db).await;
        let (bus, nats): (Arc<dyn EventBus>, _) = match &nats_url {
            Some(url) => {
                let settings = nats_settings();
                let bus = NatsBus::connect(url, settings.clone())
                    .await
                    .expect("connect NATS");
                let client = async_nats::connect(url)
                    .await
                    .expect("connect NATS (inspection)");
                (
                    Arc::new(bus),
                    Some(NatsSide {
                        settings,
                        js: jetstream::new(client),
                    }),
                )
            }
            None => (Arc::new(EmbeddedBus::new()), None),
        };
        let outbox = Outbox::new("auth", outbox_db);
        bus.attach_outbox(outbox.clone())
            .await
            .expect("attach outbox");
        Some(Env {
            kind,
            bus,
            outbox,
            consumer_db,
            nats,
            pg,
            _dir: dir,
        })
    }

    /// The events parked for `consumer`: (event id, deliveries before parking).
    /// Embedded: rows of `bus_dead_letters`; NATS: messages on `<prefix>echo.dlq.<consumer>` in
    /// stream `<PREFIX>ECHO_DLQ` (the header carries the attempt count nowhere, so 0).
    pub async fn dead_letters(&self, consumer: &str) -> Vec<(Uuid, i64)> {
        match &self.nats {
            None => {
                let sql = "SELECT CAST(event_id AS TEXT), CAST(attempts AS BIGINT) \
                           FROM bus_dead_letters WHERE consumer = $1";
                let rows: Vec<(String, i64)> = match &self.consumer_db {
                    Database::Postgres(db) => sqlx::query_as(sql)
                        .bind(consumer)
                        .fetch_all(&db.pool)
                        .await
                        .unwrap(),
                    Database::Sqlite(db) => sqlx::query_as(sql)
                        .bind(consumer)
                        .fetch_all(&db.writer)
                        .await
                        .unwrap(),
                };
                rows.into_iter()
                    .map(|(id, n)| (Uuid::parse_str(&id).unwrap(), n))
                    .collect()
            }
            Some(nats) => {
                let stream = echo_bus::subject::stream_name(&nats.settings.subject_prefix, "dlq");
                let subject = format!(
                    "{}{}",
                    nats.settings.subject_prefix,
                    echo_bus::subject::dead_letter_subject(consumer)
                );
                read_stream(&nats.js, &stream)
                    .await
                    .into_iter()
                    .filter(|m| m.subject.as_str() == subject)
                    .map(|m| (msg_id(&m), 0))
                    .collect()
            }
        }
    }

    /// Best-effort cleanup: stop the bus, delete this test's streams and schemas.
    pub async fn cleanup(self) {
        self.bus.shutdown();
        if let Some(nats) = &self.nats {
            for domain in ["auth", "dlq"] {
                let name = echo_bus::subject::stream_name(&nats.settings.subject_prefix, domain);
                let _ = nats.js.delete_stream(&name).await;
            }
        }
        self.outbox.database().close().await;
        self.consumer_db.close().await;
        if let Some((url, prefix)) = &self.pg {
            drop_schemas(url, prefix, &["auth", "consumer"]).await;
        }
    }
}

/// Best-effort `DROP SCHEMA … CASCADE` of `<prefix><service>` for each service.
pub async fn drop_schemas(url: &str, prefix: &str, services: &[&str]) {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::PgConnection::connect(url).await else {
        return;
    };
    for service in services {
        let sql = format!("DROP SCHEMA IF EXISTS \"{prefix}{service}\" CASCADE");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
    }
    let _ = conn.close().await;
}

/// Every message of stream `name`, in stream order.
pub async fn read_stream(
    js: &jetstream::Context,
    name: &str,
) -> Vec<jetstream::message::StreamMessage> {
    let Ok(mut stream) = js.get_stream(name).await else {
        return Vec::new();
    };
    let state = stream.info().await.expect("stream info").state.clone();
    let mut messages = Vec::new();
    if state.messages == 0 {
        return messages;
    }
    for seq in state.first_sequence..=state.last_sequence {
        messages.push(
            stream
                .get_raw_message(seq)
                .await
                .expect("get stream message"),
        );
    }
    messages
}

/// The `Nats-Msg-Id` (the event id) of a stream message.
pub fn msg_id(message: &jetstream::message::StreamMessage) -> Uuid {
    let id = message
        .headers
        .get("Nats-Msg-Id")
        .expect("Nats-Msg-Id header");
    Uuid::parse_str(id.as_str()).expect("Nats-Msg-Id is a uuid")
}

/// A test event on `echo.auth.<kind>.<key>` whose payload is `n`.
pub fn event(kind: &str, key: &str, n: i64) -> Event {
    Event::new(
        format!("echo.auth.{kind}.{key}"),
        "echo.events.v1.UserRegistered",
        Bytes::from(n.to_string()),
    )
}

/// Commit `event` in its own transaction through `outbox`.
pub async fn commit(outbox: &Outbox, event: &Event) {
    let mut tx = outbox.database().begin().await.expect("begin");
    Outbox::append(&mut tx, event).await.expect("append");
    outbox.commit(tx).await.expect("commit");
}

/// Commit `user_registered` events `range` (payload = n), one transaction each.
pub async fn commit_range(outbox: &Outbox, range: std::ops::Range<i64>) -> Vec<Event> {
    let mut events = Vec::new();
    for n in range {
        let event = event("user_registered", &format!("u{n}"), n);
        commit(outbox, &event).await;
        events.push(event);
    }
    events
}

/// A spec with short backoff, suitable for tests.
pub fn spec(name: &str, filter: &str) -> ConsumerSpec {
    ConsumerSpec {
        name: name.to_owned(),
        filter: filter.to_owned(),
        max_deliver: 5,
        backoff: vec![Duration::from_millis(100)],
        ack_wait: Duration::from_secs(5),
        ordered: false,
    }
}

/// A running `consumer::run`.
pub struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Stop it and wait until it has stopped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("consumer stops")
            .expect("no panic");
    }
}

pub fn run_consumer(env: &Env, spec: &ConsumerSpec, handler: Arc<Recorder>) -> Running {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(echo_bus::consumer::run(
        env.bus.clone(),
        env.consumer_db.clone(),
        spec.clone(),
        handler,
        shutdown.clone(),
    ));
    Running { shutdown, task }
}

/// Poll `check` until it returns true; fail with `what` after `WAIT`.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until `consumer` has applied at least `count` effects; returns them as `n`s.
pub async fn wait_effects(db: &Database, consumer: &str, count: usize) -> Vec<i64> {
    wait_until(&format!("{count} effects of {consumer}"), || async {
        effects(db, consumer).await.len() >= count
    })
    .await;
    effect_ns(db, consumer).await
}
