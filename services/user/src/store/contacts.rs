//! Address books, and how a viewer relates to other users: one script per operation for both
//! backends.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use echo_ids::UserId;
use echo_store::{Tx, sql_limit, value_rows, with_db, with_tx};
use sqlx::AssertSqlSafe;

use super::changes::{self, ContactRow};
use super::codec::{At, Id, PairLock, lock_pair, refuse};
use super::{ContactEntry, ContactPosition, Relation, UserStore, key};
use crate::error::UserError;

/// An owner's entries (`$1`) with their sort key, as [`EntryRow`] reads them. A contact
/// without a profile cannot exist (erasure removes entries of the erased), but would sort by ''.
macro_rules! entries {
    () => {
        "SELECT c.contact_id, c.alias, c.created_at, \
           CASE WHEN c.alias_key <> '' THEN c.alias_key \
                ELSE COALESCE(p.display_name_key, '') END AS sort_key \
         FROM contacts c LEFT JOIN profiles p ON p.user_id = c.contact_id \
         WHERE c.owner_id = $1"
    };
}

/// Ids bound per statement by the id-list reads (well under both backends' parameter limits;
/// callers send at most `rules::MAX_BATCH`).
pub(crate) const IDS_PER_STATEMENT: usize = 500;

/// A row of [`entries!`].
#[derive(sqlx::FromRow)]
struct EntryRow {
    contact_id: Id,
    alias: String,
    created_at: At,
    sort_key: String,
}

impl From<EntryRow> for ContactEntry {
    fn from(row: EntryRow) -> Self {
        ContactEntry {
            user_id: row.contact_id.0.into(),
            alias: row.alias,
            created_at: row.created_at.0,
            sort_key: row.sort_key,
        }
    }
}

/// A row of the relations read.
#[derive(sqlx::FromRow)]
struct RelationRow {
    id: Id,
    contact_alias: Option<String>,
    in_their_contacts: bool,
    blocked: bool,
    blocked_by: bool,
}

impl UserStore {
    /// How `viewer` relates to each of `others` (ids without any relation may be missing from
    /// the map, meaning `Relation::default()`).
    pub async fn relations(
        &self,
        viewer: UserId,
        others: &[UserId],
    ) -> Result<HashMap<UserId, Relation>, UserError> {
        let mut relations = HashMap::new();
        for chunk in others.chunks(IDS_PER_STATEMENT) {
            // The ids as a VALUES list (`column1` in both dialects): one form both accept, where
            // PostgreSQL would take an array and SQLite a JSON list.
            let sql = format!(
                "SELECT o.id, c.alias AS contact_alias, \
                   EXISTS (SELECT 1 FROM contacts t WHERE t.owner_id = o.id AND t.contact_id = $1) \
                     AS in_their_contacts, \
                   EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = o.id) \
                     AS blocked, \
                   EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = o.id AND b.blocked_id = $1) \
                     AS blocked_by \
                 FROM (SELECT DISTINCT column1 AS id FROM (VALUES {}) AS v) AS o \
                 LEFT JOIN contacts c ON c.owner_id = $1 AND c.contact_id = o.id",
                value_rows(2, chunk.len(), 1)
            );
            let rows: Vec<RelationRow> = with_db!(&self.db, read, sql, |c| {
                let mut query = sqlx::query_as(AssertSqlSafe(sql)).bind(Id(viewer.into()));
                for id in chunk {
                    query = query.bind(Id((*id).into()));
                }
                query.fetch_all(c).await?
            });
            for row in rows {
                let relation = Relation {
                    contact_alias: row.contact_alias,
                    in_their_contacts: row.in_their_contacts,
                    blocked: row.blocked,
                    blocked_by: row.blocked_by,
                };
                if relation != Relation::default() {
                    relations.insert(row.id.0.into(), relation);
                }
            }
        }
        Ok(relations)
    }

