//! Isolated databases for services' store tests (feature `testing`, enabled from
//! `[dev-dependencies]` only, so it never reaches a release build).
//!
//! Each test gets its own PostgreSQL schema (a unique prefix on the shared server) or its own
//! SQLite files in a tempdir, migrated, plus raw-SQL probes that look past a store at what it
//! wrote. Skipping follows `echo_testenv::url`: an absent PostgreSQL skips the test loudly, or
//! fails it when `ECHO_REQUIRE_SERVICES=1`.

use echo_testenv::{Server, unique_name};
use sqlx::{AssertSqlSafe, Connection, query::QueryScalar};
use tempfile::TempDir;

use crate::{Database, Migrations};

/// The backends every conformance case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestBackend {
    /// A fresh schema on the shared PostgreSQL server.
    Postgres,
    /// Fresh SQLite files in a tempdir.
    Sqlite,
}

/// A value bound to a probe query. Compare ids as `CAST(x AS TEXT)` against text, which reads
/// the same on both backends (UUIDs are native on PostgreSQL, text on SQLite).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Bound as text.
    Text(String),
    /// Bound as `bytea` / `BLOB`.
    Bytes(Vec<u8>),
}

/// A text probe argument.
pub fn text(value: impl ToString) -> Arg {
    Arg::Text(value.to_string())
}

/// One test's database, migrated; [`TestDatabase::cleanup`] removes it again.
pub struct TestDatabase {
    /// The database under test.
    pub db: Database,
    scratch: Scratch,
}

/// What to remove after the test.
enum Scratch {
    /// This test's schema on the server at `url`.
    Postgres { url: String, schema: String },
    /// The directory holding the SQLite files, deleted when dropped.
    Sqlite { _dir: TempDir },
}

impl TestDatabase {
    /// Open `service`'s database on `backend` in isolation and apply `migrations` in order.
    ///
    /// `None` (after a loud skip notice) when PostgreSQL is needed and absent.
    pub async fn open(
        backend: TestBackend,
        service: &str,
        migrations: &[&Migrations],
    ) -> Option<TestDatabase> {
        let (db, scratch) = match backend {
            TestBackend::Postgres => {
                let url = echo_testenv::url(Server::Postgres)?;
                let prefix = format!("{}_", unique_name("t"));
                let db = Database::connect(&url, service, &prefix)
                    .await
                    .expect("connect postgres");
                let schema = format!("{prefix}{service}");
                (db, Scratch::Postgres { url, schema })
            }
            TestBackend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("echo.db").display());
                let db = Database::connect(&url, service, "")
                    .await
                    .expect("open sqlite");
                (db, Scratch::Sqlite { _dir: dir })
            }
        };
        for migrations in migrations {
            db.migrate(migrations)
                .await
                .unwrap_or_else(|err| panic!("{} migrations: {err}", migrations.name()));
        }
        Some(TestDatabase { db, scratch })
    }

    /// Close the pools and drop this test's schema (and no other).
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Scratch::Postgres { url, schema } = &self.scratch
            && let Ok(mut conn) = sqlx::PgConnection::connect(url).await
        {
            let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
            let _ = conn.close().await;
        }
    }

    /// `SELECT count(*) …` with `args` bound in order.
    pub async fn count(&self, sql: &str, args: &[Arg]) -> i64 {
        match &self.db {
            Database::Postgres(db) => probe(sql, args).fetch_one(&db.pool).await,
            Database::Sqlite(db) => probe(sql, args).fetch_one(&db.writer).await,
        }
        .expect("probe")
    }

    /// Rows of `table` (all of them).
    pub async fn rows(&self, table: &str) -> i64 {
        self.count(&format!("SELECT count(*) FROM {table}"), &[])
            .await
    }

    /// The single text column of every row `sql` selects, with `args` bound in order.
    pub async fn texts(&self, sql: &str, args: &[Arg]) -> Vec<String> {
        match &self.db {
            Database::Postgres(db) => probe(sql, args).fetch_all(&db.pool).await,
            Database::Sqlite(db) => probe(sql, args).fetch_all(&db.writer).await,
        }
        .expect("probe")
    }
}

/// `sql` with `args` bound, on either backend. SQLite probes go through the writer, which has
/// seen every commit.
fn probe<'q, DB, O>(sql: &str, args: &'q [Arg]) -> QueryScalar<'q, DB, O, DB::Arguments>
where
    DB: sqlx::Database,
    (O,): for<'r> sqlx::FromRow<'r, DB::Row>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let query = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()));
    args.iter().fold(query, |query, arg| match arg {
        Arg::Text(text) => query.bind(text.as_str()),
        Arg::Bytes(bytes) => query.bind(bytes.as_slice()),
    })
}
