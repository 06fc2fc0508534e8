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
