//! The encodings and primitives every store script shares, so each script is written once
//! over both backends (STYLE 15).
//!
//! The user schema predates the shared `echo_store` encodings (migrations stay as they are):
//! PostgreSQL keeps ids as `uuid` and times as `timestamptz`, SQLite ids as hyphenated
//! lowercase TEXT (which sorts like the UUID's bytes, so pages follow PostgreSQL's order) and
//! times as INTEGER unix microseconds (PostgreSQL's precision). [`Id`] and [`At`] bind and
//! decode each backend's way, so one `sqlx::query(SQL).bind(Id(user))` serves both inside
//! `echo_store::with_tx!` / `with_db!`.

use chrono::{DateTime, Utc};
use echo_store::{Tx, with_tx};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{AssertSqlSafe, Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

use super::StoreError;

/// A user or request id as stored: `uuid` on PostgreSQL, hyphenated TEXT on SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Id(pub Uuid);

/// A time as stored: `timestamptz` on PostgreSQL, unix microseconds on SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct At(pub DateTime<Utc>);

impl Type<Postgres> for Id {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <Uuid as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Id {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Id {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <Uuid as Decode<Postgres>>::decode(value).map(Id)
    }
}

impl Type<Sqlite> for Id {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Id {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.hyphenated().to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Id {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(Id(Uuid::parse_str(text)?))
    }
}

impl Type<Postgres> for At {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for At {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for At {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<Postgres>>::decode(value).map(At)
    }
}

impl Type<Sqlite> for At {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for At {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode(self.0.timestamp_micros(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for At {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let micros = <i64 as Decode<Sqlite>>::decode(value)?;
        DateTime::from_timestamp_micros(micros)
            .map(At)
            .ok_or_else(|| format!("time {micros} is out of range").into())
    }
}

/// How [`lock_pair`] holds the two profile rows on PostgreSQL.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PairLock {
    /// Exclusively: calls about the same pair run one after the other.
    Update,
    /// Shared: holds off an erasure of either user until the transaction ends.
    Share,
}

/// Locks the profile rows of `a` and `b` (those that exist) and returns the ids among them
/// whose profile is live.
///
/// Dialect-specific because only PostgreSQL needs it: at READ COMMITTED two calls about one
/// pair (crossing requests, a block racing an accept) would otherwise both read before either
/// writes, so it locks both rows, always in user id order (the sort runs below the row
/// locking), so calls about two pairs sharing a user cannot deadlock. SQLite needs no lock:
/// every write transaction already holds the single writer (`BEGIN IMMEDIATE`).
pub(crate) async fn lock_pair(
    tx: &mut Tx,
    a: Uuid,
    b: Uuid,
    mode: PairLock,
) -> Result<Vec<Uuid>, sqlx::Error> {
    const READ: &str = "SELECT user_id, deleted_at IS NULL FROM profiles \
                        WHERE user_id IN ($1, $2) ORDER BY user_id";
    let sql = match (&*tx, mode) {
        (Tx::Postgres(_), PairLock::Update) => format!("{READ} FOR UPDATE"),
        (Tx::Postgres(_), PairLock::Share) => format!("{READ} FOR SHARE"),
        (Tx::Sqlite(_), _) => READ.to_owned(),
    };
    let rows: Vec<(Id, bool)> = with_tx!(tx, |c| {
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(Id(a))
            .bind(Id(b))
            .fetch_all(c)
            .await
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(Id(id), live)| live.then_some(id))
        .collect())
}

/// `select` with its rows locked for update on PostgreSQL, for a script that reads a row and
/// then writes it (at READ COMMITTED a racing call could change it in between); unchanged on
/// SQLite, where the script's write transaction already excludes every other writer.
pub(crate) fn for_update(tx: &Tx, select: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(match tx {
        Tx::Postgres(_) => format!("{select} FOR UPDATE"),
        Tx::Sqlite(_) => select.to_owned(),
    })
}

/// Rolls `tx` back (on SQLite freeing the writer at once) and answers `refusal`.
pub(crate) async fn refuse<T>(tx: Tx, refusal: StoreError) -> Result<T, StoreError> {
    tx.rollback().await?;
    Err(refusal)
}
