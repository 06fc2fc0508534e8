//! Presence's database: the persisted half of a user's presence (manual status, `last_seen`)
//! and the projections visibility reads (blocks, contacts, the `last_seen` setting, members of
//! direct and group conversations).
//!
//! Rules once, dialect twice (STYLE 15): every statement here is ONE SQL text that PostgreSQL
//! and SQLite both accept, with shared encodings (ids bind as `uuid` / 16-byte blobs, times as
//! milliseconds since the epoch). `echo_store`'s `with_db!` and `with_tx!` only pick the
//! connection; the statement and its binds are written once and compiled for each backend.
//! Typed ids bind as their bare `Uuid`, not as `echo_store::native::Id` (hyphenated TEXT on
//! SQLite): presence's SQLite tables have always held 16-byte blobs, and must keep matching.
//! Nothing here is backend-specific, so there is no per-backend file.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, UserId};
use echo_store::{Database, StoreError, Tx, placeholders, with_db, with_tx};
use sqlx::Row as _;
use uuid::Uuid;

use crate::state::{from_millis, millis};
use crate::status::{Manual, ManualStatus};
use crate::visibility::{Audience, Relation};

/// What the database keeps of one user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Persisted {
    /// The manual status, if one is set (its end may have passed: callers filter).
    pub manual: Option<ManualStatus>,
    /// The last time the user was seen going offline or invisible.
    pub last_seen: Option<DateTime<Utc>>,
}

/// Presence's database handle.
#[derive(Clone, Debug)]
pub struct PresenceStore {
    db: Database,
}

fn manual_code(manual: Option<Manual>) -> i16 {
    match manual {
        None => 0,
        Some(Manual::Away) => 1,
        Some(Manual::Dnd) => 2,
        Some(Manual::Invisible) => 3,
    }
}

fn manual_of(code: i16) -> Option<Manual> {
    match code {
        1 => Some(Manual::Away),
        2 => Some(Manual::Dnd),
        3 => Some(Manual::Invisible),
        _ => None,
    }
}

/// The `presence_privacy.audience` code of a setting.
pub fn audience_code(audience: Audience) -> i16 {
    match audience {
        Audience::Everyone => 1,
        Audience::Contacts => 2,
        Audience::Nobody => 3,
    }
}

fn audience_of(code: i32) -> Audience {
    match code {
        1 => Audience::Everyone,
        3 => Audience::Nobody,
        _ => Audience::Contacts,
    }
}

/// Kinds of rows the relations query returns.
const BLOCK: i32 = 1;
const CONTACT: i32 = 2;
const MEMBER: i32 = 3;
/// Privacy rows come back as `PRIVACY + audience`.
const PRIVACY: i32 = 10;

