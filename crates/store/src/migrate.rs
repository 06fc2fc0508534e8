//! Per-service migrations with a bookkeeping table of their own.

use sqlx::migrate::Migrator;

use crate::{Database, StoreError};

/// One service's migrations for both backends (built with `sqlx::migrate!`).
pub struct Migrations {
    name: &'static str,
    postgres: Migrator,
    sqlite: Migrator,
}

impl Migrations {
    /// `name` names the bookkeeping table (`_echo_migrations_<name>`); the two migrators come
    /// from `migrations/postgres/<name>` and `migrations/sqlite/<name>`.
    pub fn new(name: &'static str, mut postgres: Migrator, mut sqlite: Migrator) -> Self {
        let table = format!("_echo_migrations_{name}");
        postgres.dangerous_set_table_name(table.clone());
        sqlite.dangerous_set_table_name(table);
        Self {
            name,
            postgres,
            sqlite,
        }
    }

    /// The service (or platform part) these migrations belong to.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) async fn run(&self, db: &Database) -> Result<(), StoreError> {
        let result = match db {
            Database::Postgres(db) => self.postgres.run(&db.pool).await,
            Database::Sqlite(db) => self.sqlite.run(&db.writer).await,
        };
        result.map_err(|source| StoreError::Migrate {
            service: self.name.to_owned(),
            source,
        })?;
        tracing::debug!(
            migrations = self.name,
            backend = db.backend(),
            "migrations applied"
        );
        Ok(())
    }
}
