//! The primitives every user store script shares, so each script is written once over both
//! backends (STYLE 15). The user schema keeps ids and times in each backend's native types
//! (migrations stay as they are): [`Id`] and [`At`] from `echo_store::native` bind and decode
//! them each backend's way. Typed ids cross into SQL one way: bound as `Id(user.into())`,
//! decoded as `row.user_id.0.into()` in the row → domain conversion.

use echo_ids::UserId;
pub(crate) use echo_store::native::{At, Id, for_update};
use echo_store::{Tx, with_tx};
use sqlx::AssertSqlSafe;

use crate::error::UserError;

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
    a: UserId,
    b: UserId,
    mode: PairLock,
) -> Result<Vec<UserId>, sqlx::Error> {
    const READ: &str = "SELECT user_id, deleted_at IS NULL FROM profiles \
                        WHERE user_id IN ($1, $2) ORDER BY user_id";
    let sql = match (&*tx, mode) {
        (Tx::Postgres(_), PairLock::Update) => format!("{READ} FOR UPDATE"),
        (Tx::Postgres(_), PairLock::Share) => format!("{READ} FOR SHARE"),
        (Tx::Sqlite(_), _) => READ.to_owned(),
    };
    let rows: Vec<(Id, bool)> = with_tx!(tx, |c| {
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(Id(a.into()))
            .bind(Id(b.into()))
            .fetch_all(c)
            .await
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(Id(id), live)| live.then_some(id.into()))
        .collect())
}

/// Rolls `tx` back (on SQLite freeing the writer at once) and answers `refusal`.
pub(crate) async fn refuse<T>(tx: Tx, refusal: UserError) -> Result<T, UserError> {
    tx.rollback().await?;
    Err(refusal)
}
