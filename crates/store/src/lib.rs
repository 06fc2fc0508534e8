//! The database handle every service uses: PostgreSQL in production, an embedded SQLite file by
//! default (DESIGN §3).
//!
//! Each service owns its data. On PostgreSQL it gets its own schema (`<prefix><service>`, via
//! `search_path`, so the same SQL runs unqualified); on SQLite its own file beside the
//! configured one (`data/echo.db` → `data/echo-auth.db`), which also gives each service its own
//! single writer. Each service's migrator keeps its own bookkeeping table
//! (`_echo_migrations_<name>`), so migration sets never collide.

mod migrate;
pub mod native;
mod postgres;
mod sqlite;
pub mod sqlite_rows;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

pub use migrate::Migrations;
pub use sqlx;
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

/// A service's database.
#[derive(Clone, Debug)]
pub enum Database {
    /// PostgreSQL with `search_path` set to the service's schema.
    Postgres(PostgresDatabase),
    /// An embedded SQLite file (WAL, `synchronous=FULL`, foreign keys on, one writer).
    Sqlite(SqliteDatabase),
}

/// A PostgreSQL pool bound to one schema.
#[derive(Clone, Debug)]
pub struct PostgresDatabase {
    /// Connections whose `search_path` is `schema`.
    pub pool: PgPool,
    /// The schema this service owns.
    pub schema: String,
}

/// SQLite pools: exactly one writer connection (so concurrent writers queue in-process instead
/// of meeting SQLITE_BUSY) and several readers (WAL lets them read during a write).
#[derive(Clone, Debug)]
pub struct SqliteDatabase {
    /// The single connection every write transaction goes through.
    pub writer: SqlitePool,
    /// Read-only connections.
    pub reader: SqlitePool,
}

/// An open write transaction on either backend.
pub enum Tx {
    /// A PostgreSQL transaction.
    Postgres(sqlx::Transaction<'static, Postgres>),
    /// A SQLite transaction begun with `BEGIN IMMEDIATE` on the writer.
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend we support.
    #[error("unsupported database url `{0}`: expected postgres://… or sqlite://…")]
    UnsupportedUrl(String),
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// The database did not answer within a deadline (see [`within`]).
    #[error("no answer from the database within {0:?}")]
    TimedOut(Duration),
    /// A migration failed.
    #[error("migration of `{service}` failed: {source}")]
    Migrate {
        /// The service whose migrations failed.
        service: String,
        /// The cause.
        source: sqlx::migrate::MigrateError,
    },
}

impl StoreError {
    /// True when the failure is the database being unreachable (callers answer UNAVAILABLE).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Sqlx(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed,
            ) => true,
            StoreError::TimedOut(_) => true,
            // The server refuses new connections for now: too many clients (53300), starting
            // up or shutting down (57P03).
            StoreError::Sqlx(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("53300" | "57P03"))
            }
            _ => false,
        }
    }
}

/// `operation`, or [`StoreError::TimedOut`] once `deadline` has passed without its end.
///
/// Why: a database that stops answering without refusing (packets dropped on a dead link, a
/// host gone without a reset) leaves a statement on an open connection waiting until the
/// kernel gives the connection up, many minutes later; PostgreSQL's own `statement_timeout`
/// runs on the server, which never hears of it. The pool's acquire timeout bounds only the
/// wait for a connection. Dropping `operation` rolls its transaction back, unless its COMMIT
/// was already sent: then the outcome is unknown to the caller, which must answer so (a
/// retryable failure), and a retry with the same idempotency key finds what was stored.
pub async fn within<T, E: From<StoreError>>(
    deadline: Duration,
    operation: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::time::timeout(deadline, operation)
        .await
        .unwrap_or_else(|_| Err(StoreError::TimedOut(deadline).into()))
}