impl PresenceStore {
    /// The store on presence's own database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database (for consumers and readiness).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The persisted presence of `users` (absent users have none).
    pub async fn load(&self, users: &[UserId]) -> Result<HashMap<UserId, Persisted>, StoreError> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT user_id, manual, clears_at_ms, last_seen_ms FROM presence_status \
             WHERE user_id IN ({})",
            placeholders(1, users.len())
        );
        let mut loaded = HashMap::new();
        with_db!(&self.db, read, sql, |c| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for user in users {
                query = query.bind(Uuid::from(*user));
            }
            for row in query.fetch_all(c).await? {
                let clears_at = row
                    .try_get::<Option<i64>, _>("clears_at_ms")?
                    .map(from_millis);
                let manual = manual_of(row.try_get("manual")?)
                    .map(|status| ManualStatus { status, clears_at });
                let persisted = Persisted {
                    manual,
                    last_seen: row
                        .try_get::<Option<i64>, _>("last_seen_ms")?
                        .map(from_millis),
                };
                loaded.insert(row.try_get::<Uuid, _>("user_id")?.into(), persisted);
            }
        });
        Ok(loaded)
    }

    /// Persists `user`'s manual status (or its absence), before the state store hears of it.
    pub async fn save_manual(
        &self,
        user: UserId,
        manual: Option<ManualStatus>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO presence_status (user_id, manual, clears_at_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE \
             SET manual = excluded.manual, clears_at_ms = excluded.clears_at_ms";
        let code = manual_code(manual.map(|m| m.status));
        let clears = manual.and_then(|m| m.clears_at).map(millis);
        with_db!(&self.db, write, |c| {
            sqlx::query(SQL)
                .bind(Uuid::from(user))
                .bind(code)
                .bind(clears)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Clears `user`'s manual status if its end is due by `now` (the sweeper found it due;
    /// a status set again since has a later end, or none, and stays).
    pub async fn clear_manual_if_due(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE presence_status SET manual = 0, clears_at_ms = NULL \
             WHERE user_id = $1 AND clears_at_ms <= $2";
        with_db!(&self.db, write, |c| {
            sqlx::query(SQL)
                .bind(Uuid::from(user))
                .bind(millis(now))
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Records `last_seen` times, never moving one backwards, in one transaction.
    pub async fn save_last_seen(&self, seen: &[(UserId, DateTime<Utc>)]) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO presence_status (user_id, last_seen_ms) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET last_seen_ms = CASE \
             WHEN presence_status.last_seen_ms IS NULL \
               OR presence_status.last_seen_ms < excluded.last_seen_ms \
             THEN excluded.last_seen_ms ELSE presence_status.last_seen_ms END";
        if seen.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        with_tx!(&mut tx, |c| {
            for (user, at) in seen {
                sqlx::query(SQL)
                    .bind(Uuid::from(*user))
                    .bind(millis(*at))
                    .execute(&mut *c)
                    .await?;
            }
        });
        tx.commit().await
    }

    /// What the projections know of `observer` and each of `targets`, in one query.
    pub async fn relations(
        &self,
        observer: UserId,
        targets: &[UserId],
    ) -> Result<HashMap<UserId, Relation>, StoreError> {
        let mut relations: HashMap<UserId, Relation> =
            targets.iter().map(|t| (*t, Relation::default())).collect();
        if targets.is_empty() {
            return Ok(relations);
        }
        let list = placeholders(2, targets.len());
        let sql = format!(
            "SELECT {BLOCK} AS kind, blocked_id AS other FROM presence_blocks \
               WHERE blocker_id = $1 AND blocked_id IN ({list}) \
             UNION ALL SELECT {BLOCK}, blocker_id FROM presence_blocks \
               WHERE blocked_id = $1 AND blocker_id IN ({list}) \
             UNION ALL SELECT {CONTACT}, owner_id FROM presence_contacts \
               WHERE contact_id = $1 AND owner_id IN ({list}) \
             UNION ALL SELECT DISTINCT {MEMBER}, theirs.user_id FROM presence_members mine \
               JOIN presence_members theirs ON theirs.conversation_id = mine.conversation_id \
               WHERE mine.user_id = $1 AND theirs.user_id IN ({list}) \
             UNION ALL SELECT {PRIVACY} + audience, user_id FROM presence_privacy \
               WHERE user_id IN ({list})"
        );
        with_db!(&self.db, read, |c| {
            let mut query =
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(Uuid::from(observer));
            for target in targets {
                query = query.bind(Uuid::from(*target));
            }
            for row in query.fetch_all(c).await? {
                let kind: i32 = row.try_get("kind")?;
                let other: UserId = row.try_get::<Uuid, _>("other")?.into();
                let Some(relation) = relations.get_mut(&other) else {
                    continue;
                };
                match kind {
                    BLOCK => relation.blocked = true,
                    CONTACT => relation.in_targets_contacts = true,
                    MEMBER => relation.share_conversation = true,
                    privacy => relation.audience = audience_of(privacy - PRIVACY),
                }
            }
        });
        Ok(relations)
    }
}

/// Projection writes, inside a consumer's transaction (the event id is recorded in the same
/// one, so a redelivery changes nothing). Each is idempotent on its own too.
pub mod projection {
    use super::*;

    async fn run(tx: &mut Tx, sql: &'static str, a: Uuid, b: Uuid) -> Result<(), sqlx::Error> {
        with_tx!(tx, |c| {
            sqlx::query(sql).bind(a).bind(b).execute(c).await?;
        });
        Ok(())
    }

    /// `blocker` blocked `blocked`.
    pub async fn block(tx: &mut Tx, blocker: UserId, blocked: UserId) -> Result<(), sqlx::Error> {
        const SQL: &str = "INSERT INTO presence_blocks (blocker_id, blocked_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING";
        run(tx, SQL, blocker.into(), blocked.into()).await
    }

    /// `blocker` lifted the block of `blocked`.
    pub async fn unblock(tx: &mut Tx, blocker: UserId, blocked: UserId) -> Result<(), sqlx::Error> {
        const SQL: &str = "DELETE FROM presence_blocks WHERE blocker_id = $1 AND blocked_id = $2";
        run(tx, SQL, blocker.into(), blocked.into()).await
    }

    /// `owner` has `contact` in their contacts.
    pub async fn add_contact(
        tx: &mut Tx,
        owner: UserId,
        contact: UserId,
    ) -> Result<(), sqlx::Error> {
        const SQL: &str = "INSERT INTO presence_contacts (owner_id, contact_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING";
        run(tx, SQL, owner.into(), contact.into()).await
    }

    /// `owner` no longer has `contact` in their contacts.
    pub async fn remove_contact(
        tx: &mut Tx,
        owner: UserId,
        contact: UserId,
    ) -> Result<(), sqlx::Error> {
        const SQL: &str = "DELETE FROM presence_contacts WHERE owner_id = $1 AND contact_id = $2";
        run(tx, SQL, owner.into(), contact.into()).await
    }

    /// `user` is a member of the direct or group `conversation`.
    pub async fn join(
        tx: &mut Tx,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<(), sqlx::Error> {
        const SQL: &str = "INSERT INTO presence_members (conversation_id, user_id) \
             VALUES ($1, $2) ON CONFLICT DO NOTHING";
        run(tx, SQL, conversation.into(), user.into()).await
    }

    /// `user` left `conversation` (or was removed).
    pub async fn leave(
        tx: &mut Tx,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<(), sqlx::Error> {
        const SQL: &str =
            "DELETE FROM presence_members WHERE conversation_id = $1 AND user_id = $2";
        run(tx, SQL, conversation.into(), user.into()).await
    }

    /// `user`'s `last_seen` setting.
    pub async fn privacy(tx: &mut Tx, user: UserId, audience: Audience) -> Result<(), sqlx::Error> {
        const SQL: &str = "INSERT INTO presence_privacy (user_id, audience) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET audience = excluded.audience";
        with_tx!(tx, |c| {
            sqlx::query(SQL)
                .bind(Uuid::from(user))
                .bind(audience_code(audience))
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Everything presence keeps about `user` (the account was deleted).
    pub async fn erase_user(tx: &mut Tx, user: UserId) -> Result<(), sqlx::Error> {
        const STATEMENTS: [&str; 5] = [
            "DELETE FROM presence_status WHERE user_id = $1",
            "DELETE FROM presence_blocks WHERE blocker_id = $1 OR blocked_id = $1",
            "DELETE FROM presence_contacts WHERE owner_id = $1 OR contact_id = $1",
            "DELETE FROM presence_privacy WHERE user_id = $1",
            "DELETE FROM presence_members WHERE user_id = $1",
        ];
        with_tx!(tx, |c| {
            for sql in STATEMENTS {
                sqlx::query(sql)
                    .bind(Uuid::from(user))
                    .execute(&mut *c)
                    .await?;
            }
        });
        Ok(())
    }
}