    /// Adds `contact` to `owner`'s contacts with `alias`, or sets the alias of an existing
    /// entry (idempotent). A new entry appends `ContactAdded` in the same transaction; a
    /// renamed one appends nothing. `UserNotFound` when `contact` has no live profile;
    /// `LimitExceeded` (contacts) when the entry is new and `owner` already has `max_contacts`.
    pub async fn add_contact(
        &self,
        owner: UserId,
        contact: UserId,
        alias: &str,
        at: DateTime<Utc>,
        max_contacts: u32,
    ) -> Result<ContactEntry, UserError> {
        let mut tx = self.db.begin().await?;
        lock_owner_contacts(&mut tx, owner).await?;
        // Shared locks on both profiles hold off an erasure of either until this entry is
        // committed, so the erasure then removes it.
        let live = lock_pair(&mut tx, owner, contact, PairLock::Share).await?;
        if !live.contains(&contact) {
            return refuse(tx, UserError::UserNotFound).await;
        }
        let renamed = set_alias(&mut tx, owner, contact, alias).await?;
        let mut added = Vec::new();
        if !renamed {
            let count: i64 = with_tx!(&mut tx, |c| {
                sqlx::query_scalar("SELECT count(*) FROM contacts WHERE owner_id = $1")
                    .bind(Id(owner.into()))
                    .fetch_one(c)
                    .await?
            });
            if count >= i64::from(max_contacts) {
                return refuse(
                    tx,
                    UserError::LimitExceeded {
                        limit: "contacts",
                        max: max_contacts,
                    },
                )
                .await;
            }
            with_tx!(&mut tx, |c| {
                sqlx::query(
                    "INSERT INTO contacts (owner_id, contact_id, alias, alias_key, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(Id(owner.into()))
                .bind(Id(contact.into()))
                .bind(alias)
                .bind(key(alias))
                .bind(At(at))
                .execute(c)
                .await?;
            });
            added.push((owner, contact));
        }
        let entry = contact_entry(&mut tx, owner, contact)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        let events = changes::contacts_added(added);
        changes::commit(&self.outbox, tx, &events).await?;
        Ok(entry)
    }

    /// Removes `owner`'s entry of `contact` (idempotent; the other user's list is untouched)
    /// and, when there was one, appends `ContactRemoved` in the same transaction.
    pub async fn remove_contact(&self, owner: UserId, contact: UserId) -> Result<(), UserError> {
        let mut tx = self.db.begin().await?;
        let removed: Vec<(Id, Id)> = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "DELETE FROM contacts WHERE owner_id = $1 AND contact_id = $2 \
                 RETURNING owner_id, contact_id",
            )
            .bind(Id(owner.into()))
            .bind(Id(contact.into()))
            .fetch_all(c)
            .await?
        });
        let events = changes::contacts_removed(contact_rows(removed));
        changes::commit(&self.outbox, tx, &events).await
    }

    /// Sets the alias of an existing entry; None when `contact` is not in `owner`'s list.
    pub async fn update_contact(
        &self,
        owner: UserId,
        contact: UserId,
        alias: &str,
    ) -> Result<Option<ContactEntry>, UserError> {
        let mut tx = self.db.begin().await?;
        if !set_alias(&mut tx, owner, contact, alias).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let entry = contact_entry(&mut tx, owner, contact).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// `owner`'s contacts ordered by (sort_key, user_id), after `after`; at most `limit`.
    pub async fn list_contacts(
        &self,
        owner: UserId,
        after: Option<&ContactPosition>,
        limit: usize,
    ) -> Result<Vec<ContactEntry>, UserError> {
        let rows: Vec<EntryRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT * FROM (",
                entries!(),
                ") AS entries \
                 WHERE $2 IS NULL OR (sort_key, contact_id) > ($2, $3) \
                 ORDER BY sort_key, contact_id LIMIT $4"
            ))
            .bind(Id(owner.into()))
            .bind(after.map(|a| a.sort_key.as_str()))
            .bind(after.map(|a| Id(a.user_id.into())))
            .bind(sql_limit(limit))
            .fetch_all(c)
            .await?
        });
        Ok(rows.into_iter().map(ContactEntry::from).collect())
    }
}

/// Serialises `owner`'s additions, so two cannot both pass the quota check.
///
/// Dialect-specific: PostgreSQL takes a transaction-scoped advisory lock (the owner may have no
/// profile row yet, registration not consumed, to lock instead; a hash collision only makes
/// two owners wait for each other). SQLite's write transaction already holds the one writer.
async fn lock_owner_contacts(tx: &mut Tx, owner: UserId) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(tx) = tx {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('echo.user.contacts.' || $1, 0))",
        )
        .bind(owner.to_string())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Adds each of `a` and `b` to the other's contacts; existing entries keep their alias.
/// Returns the entries added.
pub(crate) async fn add_each_other(
    tx: &mut Tx,
    a: UserId,
    b: UserId,
    at: DateTime<Utc>,
) -> Result<Vec<ContactRow>, sqlx::Error> {
    let added: Vec<(Id, Id)> = with_tx!(tx, |c| {
        sqlx::query_as(
            "INSERT INTO contacts (owner_id, contact_id, created_at) \
             VALUES ($1, $2, $3), ($2, $1, $3) \
             ON CONFLICT (owner_id, contact_id) DO NOTHING RETURNING owner_id, contact_id",
        )
        .bind(Id(a.into()))
        .bind(Id(b.into()))
        .bind(At(at))
        .fetch_all(c)
        .await?
    });
    Ok(contact_rows(added))
}

/// `(owner_id, contact_id)` rows as `RETURNING owner_id, contact_id` gives them.
pub(crate) fn contact_rows(rows: Vec<(Id, Id)>) -> Vec<ContactRow> {
    rows.into_iter()
        .map(|(Id(owner), Id(contact))| (owner.into(), contact.into()))
        .collect()
}

/// Sets the alias of an existing entry; false when there is none.
async fn set_alias(
    tx: &mut Tx,
    owner: UserId,
    contact: UserId,
    alias: &str,
) -> Result<bool, sqlx::Error> {
    let updated = with_tx!(tx, |c| {
        sqlx::query(
            "UPDATE contacts SET alias = $3, alias_key = $4 \
             WHERE owner_id = $1 AND contact_id = $2",
        )
        .bind(Id(owner.into()))
        .bind(Id(contact.into()))
        .bind(alias)
        .bind(key(alias))
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(updated > 0)
}

async fn contact_entry(
    tx: &mut Tx,
    owner: UserId,
    contact: UserId,
) -> Result<Option<ContactEntry>, sqlx::Error> {
    let row: Option<EntryRow> = with_tx!(tx, |c| {
        sqlx::query_as(concat!(entries!(), " AND c.contact_id = $2"))
            .bind(Id(owner.into()))
            .bind(Id(contact.into()))
            .fetch_optional(c)
            .await?
    });
    Ok(row.map(ContactEntry::from))
}