/// "Rules once, dialect twice" (STYLE 15) for statements both dialects accept: runs `$body`
/// with `$c` bound to the pool of either backend (`write`: SQLite's single writer; `read`:
/// its readers), so ONE SQL text and its binds are written once and compiled for each backend.
/// Shared encodings make that work: ids bind as `uuid` on PostgreSQL and 16-byte blobs on
/// SQLite, times as milliseconds since the epoch.
#[macro_export]
macro_rules! with_db {
    ($db:expr, write, |$c:ident| $body:expr) => {
        $crate::with_db!(@on $db, writer, [], |$c| $body)
    };
    ($db:expr, read, |$c:ident| $body:expr) => {
        $crate::with_db!(@on $db, reader, [], |$c| $body)
    };
    // A statement with a long, generated parameter list (`$sql`, a `String` the body binds):
    // on SQLite it runs as `sqlite_params($sql)`.
    ($db:expr, write, $sql:ident, |$c:ident| $body:expr) => {
        $crate::with_db!(@on $db, writer, [$sql], |$c| $body)
    };
    ($db:expr, read, $sql:ident, |$c:ident| $body:expr) => {
        $crate::with_db!(@on $db, reader, [$sql], |$c| $body)
    };
    (@on $db:expr, $sqlite_pool:ident, [$($sql:ident)?], |$c:ident| $body:expr) => {
        match $db {
            $crate::Database::Postgres(db) => {
                let $c = &db.pool;
                $body
            }
            $crate::Database::Sqlite(db) => {
                let $c = &db.$sqlite_pool;
                $(let $sql = $crate::sqlite_params(&$sql);)?
                $body
            }
        }
    };
}

/// Runs `$body` with `$c` bound to the connection inside a transaction of either backend
/// (`with_tx!(tx, sql, |c| …)`: a statement with a generated parameter list, see `with_db!`).
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        $crate::with_tx!(@on $tx, [], |$c| $body)
    };
    ($tx:expr, $sql:ident, |$c:ident| $body:expr) => {
        $crate::with_tx!(@on $tx, [$sql], |$c| $body)
    };
    (@on $tx:expr, [$($sql:ident)?], |$c:ident| $body:expr) => {
        match $tx {
            $crate::Tx::Postgres(tx) => {
                let $c: &mut $crate::sqlx::PgConnection = &mut **tx;
                $body
            }
            $crate::Tx::Sqlite(tx) => {
                let $c: &mut $crate::sqlx::SqliteConnection = &mut **tx;
                $(let $sql = $crate::sqlite_params(&$sql);)?
                $body
            }
        }
    };
}

/// `sql` with its parameters `$1, $2, …, $n` written as anonymous `?`s, when they appear in
/// exactly that order, once each (otherwise `sql` unchanged: still right, only slower).
///
/// Why: SQLite keeps a statement's named parameters (`$1` is a name to it) in a list it
/// searches linearly, both when it parses one and when sqlx asks each parameter's name to
/// bind it, so a statement with `n` of them costs O(n²): a 1,000-row INSERT of 13 columns
/// spent ~180 ms there, against ~10 ms with `?`s, which SQLite numbers without a list. sqlx
/// binds unnamed parameters in order, so the rewrite is exact only for that order — hence
/// the check. Used through `with_tx!(tx, sql, |c| …)` and `with_db!(db, read, sql, |c| …)`
/// for generated IN lists and multi-row VALUES; text inside single quotes is left alone.
pub fn sqlite_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut expected = 1_usize;
    let mut quoted = false;
    let mut copied = 0;
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'$' if !quoted => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits > 0 {
                    let end = i + 1 + digits;
                    if sql[i + 1..end].parse::<usize>().ok() != Some(expected) {
                        return sql.to_owned();
                    }
                    expected += 1;
                    out.push_str(&sql[copied..i]);
                    out.push('?');
                    copied = end;
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
    out
}

