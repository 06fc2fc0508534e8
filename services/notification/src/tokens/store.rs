//! The push-token transaction scripts, each statement one SQL text for both backends (see
//! `crate::store`). Registration is a script over small steps: read the caller's current
//! registration and the token's current holder, refuse past the cap, then write.

use chrono::{DateTime, Utc};
use echo_ids::UserId;
use echo_store::{Tx, sql_limit, with_db, with_tx};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Platform, PushToken, Registration};
use crate::error::NotificationError;
use crate::jobs;
use crate::store::{NotificationStore, from_millis, is_unique_violation, lock, millis};

/// How often a registration that still lost a race to a concurrent one (a unique violation
/// on PostgreSQL; the locks below make that rare) is run again; the rerun sees the winner and
/// replaces or moves it.
const RACE_RETRIES: usize = 3;

/// The columns a [`TokenRow`] reads.
macro_rules! token_columns {
    () => {
        "push_token_id, user_id, device_id, platform, app_id, token, sandbox, created_at_ms, \
         updated_at_ms, last_delivered_at_ms"
    };
}

/// A `push_tokens` row as both backends decode it.
#[derive(sqlx::FromRow)]
struct TokenRow {
    push_token_id: Uuid,
    user_id: Uuid,
    device_id: Uuid,
    platform: i16,
    app_id: String,
    token: String,
    sandbox: bool,
    created_at_ms: i64,
    updated_at_ms: i64,
    last_delivered_at_ms: Option<i64>,
}

impl TokenRow {
    fn token(self) -> Result<PushToken, sqlx::Error> {
        let platform = Platform::from_code(self.platform).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown push platform {}", self.platform).into())
        })?;
        Ok(PushToken {
            id: self.push_token_id,
            user_id: self.user_id.into(),
            device_id: self.device_id.into(),
            platform,
            app_id: self.app_id,
            token: self.token,
            sandbox: self.sandbox,
            created_at: from_millis(self.created_at_ms),
            updated_at: from_millis(self.updated_at_ms),
            last_delivered_at: self.last_delivered_at_ms.map(from_millis),
        })
    }
}

