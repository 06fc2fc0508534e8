//! The encodings and row shapes every auth store script shares, so each script is written once
//! over both backends (STYLE 15). The auth schema keeps ids and times in each backend's native
//! types (migrations stay as they are): [`Id`] and [`At`] from `echo_store::native` bind and
//! decode them each backend's way, and rows decode into the row types below on either backend.
//! Typed ids cross into SQL one way: bound as `Id(user.into())`, decoded as `.0.into()` in the
//! row → domain conversions here.

use chrono::Utc;
use echo_store::Tx;
pub(super) use echo_store::native::{At, Id, for_update};

use super::{Account, Device, Session};
use crate::error::AuthError;

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
            user_id: row.user_id.0.into(),
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
            session_id: row.session_id.0.into(),
            user_id: row.user_id.0.into(),
            device_id: row.device_id.0.into(),
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

/// Rolls `tx` back (on SQLite freeing the writer at once) and answers `outcome`.
pub(super) async fn give_up<T>(tx: Tx, outcome: T) -> Result<T, AuthError> {
    tx.rollback().await?;
    Ok(outcome)
}