/// `$from, $from+1, …` (`count` of them): an IN list of values bound one by one, the form both
/// dialects accept (SQLite has no arrays, and ids there are blobs, which `json_each` cannot
/// carry). Never call it for an empty list: `IN ()` is no SQL.
pub fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($from, …), (…), …`: `rows` rows of `columns` placeholders numbered from `from`, for a
/// multi-row VALUES list both dialects accept. Keep `rows × columns` under SQLite's 32,766
/// bound values per statement.
pub fn value_rows(from: usize, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(from + row * columns, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `limit` as SQL's LIMIT takes it (stores count in `usize`).
pub fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// PostgreSQL connections one service's pool may hold unless configured otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 32;

/// How long a caller waits for a pooled connection before the call fails as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl Database {
    /// Open `service`'s database at `url`, creating its schema or file if needed.
    ///
    /// `schema_prefix` applies to PostgreSQL only (`echo_` → schema `echo_auth`); tests pass a
    /// unique prefix per test.
    pub async fn connect(
        url: &str,
        service: &str,
        schema_prefix: &str,
    ) -> Result<Self, StoreError> {
        Self::connect_sized(url, service, schema_prefix, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`Database::connect`] with at most `max_connections` pooled PostgreSQL connections
    /// (SQLite keeps its one writer and its readers whatever this says).
    pub async fn connect_sized(
        url: &str,
        service: &str,
        schema_prefix: &str,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let schema = format!("{schema_prefix}{service}");
            postgres::connect(url, &schema, max_connections)
                .await
                .map(Database::Postgres)
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            sqlite::connect(&sqlite::service_file(path, service))
                .await
                .map(Database::Sqlite)
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// Begin a write transaction (`BEGIN IMMEDIATE` on SQLite, so the write lock is taken up
    /// front and the transaction cannot fail half-way with SQLITE_BUSY).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Database::Postgres(db) => Tx::Postgres(db.pool.begin().await?),
            Database::Sqlite(db) => Tx::Sqlite(db.writer.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// Apply `migrations` (the backend's half of them) and record them in the service's own
    /// bookkeeping table.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), StoreError> {
        migrations.run(self).await
    }

    /// A cheap round trip, for readiness: an error when the database refuses, or does not
    /// answer within the acquire timeout (a silent database is not ready either).
    pub async fn ping(&self) -> Result<(), StoreError> {
        const PROBE: &str = "SELECT 1";
        within(ACQUIRE_TIMEOUT, async {
            match self {
                Database::Postgres(db) => sqlx::query(PROBE).execute(&db.pool).await.map(|_| ())?,
                Database::Sqlite(db) => sqlx::query(PROBE).execute(&db.reader).await.map(|_| ())?,
            };
            Ok::<_, StoreError>(())
        })
        .await
    }

    /// Whether the link to the database is encrypted, as the server sees it: `Some(true)` for
    /// PostgreSQL over TLS, `Some(false)` for plaintext, `None` for SQLite (no link). For
    /// startup logs; the URL's `sslmode` decides (`prefer`, the default, may fall back to
    /// plaintext, which this reports).
    pub async fn uses_tls(&self) -> Result<Option<bool>, StoreError> {
        match self {
            Database::Postgres(db) => postgres::uses_tls(&db.pool).await.map(Some),
            Database::Sqlite(_) => Ok(None),
        }
    }

    /// Which backend this is, for logs and metrics labels.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::Sqlite(_) => "sqlite",
        }
    }

    /// Close every pooled connection (tests and shutdown).
    pub async fn close(&self) {
        match self {
            Database::Postgres(db) => db.pool.close().await,
            Database::Sqlite(db) => {
                db.writer.close().await;
                db.reader.close().await;
            }
        }
    }
}

impl Tx {
    /// The PostgreSQL connection inside; a SQLite transaction here is a wiring bug (a store
    /// given another backend's transaction), reported as such.
    pub fn postgres(&mut self) -> Result<&mut sqlx::PgConnection, sqlx::Error> {
        match self {
            Tx::Postgres(tx) => Ok(&mut **tx),
            Tx::Sqlite(_) => Err(sqlx::Error::InvalidArgument(
                "a sqlite transaction was given to a postgres store".to_owned(),
            )),
        }
    }

    /// The SQLite connection inside; a PostgreSQL transaction here is a wiring bug.
    pub fn sqlite(&mut self) -> Result<&mut sqlx::SqliteConnection, sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => Ok(&mut **tx),
            Tx::Postgres(_) => Err(sqlx::Error::InvalidArgument(
                "a postgres transaction was given to a sqlite store".to_owned(),
            )),
        }
    }

    /// Commit the transaction.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Roll the transaction back (dropping it does the same, later).
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Postgres(tx) => tx.rollback().await?,
            Tx::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
