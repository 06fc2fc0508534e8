//! SQLite: a file per service, WAL, `synchronous=FULL`, foreign keys on, one writer.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{ACQUIRE_TIMEOUT, SqliteDatabase, StoreError};

/// `data/echo.db` + `auth` → `data/echo-auth.db`: every service keeps its own file.
pub(crate) fn service_file(configured: &str, service: &str) -> PathBuf {
    let configured = Path::new(configured.split('?').next().unwrap_or(configured));
    let stem = configured
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("echo");
    let name = format!("{stem}-{service}.db");
    configured
        .parent()
        .map_or_else(|| PathBuf::from(&name), |dir| dir.join(&name))
}

pub(crate) async fn connect(file: &Path) -> Result<SqliteDatabase, StoreError> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sqlx(sqlx::Error::Io(e)))?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // Deleted content (a message deleted for everyone, an erased account) is overwritten
        // with zeros in the file instead of lingering in free pages.
        .pragma("secure_delete", "on")
        // Readers never wait on the writer in WAL; this only covers checkpoints and start-up.
        .busy_timeout(Duration::from_secs(5));
    // Connections are kept for the life of the process: a SQLite connection is a file handle
    // and its page cache (≤ 2 MiB), not a network session that goes stale, and recycling it
    // (sqlx's default: after 30 min, or 10 min idle) only empties the cache and starts a new
    // worker thread. The soak showed the resident memory rising and falling with that cycle
    // (docs/reliability.md, R6): kept, the caches fill once and stay.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options.clone())
        .await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options.read_only(true))
        .await?;
    Ok(SqliteDatabase { writer, reader })
}
