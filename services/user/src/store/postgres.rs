//! [`UserStore`] on PostgreSQL (the service's own schema, selected by `search_path`).
//!
//! Transactions run at READ COMMITTED. What two calls may race on is decided under a lock:
//! sending, accepting and blocking first lock the profile rows of both users, always in user id
//! order ([`lock_pair`]), so calls about one pair run one after the other (crossing requests
//! cannot both end pending) and calls about two pairs sharing a user cannot deadlock; the
//! `contact_requests_open` index backs up one open request per direction. The contact quota is
//! checked under a per-owner advisory lock, unique usernames rest on the
//! `profiles_username_key` constraint.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_store::sql_limit;
use echo_store::{PostgresDatabase, Tx};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row};
use uuid::Uuid;

use super::changes;
use super::{
    Avatar, BlockEntry, BlockPosition, ContactEntry, ContactPosition, ContactRequest, Direction,
    Privacy, PrivacyChange, Profile, ProfileChange, ProfileEvent, Registration, Relation,
    SearchHit, SearchPosition, StoreError, UserStore, Visibility,
};

/// The profile columns, as [`profile`] reads them.
macro_rules! profile_columns {
    () => {
        "user_id, display_name, username, about, avatar_url, avatar_mime_type, avatar_size, \
         avatar_width, avatar_height, phone_number, last_seen, profile_photo, about_visibility, \
         find_by_phone, registered, created_at, updated_at, deleted_at"
    };
}

/// The contact request columns, as [`requests::request`] reads them.
macro_rules! request_columns {
    () => {
        "contact_request_id, sender_id, recipient_id, message, state, created_at, updated_at"
    };
}

mod blocks;
mod contacts;
mod profiles;
mod requests;

/// [`UserStore`] on PostgreSQL.
#[derive(Clone)]
pub struct PostgresUserStore {
    db: PostgresDatabase,
    outbox: Outbox,
}

impl PostgresUserStore {
    /// The store on `db` (user and bus migrations applied), appending events to `outbox`.
    pub fn new(db: PostgresDatabase, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

#[async_trait]
impl UserStore for PostgresUserStore {
    async fn record_registration(
        &self,
        tx: &mut Tx,
        registration: &Registration,
    ) -> Result<(), StoreError> {
        profiles::record_registration(tx.postgres()?, registration).await
    }

    async fn erase_user(
        &self,
        tx: &mut Tx,
        user_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let removed = profiles::erase_user(tx.postgres()?, user_id, at).await?;
        changes::append(tx, &changes::contacts_removed(removed)).await
    }

    async fn profile(&self, user_id: Uuid) -> Result<Option<Profile>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(profile).transpose()?)
    }

