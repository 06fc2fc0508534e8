use echo_testenv::{Server, unique_name, url};

use super::*;

fn widgets() -> Migrations {
    Migrations::new(
        "widgets",
        sqlx::migrate!("tests_migrations/postgres"),
        sqlx::migrate!("tests_migrations/sqlite"),
    )
}

async fn insert_and_count(db: &Database) -> i64 {
    let mut tx = db.begin().await.unwrap();
    let insert = "INSERT INTO widgets (id, name) VALUES (1, 'a')";
    match &mut tx {
        Tx::Postgres(tx) => sqlx::query(insert)
            .execute(&mut **tx)
            .await
            .map(|_| ())
            .unwrap(),
        Tx::Sqlite(tx) => sqlx::query(insert)
            .execute(&mut **tx)
            .await
            .map(|_| ())
            .unwrap(),
    }
    tx.commit().await.unwrap();
    match db {
        Database::Postgres(db) => sqlx::query_scalar("SELECT count(*) FROM widgets")
            .fetch_one(&db.pool)
            .await
            .unwrap(),
        Database::Sqlite(db) => sqlx::query_scalar("SELECT count(*) FROM widgets")
            .fetch_one(&db.reader)
            .await
            .unwrap(),
    }
}

#[tokio::test]
async fn sqlite_gets_a_file_per_service_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("echo.db").display());
    let db = Database::connect(&url, "widgets", "").await.unwrap();
    db.migrate(&widgets()).await.unwrap();
    db.migrate(&widgets()).await.unwrap(); // idempotent
    assert!(dir.path().join("echo-widgets.db").exists());
    assert_eq!(insert_and_count(&db).await, 1);
    let Database::Sqlite(sqlite) = &db else {
        unreachable!()
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&sqlite.writer)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    // Deleted content is zeroed in the file, on every connection that may delete.
    for pool in [&sqlite.writer, &sqlite.reader] {
        let secure: i64 = sqlx::query_scalar("PRAGMA secure_delete")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(secure, 1);
    }
    let table: String = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE name = '_echo_migrations_widgets'",
    )
    .fetch_one(&sqlite.reader)
    .await
    .unwrap();
    assert_eq!(table, "_echo_migrations_widgets");
}

/// Thousands of generated parameters through `with_tx!(tx, sql, …)` and `with_db!(db, read,
/// sql, …)`, fixed ones before the list: every value lands in its own row and column.
async fn bulk_statements_bind_every_value_in_place(db: &Database) {
    let rows = 5_000_i64;
    let insert = format!(
        "INSERT INTO widgets (id, name) VALUES {}",
        value_rows(1, 5_000, 2)
    );
    let mut tx = db.begin().await.unwrap();
    with_tx!(&mut tx, insert, |c| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(insert.as_str()));
        for id in 0..rows {
            query = query.bind(id).bind(format!("w{id}"));
        }
        assert_eq!(query.execute(c).await.unwrap().rows_affected(), 5_000);
    });
    tx.commit().await.unwrap();
    let select = format!(
        "SELECT id, name FROM widgets WHERE name <> $1 AND id IN ({}) ORDER BY id",
        placeholders(2, 4_000)
    );
    let found: Vec<(i64, String)> = with_db!(db, read, select, |c| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(select.as_str())).bind("w8");
        for id in (0..8_000).step_by(2) {
            query = query.bind(id);
        }
        query.fetch_all(c).await.unwrap()
    });
    // The even ids below 5,000 but 8, whose name the fixed parameter excludes.
    assert_eq!(found.len(), 2_499);
    for (id, name) in &found {
        assert!(id % 2 == 0 && *id != 8, "{id}");
        assert_eq!(name, &format!("w{id}"));
    }
}

#[tokio::test]
async fn bulk_statements_bind_in_place_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("echo.db").display());
    let db = Database::connect(&url, "widgets", "").await.unwrap();
    db.migrate(&widgets()).await.unwrap();
    bulk_statements_bind_every_value_in_place(&db).await;
}

#[tokio::test]
async fn bulk_statements_bind_in_place_on_postgres() {
    let Some(url) = url(Server::Postgres) else {
        return;
    };
    let prefix = format!("{}_", unique_name("t"));
    let db = Database::connect(&url, "widgets", &prefix).await.unwrap();
    db.migrate(&widgets()).await.unwrap();
    bulk_statements_bind_every_value_in_place(&db).await;
}

#[tokio::test]
async fn postgres_gets_a_schema_per_service() {
    let Some(url) = url(Server::Postgres) else {
        return;
    };
    let prefix = format!("{}_", unique_name("t"));
    let db = Database::connect(&url, "widgets", &prefix).await.unwrap();
    db.migrate(&widgets()).await.unwrap();
    db.migrate(&widgets()).await.unwrap();
    assert_eq!(insert_and_count(&db).await, 1);
    let Database::Postgres(pg) = &db else {
        unreachable!()
    };
    assert_eq!(pg.schema, format!("{prefix}widgets"));
    let schema: String = sqlx::query_scalar(
        "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'widgets' \
         AND table_schema = $1",
    )
    .bind(&pg.schema)
    .fetch_one(&pg.pool)
    .await
    .unwrap();
    assert_eq!(schema, pg.schema);
    // Every pooled connection runs without JIT (short OLTP statements; see `connect`).
    let jit: String = sqlx::query_scalar("SHOW jit")
        .fetch_one(&pg.pool)
        .await
        .unwrap();
    assert_eq!(jit, "off");
    // …and with a bound on abandoned transactions (their locks and the outbox horizon).
    let idle: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
        .fetch_one(&pg.pool)
        .await
        .unwrap();
    assert_eq!(idle, postgres::IDLE_IN_TRANSACTION);
}

#[test]
fn service_files_sit_beside_the_configured_file() {
    assert_eq!(
        sqlite::service_file("data/echo.db", "auth"),
        std::path::Path::new("data/echo-auth.db")
    );
    assert_eq!(
        sqlite::service_file("echo.db", "user"),
        std::path::Path::new("echo-user.db")
    );
}

#[test]
fn placeholders_number_from_the_first() {
    assert_eq!(placeholders(3, 3), "$3, $4, $5");
    assert_eq!(placeholders(1, 1), "$1");
    assert_eq!(value_rows(2, 2, 3), "($2, $3, $4), ($5, $6, $7)");
}

#[test]
fn sqlite_params_are_anonymous_only_when_bound_in_order() {
    let insert = format!("INSERT INTO t (a, b) VALUES {}", value_rows(1, 3, 2));
    assert_eq!(
        sqlite_params(&insert),
        "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
    );
    assert_eq!(
        sqlite_params("SELECT * FROM t WHERE s = '$9' AND k = $1 AND v IN ($2, $3)"),
        "SELECT * FROM t WHERE s = '$9' AND k = ? AND v IN (?, ?)"
    );
    // Out of order, repeated, or not starting at 1: sqlx would bind `?`s wrongly, so no rewrite.
    for sql in [
        "SELECT $2, $1",
        "SELECT $1 WHERE a = $1",
        "SELECT $2",
        "SELECT * FROM t WHERE a IN ($1, $2) AND b = $4",
    ] {
        assert_eq!(sqlite_params(sql), sql);
    }
    assert_eq!(sqlite_params("SELECT 1"), "SELECT 1");
}
