//! The encodings and row shapes every auth store script shares, so each script is written once
//! over both backends (STYLE 15).
//!
//! The auth schema predates `echo_store`'s shared encodings (migrations stay as they are):
//! PostgreSQL keeps ids as `uuid` and times as `timestamptz`; SQLite keeps ids as hyphenated
//! lowercase TEXT (which sorts like the UUID's bytes, so `session_id > $n` pages in PostgreSQL's
//! order) and times as INTEGER unix microseconds (PostgreSQL's precision). [`Id`] and [`At`]
//! bind and decode each backend's way, so one `sqlx::query(SQL).bind(Id(user))` inside
//! `echo_store::with_tx!` / `with_db!` serves both, and rows decode into the row types below on
//! either backend.

use chrono::{DateTime, Utc};
use echo_store::Tx;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{AssertSqlSafe, Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

use super::{Account, Device, Session, StoreError};

/// An id as stored: `uuid` on PostgreSQL, hyphenated TEXT on SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Id(pub Uuid);

/// A time as stored: `timestamptz` on PostgreSQL, unix microseconds on SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct At(pub DateTime<Utc>);

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

/// Now, as the scripts record it. Both backends take the time from the service's clock (not
/// PostgreSQL's `now()`), so a revocation and `revoked_since` compare times of one clock.
pub(super) fn now() -> At {
    At(Utc::now())
}

/// The account columns, as [`AccountRow`] reads them.
macro_rules! account_columns {
    () => {
        "user_id, phone_number, password_hash, display_name, created_at"
    };
}
pub(super) use account_columns;

/// An `accounts` row as both backends decode it.
#[derive(sqlx::FromRow)]
pub(super) struct AccountRow {
    user_id: Id,
    phone_number: String,
    password_hash: Option<String>,
    display_name: String,
    created_at: At,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Self {
        Account {
            user_id: row.user_id.0,
            phone_number: row.phone_number,
            password_hash: row.password_hash,
            display_name: row.display_name,
            created_at: row.created_at.0,
        }
    }
}

/// The session columns, as [`SessionRow`] reads them.
macro_rules! session_columns {
    () => {
        "session_id, user_id, device_id, device_name, device_platform, app_version, created_at, \
         last_active_at, last_ip, revoked_at"
    };
}
pub(super) use session_columns;

/// A `sessions` row as both backends decode it.
#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    session_id: Id,
    user_id: Id,
    device_id: Id,
    device_name: String,
    device_platform: i32,
    app_version: String,
    created_at: At,
    last_active_at: At,
    last_ip: Option<String>,
    pub(super) revoked_at: Option<At>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            session_id: row.session_id.0,
            user_id: row.user_id.0,
            device_id: row.device_id.0,
            device: Device {
                name: row.device_name,
                platform: row.device_platform,
                app_version: row.app_version,
            },
            created_at: row.created_at.0,
            last_active_at: row.last_active_at.0,
            last_ip: row.last_ip,
            revoked_at: row.revoked_at.map(|At(at)| at),
        }
    }
}

/// True when `error` is the phone's uniqueness rule on `accounts`. Per backend because the two
/// report a violated constraint differently: PostgreSQL by the constraint's name (the
/// migration names it), SQLite only in the message ("UNIQUE constraint failed:
/// accounts.phone_number").
pub(super) fn is_phone_taken(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(e) = error else {
        return false;
    };
    e.is_unique_violation()
        && (e.constraint() == Some("accounts_phone_number_key")
            || e.message().contains("accounts.phone_number"))
}

/// `select` with its rows locked for update on PostgreSQL, for a script that reads a row and
/// then writes what depends on it (at READ COMMITTED a racing call could change it in
/// between); unchanged on SQLite, where the script's `BEGIN IMMEDIATE` transaction already
/// holds the single writer and so excludes every other write.
pub(super) fn for_update(tx: &Tx, select: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(match tx {
        Tx::Postgres(_) => format!("{select} FOR UPDATE"),
        Tx::Sqlite(_) => select.to_owned(),
    })
}

/// Rolls `tx` back (on SQLite freeing the writer at once) and answers `outcome`.
pub(super) async fn give_up<T>(tx: Tx, outcome: T) -> Result<T, StoreError> {
    tx.rollback().await?;
    Ok(outcome)
}
