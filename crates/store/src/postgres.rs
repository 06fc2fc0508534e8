//! PostgreSQL: one schema per service, selected through `search_path`.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::{ACQUIRE_TIMEOUT, PostgresDatabase, StoreError};

/// How long PostgreSQL lets one of Echo's sessions sit idle inside a transaction before it
/// ends the session (and so the transaction and its locks); see [`connect`].
pub(crate) const IDLE_IN_TRANSACTION: &str = "30s";

pub(crate) async fn connect(
    url: &str,
    schema: &str,
    max_connections: u32,
) -> Result<PostgresDatabase, StoreError> {
    let base = PgConnectOptions::from_str(url)?;
    create_schema(&base, schema).await?;
    // JIT off: it pays off for long analytical queries, not for Echo's short ones. PostgreSQL
    // compiles any statement whose estimate passes `jit_above_cost`, which a table without
    // statistics yet (new, or never analysed) makes easy: 20–55 ms of compiling for a
    // dispatcher read that runs in 4 ms.
    //
    // Idle-in-transaction sessions end after IDLE_IN_TRANSACTION: Echo's transactions never
    // wait between statements longer than a few milliseconds of its own work, so a transaction
    // left open that long was abandoned — a batch given up by `within` while the link was dead,
    // a process frozen mid-transaction. Until the server ends it, it keeps its row and
    // write-order locks (other instances writing to the same conversations wait) and holds the
    // outbox's commit-safe horizon (DESIGN §7) below it, stalling live delivery everywhere.
    let options = base.options([
        ("search_path", schema),
        ("jit", "off"),
        ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION),
    ]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A burst's extra connections close again instead of idling for sqlx's default ten
        // minutes: many services (and test meshes) share one server's connection limit.
        .idle_timeout(std::time::Duration::from_secs(60))
        .connect_with(options)
        .await?;
    Ok(PostgresDatabase {
        pool,
        schema: schema.to_owned(),
    })
}

/// Whether a pooled connection is encrypted, per the server (`pg_stat_ssl` shows each session
/// its own row).
pub(crate) async fn uses_tls(pool: &sqlx::PgPool) -> Result<bool, StoreError> {
    let tls: Option<bool> =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(pool)
            .await?;
    Ok(tls.unwrap_or(false))
}

async fn create_schema(options: &PgConnectOptions, schema: &str) -> Result<(), StoreError> {
    let mut conn = options.connect().await?;
    let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
    let created = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await;
    conn.close().await?;
    match created {
        Ok(_) => Ok(()),
        // Two processes creating the same schema at once: the loser sees a unique violation
        // on pg_namespace even with IF NOT EXISTS. The schema exists either way.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Quote an identifier for PostgreSQL (schemas come from configuration, not from users).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
