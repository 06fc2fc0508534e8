//! [`UserStore`] on the embedded SQLite file.
//!
//! Every write goes through the single writer connection, multi-statement ones in a
//! `BEGIN IMMEDIATE` transaction; that serialisation is what makes the contact quota, one open
//! request per direction, crossing requests and accept/decline/cancel race-free here (a check
//! and the write that follows it cannot interleave with another call's). Reads use the reader
//! pool. UUIDs are stored as hyphenated lowercase TEXT, which sorts like the UUID's bytes (so
//! pages follow PostgreSQL's order), and times as unix microseconds (see the migration).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_store::sql_limit;
use echo_store::sqlite_rows::{json_ids, micros, optional_time, time, uuid};
use echo_store::{SqliteDatabase, Tx};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool};
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

/// [`UserStore`] on SQLite.
#[derive(Clone)]
pub struct SqliteUserStore {
    db: SqliteDatabase,
    outbox: Outbox,
}

impl SqliteUserStore {
    /// The store on `db` (user and bus migrations applied), appending events to `outbox`.
    pub fn new(db: SqliteDatabase, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

#[async_trait]
impl UserStore for SqliteUserStore {
    async fn record_registration(
        &self,
        tx: &mut Tx,
        registration: &Registration,
    ) -> Result<(), StoreError> {
        profiles::record_registration(tx.sqlite()?, registration).await
    }

    async fn erase_user(
        &self,
        tx: &mut Tx,
        user_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let removed = profiles::erase_user(tx.sqlite()?, user_id, at).await?;
        changes::append(tx, &changes::contacts_removed(removed)).await
    }

    async fn profile(&self, user_id: Uuid) -> Result<Option<Profile>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE user_id = $1"
        ))
        .bind(user_id.to_string())
        .fetch_optional(&self.db.reader)
        .await?;
        Ok(row.as_ref().map(profile).transpose()?)
    }

    async fn profiles(&self, user_ids: &[Uuid]) -> Result<Vec<Profile>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE user_id IN (SELECT value FROM json_each($1))"
        ))
        .bind(json_ids(user_ids))
        .fetch_all(&self.db.reader)
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
        .fetch_optional(&self.db.reader)
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
        profiles::update_profile(&self.db.writer, &self.outbox, user_id, change, at, event).await
    }

    async fn update_privacy(
        &self,
        user_id: Uuid,
        change: &PrivacyChange,
        at: DateTime<Utc>,
    ) -> Result<Profile, StoreError> {
        profiles::update_privacy(&self.db.writer, &self.outbox, user_id, change, at).await
    }

    async fn relations(
        &self,
        viewer: Uuid,
        others: &[Uuid],
    ) -> Result<HashMap<Uuid, Relation>, StoreError> {
        contacts::relations(&self.db.reader, viewer, others).await
    }

    async fn search(
        &self,
        viewer: Uuid,
        prefix: &str,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        profiles::search(&self.db.reader, viewer, prefix, after, limit).await
    }

    async fn add_contact(
        &self,
        owner: Uuid,
        contact: Uuid,
        alias: &str,
        at: DateTime<Utc>,
        max_contacts: u32,
    ) -> Result<ContactEntry, StoreError> {
        let writer = &self.db.writer;
        contacts::add_contact(
            writer,
            &self.outbox,
            owner,
            contact,
            alias,
            at,
            max_contacts,
        )
        .await
    }

    async fn update_contact(
        &self,
        owner: Uuid,
        contact: Uuid,
        alias: &str,
    ) -> Result<Option<ContactEntry>, StoreError> {
        contacts::update_contact(&self.db.writer, owner, contact, alias).await
    }

    async fn remove_contact(&self, owner: Uuid, contact: Uuid) -> Result<(), StoreError> {
        contacts::remove_contact(&self.db.writer, &self.outbox, owner, contact).await
    }

    async fn list_contacts(
        &self,
        owner: Uuid,
        after: Option<&ContactPosition>,
        limit: usize,
    ) -> Result<Vec<ContactEntry>, StoreError> {
        contacts::list_contacts(&self.db.reader, owner, after, limit).await
    }

    async fn send_contact_request(
        &self,
        id: Uuid,
        sender: Uuid,
        recipient: Uuid,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<ContactRequest, StoreError> {
        let writer = &self.db.writer;
        requests::send(writer, &self.outbox, id, sender, recipient, message, at).await
    }

    async fn contact_request(&self, id: Uuid) -> Result<Option<ContactRequest>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            request_columns!(),
            " FROM contact_requests WHERE contact_request_id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.db.reader)
        .await?;
        Ok(row.as_ref().map(requests::request).transpose()?)
    }

    async fn accept_contact_request(
        &self,
        recipient: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactRequest>, StoreError> {
        requests::accept(&self.db.writer, &self.outbox, recipient, id, at).await
    }

    async fn decline_contact_request(
        &self,
        recipient: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let declined = sqlx::query(
            "UPDATE contact_requests SET state = 3, updated_at = $3 \
             WHERE contact_request_id = $1 AND recipient_id = $2 AND state = 1",
        )
        .bind(id.to_string())
        .bind(recipient.to_string())
        .bind(micros(at))
        .execute(&self.db.writer)
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
        .bind(id.to_string())
        .bind(sender.to_string())
        .bind(micros(at))
        .execute(&self.db.writer)
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
        requests::list(&self.db.reader, user, direction, before, limit).await
    }

    async fn block(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<bool, StoreError> {
        blocks::block(&self.db.writer, &self.outbox, blocker, blocked, at, event).await
    }

    async fn unblock(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        event: &Event,
    ) -> Result<bool, StoreError> {
        blocks::unblock(&self.db.writer, &self.outbox, blocker, blocked, event).await
    }

    async fn list_blocked(
        &self,
        blocker: Uuid,
        after: Option<&BlockPosition>,
        limit: usize,
    ) -> Result<Vec<BlockEntry>, StoreError> {
        blocks::list_blocked(&self.db.reader, blocker, after, limit).await
    }
}

/// A writer transaction, as every multi-statement write runs in.
type WriteTx = sqlx::Transaction<'static, Sqlite>;

/// Begins a write transaction holding the write lock from the start, so it cannot fail
/// half-way with SQLITE_BUSY.
async fn begin(writer: &SqlitePool) -> Result<WriteTx, sqlx::Error> {
    writer.begin_with("BEGIN IMMEDIATE").await
}

/// Whether `user_id` has a live profile.
async fn is_live(conn: &mut SqliteConnection, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let live: Option<bool> =
        sqlx::query_scalar("SELECT deleted_at IS NULL FROM profiles WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(live == Some(true))
}

/// Rolls `tx` back (freeing the writer at once) and answers `refusal`.
async fn refuse<T>(tx: WriteTx, refusal: StoreError) -> Result<T, StoreError> {
    tx.rollback().await?;
    Err(refusal)
}

fn profile(row: &SqliteRow) -> Result<Profile, sqlx::Error> {
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
        Ok(Visibility::from_code(row.try_get(column)?))
    };
    Ok(Profile {
        user_id: uuid(row, "user_id")?,
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
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        deleted_at: optional_time(row, "deleted_at")?,
    })
}
