//! Ids and times in each backend's native column types, for the stores whose schema keeps
//! them so (auth, user and message): `uuid` and `timestamptz` on PostgreSQL; hyphenated
//! lowercase TEXT (which sorts like the UUID's bytes, so `id > $n` pages in PostgreSQL's order)
//! and INTEGER unix microseconds (PostgreSQL's precision) on SQLite. [`Id`] and [`At`] bind and
//! decode each backend's way, so one `sqlx::query(SQL).bind(Id(user))` inside [`with_tx!`] /
//! [`with_db!`] serves both, and rows decode into one row type on either backend: each store
//! script is written once (STYLE 15, "rules once, dialect twice").
//!
//! [`with_tx!`]: crate::with_tx
//! [`with_db!`]: crate::with_db

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{AssertSqlSafe, Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

use crate::Tx;

/// An id as stored: `uuid` on PostgreSQL, hyphenated TEXT on SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub Uuid);

/// A time as stored: `timestamptz` on PostgreSQL, unix microseconds on SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At(pub DateTime<Utc>);

/// Implements sqlx's `Type`, `Encode` and `Decode` on both backends for `$name`, a newtype over
/// `$inner`: on PostgreSQL as `$inner` itself, on SQLite as `$stored`, converted by `to`/`from`.
macro_rules! stored {
    ($name:ident($inner:ty), sqlite $stored:ty,
     to |$t:ident| $to:expr, from |$f:ident| $from:expr) => {
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <$inner as Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <$inner as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <$inner as Encode<Postgres>>::encode_by_ref(&self.0, buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                <$inner as Decode<Postgres>>::decode(value).map($name)
            }
        }

        impl Type<Sqlite> for $name {
            fn type_info() -> SqliteTypeInfo {
                <$stored as Type<Sqlite>>::type_info()
            }

            fn compatible(ty: &SqliteTypeInfo) -> bool {
                <$stored as Type<Sqlite>>::compatible(ty)
            }
        }

        impl Encode<'_, Sqlite> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut SqliteArgumentsBuffer,
            ) -> Result<IsNull, BoxDynError> {
                let $t = &self.0;
                <$stored as Encode<Sqlite>>::encode($to, buf)
            }
        }

        impl<'r> Decode<'r, Sqlite> for $name {
            fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                let $f = <$stored as Decode<Sqlite>>::decode(value)?;
                $from
            }
        }
    };
}

stored!(Id(Uuid), sqlite String,
    to |id| id.hyphenated().to_string(),
    from |text| Ok(Id(Uuid::parse_str(&text)?)));

stored!(At(DateTime<Utc>), sqlite i64,
    to |at| at.timestamp_micros(),
    from |micros| DateTime::from_timestamp_micros(micros)
        .map(At)
        .ok_or_else(|| format!("time {micros} is out of range").into()));

/// `select` with its rows locked for update on PostgreSQL, for a script that reads a row and
/// then writes what depends on it (at READ COMMITTED a racing call could change it in
/// between); unchanged on SQLite, where the script's `BEGIN IMMEDIATE` transaction already
/// holds the single writer and so excludes every other write.
pub fn for_update(tx: &Tx, select: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(match tx {
        Tx::Postgres(_) => format!("{select} FOR UPDATE"),
        Tx::Sqlite(_) => select.to_owned(),
    })
}
