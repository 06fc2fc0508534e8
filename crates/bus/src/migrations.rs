//! The platform tables (outbox, consumer offsets, processed ids, dead letters), applied to
//! every service database that writes events or consumes them.

use echo_store::Migrations;

/// The bus tables' migrations for both backends.
pub fn migrations() -> Migrations {
    Migrations::new(
        "bus",
        sqlx::migrate!("../../migrations/postgres/bus"),
        sqlx::migrate!("../../migrations/sqlite/bus"),
    )
}
