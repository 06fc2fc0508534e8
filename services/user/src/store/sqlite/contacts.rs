//! Address books, and how a viewer relates to other users.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use echo_store::Tx;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::{begin, is_live, json_ids, micros, refuse, sql_limit, time, uuid};
use crate::store::changes::{self, ContactRow};
use crate::store::{ContactEntry, ContactPosition, Relation, StoreError, key};

/// An owner's entries (`$1`) with their sort key, as [`entry`] reads them. A contact without a
/// profile cannot exist (erasure removes entries of the erased), but would sort by ''.
macro_rules! entries {
    () => {
        "SELECT c.contact_id, c.alias, c.created_at, \
           CASE WHEN c.alias_key <> '' THEN c.alias_key \
                ELSE COALESCE(p.display_name_key, '') END AS sort_key \
         FROM contacts c LEFT JOIN profiles p ON p.user_id = c.contact_id \
         WHERE c.owner_id = $1"
    };
}

/// See [`crate::store::UserStore::relations`].
pub(super) async fn relations(
    reader: &SqlitePool,
    viewer: Uuid,
    others: &[Uuid],
) -> Result<HashMap<Uuid, Relation>, StoreError> {
    let rows = sqlx::query(
        "SELECT o.id, c.alias AS contact_alias, \
           EXISTS (SELECT 1 FROM contacts t WHERE t.owner_id = o.id AND t.contact_id = $1) \
             AS in_their_contacts, \
           EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = o.id) \
             AS blocked, \
           EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = o.id AND b.blocked_id = $1) \
             AS blocked_by \
         FROM (SELECT DISTINCT value AS id FROM json_each($2)) AS o \
         LEFT JOIN contacts c ON c.owner_id = $1 AND c.contact_id = o.id",
    )
    .bind(viewer.to_string())
    .bind(json_ids(others))
    .fetch_all(reader)
    .await?;
    let mut relations = HashMap::new();
    for row in &rows {
        let relation = Relation {
            contact_alias: row.try_get("contact_alias")?,
            in_their_contacts: row.try_get("in_their_contacts")?,
            blocked: row.try_get("blocked")?,
            blocked_by: row.try_get("blocked_by")?,
        };
        if relation != Relation::default() {
            relations.insert(uuid(row, "id")?, relation);
        }
    }
    Ok(relations)
}