    async fn profiles(&self, user_ids: &[Uuid]) -> Result<Vec<Profile>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE user_id = ANY($1)"
        ))
        .bind(user_ids)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(profile).collect::<Result<_, _>>()?)
    }

    async fn profile_by_phone(&self, phone_number: &str) -> Result<Option<Profile>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE phone_number = $1 AND deleted_at IS NULL"
        ))
        .bind(phone_number)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(profile).transpose()?)
    }

    async fn update_profile(
        &self,
        user_id: Uuid,
        change: &ProfileChange,
        at: DateTime<Utc>,
        event: ProfileEvent<'_>,
    ) -> Result<Profile, StoreError> {
        profiles::update_profile(&self.db.pool, &self.outbox, user_id, change, at, event).await
    }

    async fn update_privacy(
        &self,
        user_id: Uuid,
        change: &PrivacyChange,
        at: DateTime<Utc>,
    ) -> Result<Profile, StoreError> {
        profiles::update_privacy(&self.db.pool, &self.outbox, user_id, change, at).await
    }

    async fn relations(
        &self,
        viewer: Uuid,
        others: &[Uuid],
    ) -> Result<HashMap<Uuid, Relation>, StoreError> {
        contacts::relations(&self.db.pool, viewer, others).await
    }

    async fn search(
        &self,
        viewer: Uuid,
        prefix: &str,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        profiles::search(&self.db.pool, viewer, prefix, after, limit).await
    }

    async fn add_contact(
        &self,
        owner: Uuid,
        contact: Uuid,
        alias: &str,
        at: DateTime<Utc>,
        max_contacts: u32,
    ) -> Result<ContactEntry, StoreError> {
        let pool = &self.db.pool;
        contacts::add_contact(pool, &self.outbox, owner, contact, alias, at, max_contacts).await
    }

    async fn update_contact(
        &self,
        owner: Uuid,
        contact: Uuid,
        alias: &str,
    ) -> Result<Option<ContactEntry>, StoreError> {
        contacts::update_contact(&self.db.pool, owner, contact, alias).await
    }

    async fn remove_contact(&self, owner: Uuid, contact: Uuid) -> Result<(), StoreError> {
        contacts::remove_contact(&self.db.pool, &self.outbox, owner, contact).await
    }

    async fn list_contacts(
        &self,
        owner: Uuid,
        after: Option<&ContactPosition>,
        limit: usize,
    ) -> Result<Vec<ContactEntry>, StoreError> {
        contacts::list_contacts(&self.db.pool, owner, after, limit).await
    }

    async fn send_contact_request(
        &self,
        id: Uuid,
        sender: Uuid,
        recipient: Uuid,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<ContactRequest, StoreError> {
        let pool = &self.db.pool;
        requests::send(pool, &self.outbox, id, sender, recipient, message, at).await
    }

    async fn contact_request(&self, id: Uuid) -> Result<Option<ContactRequest>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            request_columns!(),
            " FROM contact_requests WHERE contact_request_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(requests::request).transpose()?)
    }

    async fn accept_contact_request(
        &self,
        recipient: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactRequest>, StoreError> {
        requests::accept(&self.db.pool, &self.outbox, recipient, id, at).await
    }

    async fn decline_contact_request(
        &self,
        recipient: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // One conditional statement: of racing calls, the one that waits for the row lock
        // re-checks the state and matches nothing.
        let declined = sqlx::query(
            "UPDATE contact_requests SET state = 3, updated_at = $3 \
             WHERE contact_request_id = $1 AND recipient_id = $2 AND state = 1",
        )
        .bind(id)
        .bind(recipient)
        .bind(at)
        .execute(&self.db.pool)
        .await?;
        Ok(declined.rows_affected() > 0)
    }

    async fn cancel_contact_request(
        &self,
        sender: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let cancelled = sqlx::query(
            "UPDATE contact_requests SET state = 4, updated_at = $3 \
             WHERE contact_request_id = $1 AND sender_id = $2 AND state IN (1, 3)",
        )
        .bind(id)
        .bind(sender)
        .bind(at)
        .execute(&self.db.pool)
        .await?;
        Ok(cancelled.rows_affected() > 0)
    }

    async fn list_contact_requests(
        &self,
        user: Uuid,
        direction: Direction,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ContactRequest>, StoreError> {
        requests::list(&self.db.pool, user, direction, before, limit).await
    }

    async fn block(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<bool, StoreError> {
        blocks::block(&self.db.pool, &self.outbox, blocker, blocked, at, event).await
    }

    async fn unblock(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        event: &Event,
    ) -> Result<bool, StoreError> {
        blocks::unblock(&self.db.pool, &self.outbox, blocker, blocked, event).await
    }

    async fn list_blocked(
        &self,
        blocker: Uuid,
        after: Option<&BlockPosition>,
        limit: usize,
    ) -> Result<Vec<BlockEntry>, StoreError> {
        blocks::list_blocked(&self.db.pool, blocker, after, limit).await
    }
}

/// Locks the profile rows of `a` and `b` (those that exist) in user id order and returns the
/// ids among them whose profile is live.
async fn lock_pair(conn: &mut PgConnection, a: Uuid, b: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    // The sort runs below the row locking, so rows are locked in this order.
    let rows: Vec<(Uuid, bool)> = sqlx::query_as(
        "SELECT user_id, deleted_at IS NULL FROM profiles WHERE user_id IN ($1, $2) \
         ORDER BY user_id FOR UPDATE",
    )
    .bind(a)
    .bind(b)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, live)| live.then_some(id))
        .collect())
}

/// Rolls `tx` back and answers `refusal`.
async fn refuse<T>(
    tx: sqlx::Transaction<'_, Postgres>,
    refusal: StoreError,
) -> Result<T, StoreError> {
    tx.rollback().await?;
    Err(refusal)
}

fn profile(row: &PgRow) -> Result<Profile, sqlx::Error> {
    let avatar = match row.try_get::<Option<String>, _>("avatar_url")? {
        None => None,
        Some(url) => Some(Avatar {
            url,
            mime_type: row
                .try_get::<Option<String>, _>("avatar_mime_type")?
                .unwrap_or_default(),
            size_bytes: row.try_get::<Option<i64>, _>("avatar_size")?.unwrap_or(0),
            width: row.try_get::<Option<i32>, _>("avatar_width")?.unwrap_or(0),
            height: row.try_get::<Option<i32>, _>("avatar_height")?.unwrap_or(0),
        }),
    };
    let visibility = |column: &str| -> Result<Visibility, sqlx::Error> {
        Ok(Visibility::from_code(row.try_get::<i16, _>(column)?.into()))
    };
    Ok(Profile {
        user_id: row.try_get("user_id")?,
        display_name: row.try_get("display_name")?,
        username: row.try_get("username")?,
        about: row.try_get("about")?,
        avatar,
        phone_number: row.try_get("phone_number")?,
        privacy: Privacy {
            last_seen: visibility("last_seen")?,
            profile_photo: visibility("profile_photo")?,
            about: visibility("about_visibility")?,
            find_by_phone: visibility("find_by_phone")?,
        },
        registered: row.try_get("registered")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}
