//! The consumer side of the tests: an effects table without a unique key (so a double
//! application shows up as two rows) and a handler that records into it and can be told to fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use echo_bus::Event;
use echo_bus::consumer::{EventHandler, HandlerError};
use echo_store::{Database, Tx};
use uuid::Uuid;

/// The consumer's effect table: deliberately without a unique key, so a double application
/// shows up as two rows.
pub async fn create_effects_table(db: &Database) {
    match db {
        Database::Postgres(db) => {
            sqlx::query(
                "CREATE TABLE effects (seq BIGSERIAL PRIMARY KEY, consumer TEXT NOT NULL, \
                 event_id TEXT NOT NULL, n BIGINT NOT NULL)",
            )
            .execute(&db.pool)
            .await
            .expect("create effects");
        }
        Database::Sqlite(db) => {
            sqlx::query(
                "CREATE TABLE effects (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
                 consumer TEXT NOT NULL, event_id TEXT NOT NULL, n INTEGER NOT NULL)",
            )
            .execute(&db.writer)
            .await
            .expect("create effects");
        }
    }
}

/// Run one statement of raw SQL on `db` (on the SQLite writer).
pub async fn exec(db: &Database, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match db {
        Database::Postgres(db) => drop(sqlx::raw_sql(sql).execute(&db.pool).await.expect("exec")),
        Database::Sqlite(db) => drop(sqlx::raw_sql(sql).execute(&db.writer).await.expect("exec")),
    }
}

/// `consumer`'s effects in the order they were applied: (event id, n).
pub async fn effects(db: &Database, consumer: &str) -> Vec<(Uuid, i64)> {
    let sql = "SELECT event_id, n FROM effects WHERE consumer = $1 ORDER BY seq";
    let rows: Vec<(String, i64)> = match db {
        Database::Postgres(db) => sqlx::query_as(sql).bind(consumer).fetch_all(&db.pool).await,
        Database::Sqlite(db) => {
            sqlx::query_as(sql)
                .bind(consumer)
                .fetch_all(&db.writer)
                .await
        }
    }
    .expect("read effects");
    rows.into_iter()
        .map(|(id, n)| (Uuid::parse_str(&id).unwrap(), n))
        .collect()
}

/// `consumer`'s effects as their `n`s, in applied order.
pub async fn effect_ns(db: &Database, consumer: &str) -> Vec<i64> {
    effects(db, consumer)
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect()
}

/// Whether an event should fail, given how many times it was attempted (1 = first).
pub type FailPolicy = Box<dyn Fn(&Event, u32) -> bool + Send + Sync>;

/// A handler whose effect is one row in `effects`; it can be told to fail some attempts.
pub struct Recorder {
    consumer: String,
    fail: FailPolicy,
    attempts: Mutex<HashMap<Uuid, u32>>,
}

impl Recorder {
    pub fn new(consumer: &str) -> Arc<Recorder> {
        Self::failing(consumer, Box::new(|_, _| false))
    }

    pub fn failing(consumer: &str, fail: FailPolicy) -> Arc<Recorder> {
        Arc::new(Recorder {
            consumer: consumer.to_owned(),
            fail,
            attempts: Mutex::default(),
        })
    }

    /// How many times the handler was called for `event`.
    pub fn attempts(&self, event: Uuid) -> u32 {
        self.attempts
            .lock()
            .unwrap()
            .get(&event)
            .copied()
            .unwrap_or(0)
    }
}

/// The `n` an event's payload carries.
pub fn payload_n(event: &Event) -> i64 {
    std::str::from_utf8(&event.payload)
        .unwrap()
        .parse()
        .unwrap()
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> Result<(), HandlerError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let entry = attempts.entry(event.id).or_default();
            *entry += 1;
            *entry
        };
        let n = payload_n(event);
        let sql = "INSERT INTO effects (consumer, event_id, n) VALUES ($1, $2, $3)";
        let id = event.id.to_string();
        match tx {
            Tx::Postgres(tx) => {
                sqlx::query(sql)
                    .bind(&self.consumer)
                    .bind(&id)
                    .bind(n)
                    .execute(&mut **tx)
                    .await?;
            }
            Tx::Sqlite(tx) => {
                sqlx::query(sql)
                    .bind(&self.consumer)
                    .bind(&id)
                    .bind(n)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        // Fail after writing, so a failure must also roll the effect back.
        if (self.fail)(event, attempt) {
            return Err(format!("induced failure of n={n} on attempt {attempt}").into());
        }
        Ok(())
    }
}
