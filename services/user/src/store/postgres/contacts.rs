//! Address books, and how a viewer relates to other users.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use echo_store::Tx;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{refuse, sql_limit};
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
    pool: &PgPool,
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
         FROM (SELECT DISTINCT unnest($2::uuid[]) AS id) AS o \
         LEFT JOIN contacts c ON c.owner_id = $1 AND c.contact_id = o.id",
    )
    .bind(viewer)
    .bind(others)
    .fetch_all(pool)
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
            relations.insert(row.try_get("id")?, relation);
        }
    }
    Ok(relations)
}

/// See [`crate::store::UserStore::add_contact`].
pub(super) async fn add_contact(
    pool: &PgPool,
    outbox: &Outbox,
    owner: Uuid,
    contact: Uuid,
    alias: &str,
    at: DateTime<Utc>,
    max_contacts: u32,
) -> Result<ContactEntry, StoreError> {
    let mut tx = pool.begin().await?;
    // Serialises this owner's additions, so two cannot both pass the quota check. The owner may
    // have no profile row yet (registration not consumed) to lock instead; a hash collision
    // only makes two owners wait for each other.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('echo.user.contacts.' || $1, 0))")
        .bind(owner.to_string())
        .execute(&mut *tx)
        .await?;
    // Shared locks on both profiles hold off an erasure of either until this entry is
    // committed, so the erasure then removes it; in user id order, like `lock_pair`.
    let live: Vec<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM profiles WHERE user_id IN ($1, $2) AND deleted_at IS NULL \
         ORDER BY user_id FOR SHARE",
    )
    .bind(owner)
    .bind(contact)
    .fetch_all(&mut *tx)
    .await?;
    if !live.contains(&contact) {
        return refuse(tx, StoreError::UserNotFound).await;
    }
    let renamed = set_alias(&mut tx, owner, contact, alias).await?;
    let mut added = Vec::new();
    if !renamed {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE owner_id = $1")
            .bind(owner)
            .fetch_one(&mut *tx)
            .await?;
        if count >= i64::from(max_contacts) {
            return refuse(tx, StoreError::ContactLimit).await;
        }
        sqlx::query(
            "INSERT INTO contacts (owner_id, contact_id, alias, alias_key, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(owner)
        .bind(contact)
        .bind(alias)
        .bind(key(alias))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        added.push((owner, contact));
    }
    let entry = contact_entry(&mut tx, owner, contact)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let events = changes::contacts_added(added);
    changes::commit(outbox, Tx::Postgres(tx), &events).await?;
    Ok(entry)
}

/// See [`crate::store::UserStore::remove_contact`].
pub(super) async fn remove_contact(
    pool: &PgPool,
    outbox: &Outbox,
    owner: Uuid,
    contact: Uuid,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let removed: Vec<ContactRow> = sqlx::query_as(
        "DELETE FROM contacts WHERE owner_id = $1 AND contact_id = $2 \
         RETURNING owner_id, contact_id",
    )
    .bind(owner)
    .bind(contact)
    .fetch_all(&mut *tx)
    .await?;
    let events = changes::contacts_removed(removed);
    changes::commit(outbox, Tx::Postgres(tx), &events).await
}

/// See [`crate::store::UserStore::update_contact`].
pub(super) async fn update_contact(
    pool: &PgPool,
    owner: Uuid,
    contact: Uuid,
    alias: &str,
) -> Result<Option<ContactEntry>, StoreError> {
    let mut tx = pool.begin().await?;
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
    pool: &PgPool,
    owner: Uuid,
    after: Option<&ContactPosition>,
    limit: usize,
) -> Result<Vec<ContactEntry>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT * FROM (",
        entries!(),
        ") AS entries \
         WHERE $2::text IS NULL OR (sort_key, contact_id) > ($2, $3) \
         ORDER BY sort_key, contact_id LIMIT $4"
    ))
    .bind(owner)
    .bind(after.map(|a| a.sort_key.as_str()))
    .bind(after.map(|a| a.user_id))
    .bind(sql_limit(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(entry).collect::<Result<_, _>>()?)
}

/// Adds each of `a` and `b` to the other's contacts; existing entries keep their alias.
/// Returns the entries added.
pub(super) async fn add_each_other(
    conn: &mut PgConnection,
    a: Uuid,
    b: Uuid,
    at: DateTime<Utc>,
) -> Result<Vec<ContactRow>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO contacts (owner_id, contact_id, created_at) VALUES ($1, $2, $3), ($2, $1, $3) \
         ON CONFLICT (owner_id, contact_id) DO NOTHING RETURNING owner_id, contact_id",
    )
    .bind(a)
    .bind(b)
    .bind(at)
    .fetch_all(&mut *conn)
    .await
}

/// Sets the alias of an existing entry; false when there is none.
async fn set_alias(
    conn: &mut PgConnection,
    owner: Uuid,
    contact: Uuid,
    alias: &str,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE contacts SET alias = $3, alias_key = $4 WHERE owner_id = $1 AND contact_id = $2",
    )
    .bind(owner)
    .bind(contact)
    .bind(alias)
    .bind(key(alias))
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() > 0)
}

async fn contact_entry(
    conn: &mut PgConnection,
    owner: Uuid,
    contact: Uuid,
) -> Result<Option<ContactEntry>, sqlx::Error> {
    let row = sqlx::query(concat!(entries!(), " AND c.contact_id = $2"))
        .bind(owner)
        .bind(contact)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(entry).transpose()
}

fn entry(row: &PgRow) -> Result<ContactEntry, sqlx::Error> {
    Ok(ContactEntry {
        user_id: row.try_get("contact_id")?,
        alias: row.try_get("alias")?,
        created_at: row.try_get("created_at")?,
        sort_key: row.try_get("sort_key")?,
    })
}