/// See [`crate::store::UserStore::add_contact`].
pub(super) async fn add_contact(
    writer: &SqlitePool,
    outbox: &Outbox,
    owner: Uuid,
    contact: Uuid,
    alias: &str,
    at: DateTime<Utc>,
    max_contacts: u32,
) -> Result<ContactEntry, StoreError> {
    let mut tx = begin(writer).await?;
    if !is_live(&mut tx, contact).await? {
        return refuse(tx, StoreError::UserNotFound).await;
    }
    let renamed = set_alias(&mut tx, owner, contact, alias).await?;
    let mut added = Vec::new();
    if !renamed {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE owner_id = $1")
            .bind(owner.to_string())
            .fetch_one(&mut *tx)
            .await?;
        if count >= i64::from(max_contacts) {
            return refuse(tx, StoreError::ContactLimit).await;
        }
        sqlx::query(
            "INSERT INTO contacts (owner_id, contact_id, alias, alias_key, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(owner.to_string())
        .bind(contact.to_string())
        .bind(alias)
        .bind(key(alias))
        .bind(micros(at))
        .execute(&mut *tx)
        .await?;
        added.push((owner, contact));
    }
    let entry = contact_entry(&mut tx, owner, contact)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let events = changes::contacts_added(added);
    changes::commit(outbox, Tx::Sqlite(tx), &events).await?;
    Ok(entry)
}

/// See [`crate::store::UserStore::remove_contact`].
pub(super) async fn remove_contact(
    writer: &SqlitePool,
    outbox: &Outbox,
    owner: Uuid,
    contact: Uuid,
) -> Result<(), StoreError> {
    let mut tx = begin(writer).await?;
    let removed = sqlx::query(
        "DELETE FROM contacts WHERE owner_id = $1 AND contact_id = $2 \
         RETURNING owner_id, contact_id",
    )
    .bind(owner.to_string())
    .bind(contact.to_string())
    .fetch_all(&mut *tx)
    .await?;
    let removed = removed.iter().map(contact_row).collect::<Result<_, _>>()?;
    let events = changes::contacts_removed(removed);
    changes::commit(outbox, Tx::Sqlite(tx), &events).await
}

/// See [`crate::store::UserStore::update_contact`].
pub(super) async fn update_contact(
    writer: &SqlitePool,
    owner: Uuid,
    contact: Uuid,
    alias: &str,
) -> Result<Option<ContactEntry>, StoreError> {
    let mut tx = begin(writer).await?;
    if !set_alias(&mut tx, owner, contact, alias).await? {
        tx.rollback().await?;
        return Ok(None);
    }
    let entry = contact_entry(&mut tx, owner, contact).await?;
    tx.commit().await?;
    Ok(entry)
}

/// See [`crate::store::UserStore::list_contacts`].
pub(super) async fn list_contacts(
    reader: &SqlitePool,
    owner: Uuid,
    after: Option<&ContactPosition>,
    limit: usize,
) -> Result<Vec<ContactEntry>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT * FROM (",
        entries!(),
        ") AS entries \
         WHERE $2 IS NULL OR (sort_key, contact_id) > ($2, $3) \
         ORDER BY sort_key, contact_id LIMIT $4"
    ))
    .bind(owner.to_string())
    .bind(after.map(|a| a.sort_key.as_str()))
    .bind(after.map(|a| a.user_id.to_string()))
    .bind(sql_limit(limit))
    .fetch_all(reader)
    .await?;
    Ok(rows.iter().map(entry).collect::<Result<_, _>>()?)
}

/// Adds each of `a` and `b` to the other's contacts; existing entries keep their alias.
/// Returns the entries added.
pub(super) async fn add_each_other(
    conn: &mut SqliteConnection,
    a: Uuid,
    b: Uuid,
    at: DateTime<Utc>,
) -> Result<Vec<ContactRow>, sqlx::Error> {
    let added = sqlx::query(
        "INSERT INTO contacts (owner_id, contact_id, created_at) VALUES ($1, $2, $3), ($2, $1, $3) \
         ON CONFLICT (owner_id, contact_id) DO NOTHING RETURNING owner_id, contact_id",
    )
    .bind(a.to_string())
    .bind(b.to_string())
    .bind(micros(at))
    .fetch_all(&mut *conn)
    .await?;
    added.iter().map(contact_row).collect()
}

/// A `contacts` row's `(owner_id, contact_id)`, as `RETURNING owner_id, contact_id` gives it.
pub(super) fn contact_row(row: &SqliteRow) -> Result<ContactRow, sqlx::Error> {
    Ok((uuid(row, "owner_id")?, uuid(row, "contact_id")?))
}

/// Sets the alias of an existing entry; false when there is none.
async fn set_alias(
    conn: &mut SqliteConnection,
    owner: Uuid,
    contact: Uuid,
    alias: &str,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE contacts SET alias = $3, alias_key = $4 WHERE owner_id = $1 AND contact_id = $2",
    )
    .bind(owner.to_string())
    .bind(contact.to_string())
    .bind(alias)
    .bind(key(alias))
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() > 0)
}

async fn contact_entry(
    conn: &mut SqliteConnection,
    owner: Uuid,
    contact: Uuid,
) -> Result<Option<ContactEntry>, sqlx::Error> {
    let row = sqlx::query(concat!(entries!(), " AND c.contact_id = $2"))
        .bind(owner.to_string())
        .bind(contact.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(entry).transpose()
}

fn entry(row: &SqliteRow) -> Result<ContactEntry, sqlx::Error> {
    Ok(ContactEntry {
        user_id: uuid(row, "contact_id")?,
        alias: row.try_get("alias")?,
        created_at: time(row, "created_at")?,
        sort_key: row.try_get("sort_key")?,
    })
}