/// The uniqueness key of a token: tokens may be 4096 bytes, past what a PostgreSQL btree
/// entry holds, so `(platform, app_id, token_sha256)` is the unique key.
pub(crate) fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl NotificationStore {
    /// Registers `registration`'s token for its device and platform at `now`: replaces the
    /// device's token for that platform in place, moves the token from another holder (whose
    /// registration and pending pushes end), or adds a registration if the user has fewer than
    /// `max_per_user`. Returns the caller's registration as stored.
    #[tracing::instrument(skip_all, fields(user = %registration.user_id))]
    pub async fn register_token(
        &self,
        registration: &Registration,
        now: DateTime<Utc>,
        max_per_user: usize,
    ) -> Result<PushToken, NotificationError> {
        let mut attempt = 0;
        loop {
            let mut tx = self.db.begin().await?;
            match register(&mut tx, registration, now, max_per_user).await {
                Ok(token) => {
                    tx.commit().await?;
                    return Ok(token);
                }
                Err(NotificationError::Store(echo_store::StoreError::Sqlx(error)))
                    if is_unique_violation(&error) && attempt < RACE_RETRIES =>
                {
                    tx.rollback().await?;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Removes `user`'s registration `id` and its pending pushes; an unknown id, or another
    /// user's, changes nothing.
    #[tracing::instrument(skip(self))]
    pub async fn unregister_token(&self, user: UserId, id: Uuid) -> Result<(), NotificationError> {
        const SQL: &str = "DELETE FROM push_tokens WHERE push_token_id = $1 AND user_id = $2 RETURNING push_token_id";
        let mut tx = self.db.begin().await?;
        let removed: Option<Uuid> = with_tx!(&mut tx, |c| {
            sqlx::query_scalar(SQL)
                .bind(id)
                .bind(Uuid::from(user))
                .fetch_optional(c)
                .await?
        });
        if removed.is_some() {
            jobs::cancel_pending(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `user`'s registrations newest first (by id, a UUIDv7), below `before` when given; at
    /// most `limit`.
    pub async fn list_tokens(
        &self,
        user: UserId,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<PushToken>, NotificationError> {
        const SQL: &str = concat!(
            "SELECT ",
            token_columns!(),
            " FROM push_tokens WHERE user_id = $1 AND push_token_id < $2 \
             ORDER BY push_token_id DESC LIMIT $3"
        );
        let before = before.unwrap_or(Uuid::max());
        let rows: Vec<TokenRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(SQL)
                .bind(Uuid::from(user))
                .bind(before)
                .bind(sql_limit(limit))
                .fetch_all(c)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(TokenRow::token)
            .collect::<Result<_, _>>()?)
    }

    /// Every registration of `user` (the pipeline sends to each; tests look at them).
    pub async fn user_tokens(&self, user: UserId) -> Result<Vec<PushToken>, NotificationError> {
        self.list_tokens(user, None, usize::MAX).await
    }
}

/// The registration script, in contract order: read, refuse, write.
async fn register(
    tx: &mut Tx,
    registration: &Registration,
    now: DateTime<Utc>,
    max_per_user: usize,
) -> Result<PushToken, NotificationError> {
    let key = digest(&registration.token);
    // The user's registrations (the cap), then the token's holder (the move), in this order.
    lock(tx, &format!("push_tokens.user.{}", registration.user_id)).await?;
    lock(tx, &format!("push_tokens.token.{}", hex(&key))).await?;
    let mine = find_mine(tx, registration).await?;
    let holder = find_holder(tx, registration, &key).await?;
    let moved_in = holder.filter(|(id, _)| Some(*id) != mine.as_ref().map(|m| m.push_token_id));
    // Only a registration the user did not hold yet counts against the cap.
    if mine
        .as_ref()
        .is_none_or(|m| UserId::from(m.user_id) != registration.user_id)
    {
        // A token moving in from another of the user's own devices frees its slot.
        let freed = moved_in.is_some_and(|(_, user)| user == registration.user_id);
        let held = count_tokens(tx, registration.user_id).await? - i64::from(freed);
        if held >= i64::try_from(max_per_user).unwrap_or(i64::MAX) {
            return Err(NotificationError::TooManyTokens(max_per_user));
        }
    }
    if let Some((id, _)) = moved_in {
        remove(tx, id, &key).await?;
    }
    let row = match mine {
        Some(mine) => {
            if UserId::from(mine.user_id) != registration.user_id {
                // The device changed hands: its old owner's pending pushes must not follow.
                jobs::cancel_pending(tx, mine.push_token_id).await?;
            }
            replace(tx, mine.push_token_id, registration, &key, now).await?
        }
        None => insert(tx, registration, &key, now).await?,
    };
    Ok(row.token()?)
}

/// The device's current registration for the platform.
async fn find_mine(
    tx: &mut Tx,
    registration: &Registration,
) -> Result<Option<TokenRow>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        token_columns!(),
        " FROM push_tokens WHERE device_id = $1 AND platform = $2"
    );
    Ok(with_tx!(tx, |c| {
        sqlx::query_as(SQL)
            .bind(Uuid::from(registration.device_id))
            .bind(registration.platform.code())
            .fetch_optional(c)
            .await?
    }))
}

/// The registration holding the token now, as `(push_token_id, user_id)`.
async fn find_holder(
    tx: &mut Tx,
    registration: &Registration,
    key: &[u8],
) -> Result<Option<(Uuid, UserId)>, sqlx::Error> {
    const SQL: &str = "SELECT push_token_id, user_id FROM push_tokens \
         WHERE platform = $1 AND app_id = $2 AND token_sha256 = $3";
    let holder: Option<(Uuid, Uuid)> = with_tx!(tx, |c| {
        sqlx::query_as(SQL)
            .bind(registration.platform.code())
            .bind(&registration.app_id)
            .bind(key)
            .fetch_optional(c)
            .await?
    });
    Ok(holder.map(|(id, user)| (id, user.into())))
}

async fn count_tokens(tx: &mut Tx, user: UserId) -> Result<i64, sqlx::Error> {
    const SQL: &str = "SELECT count(*) FROM push_tokens WHERE user_id = $1";
    Ok(with_tx!(tx, |c| {
        sqlx::query_scalar(SQL)
            .bind(Uuid::from(user))
            .fetch_one(c)
            .await?
    }))
}

/// Ends registration `id` and drops its pending pushes, if it still holds the token `key`
/// (the token moved to another device; a concurrent re-registration may have replaced it).
async fn remove(tx: &mut Tx, id: Uuid, key: &[u8]) -> Result<(), sqlx::Error> {
    const SQL: &str = "DELETE FROM push_tokens WHERE push_token_id = $1 AND token_sha256 = $2 \
         RETURNING push_token_id";
    let removed: Option<Uuid> = with_tx!(tx, |c| {
        sqlx::query_scalar(SQL)
            .bind(id)
            .bind(key)
            .fetch_optional(c)
            .await?
    });
    if removed.is_some() {
        jobs::cancel_pending(tx, id).await?;
    }
    Ok(())
}

/// Puts the new token into the device's registration `id`. Delivery and badge history belong
/// to the old token, so they are cleared when the token changes.
async fn replace(
    tx: &mut Tx,
    id: Uuid,
    registration: &Registration,
    key: &[u8],
    now: DateTime<Utc>,
) -> Result<TokenRow, sqlx::Error> {
    const SQL: &str = concat!(
        "UPDATE push_tokens SET \
           last_delivered_at_ms = CASE WHEN token_sha256 = $6 AND app_id = $4 \
             THEN last_delivered_at_ms END, \
           last_badge_sent = CASE WHEN token_sha256 = $6 AND app_id = $4 \
             THEN last_badge_sent END, \
           user_id = $2, session_id = $3, app_id = $4, token = $5, token_sha256 = $6, \
           sandbox = $7, updated_at_ms = $8 \
         WHERE push_token_id = $1 RETURNING ",
        token_columns!()
    );
    Ok(with_tx!(tx, |c| {
        sqlx::query_as(SQL)
            .bind(id)
            .bind(Uuid::from(registration.user_id))
            .bind(Uuid::from(registration.session_id))
            .bind(&registration.app_id)
            .bind(&registration.token)
            .bind(key)
            .bind(registration.sandbox)
            .bind(millis(now))
            .fetch_one(c)
            .await?
    }))
}

/// A new registration with a fresh UUIDv7 id.
async fn insert(
    tx: &mut Tx,
    registration: &Registration,
    key: &[u8],
    now: DateTime<Utc>,
) -> Result<TokenRow, sqlx::Error> {
    const SQL: &str = concat!(
        "INSERT INTO push_tokens (push_token_id, user_id, device_id, session_id, platform, \
           app_id, token, token_sha256, sandbox, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING ",
        token_columns!()
    );
    Ok(with_tx!(tx, |c| {
        sqlx::query_as(SQL)
            .bind(Uuid::now_v7())
            .bind(Uuid::from(registration.user_id))
            .bind(Uuid::from(registration.device_id))
            .bind(Uuid::from(registration.session_id))
            .bind(registration.platform.code())
            .bind(&registration.app_id)
            .bind(&registration.token)
            .bind(key)
            .bind(registration.sandbox)
            .bind(millis(now))
            .fetch_one(c)
            .await?
    }))
}
