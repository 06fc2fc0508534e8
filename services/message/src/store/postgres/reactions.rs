//! [`ReactionStore`] on PostgreSQL: every write takes the conversation's seq first (its row
//! lock serialises the conversation's changes, deletion for everyone included), checks under
//! it, and gives the number back on a refusal or a no-op.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row};
use uuid::Uuid;

use super::{
    PostgresMessageStore, blocked_either, commit_with, corrupt, order_writes, parse_direct_key,
    refuse, sql_limit, take_seq,
};
use crate::events::conversation_event;
use crate::events::reactions::{
    message_pinned, message_unpinned, reaction_added, reaction_removed,
};
use crate::reactions::{
    MAX_EMOJIS_PER_USER, MAX_PINS, Pin, PinPosition, Reaction, ReactionPosition,
};
use crate::store::reactions::may_pin;
use crate::store::{Actor, Kind, ReactionStore, ReactionTally, Role, StoreError};

type PgTx = sqlx::Transaction<'static, Postgres>;

/// What the common checks found: the actor's role and whether the message was deleted for
/// everyone.
struct Target {
    role: Role,
    deleted: bool,
}

#[async_trait]
impl ReactionStore for PostgresMessageStore {
    async fn add_reaction(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (mut tx, seq, kind) = match locked(self, conversation).await? {
            Ok(locked) => locked,
            Err(tx) => return refuse(tx, StoreError::ConversationNotFound).await,
        };
        let target = match target(&mut tx, actor, conversation, message).await? {
            Ok(target) => target,
            Err(refusal) => return refuse(tx, refusal).await,
        };
        if target.deleted {
            return refuse(tx, StoreError::MessageDeleted).await;
        }
        if kind == Kind::Direct && blocked_direct(&mut tx, actor, conversation).await? {
            return refuse(tx, StoreError::Blocked(None)).await;
        }
        let (present, mine): (bool, i64) = sqlx::query_as(
            "SELECT coalesce(bool_or(emoji = $3), false), count(*) FROM reactions \
             WHERE message_id = $1 AND user_id = $2",
        )
        .bind(message)
        .bind(actor.user_id)
        .bind(emoji)
        .fetch_one(&mut *tx)
        .await?;
        if present {
            tx.rollback().await?;
            return Ok(false);
        }
        if mine >= MAX_EMOJIS_PER_USER {
            return refuse(tx, StoreError::LimitExceeded("reactions")).await;
        }
        sqlx::query(
            "INSERT INTO reactions (message_id, user_id, emoji, conversation_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(message)
        .bind(actor.user_id)
        .bind(emoji)
        .bind(conversation)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let count = emoji_count(&mut tx, message, emoji).await?;
        let kind = reaction_added(message, actor.user_id, emoji, count);
        let event = conversation_event(conversation, seq, at, actor, kind);
        commit_with(&self.outbox, tx, &[event]).await?;
        Ok(true)
    }

    async fn remove_reaction(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (mut tx, seq, _) = match locked(self, conversation).await? {
            Ok(locked) => locked,
            Err(tx) => return refuse(tx, StoreError::ConversationNotFound).await,
        };
        let removed = match take_back(&mut tx, actor, conversation, message, emoji).await? {
            Ok(removed) => removed,
            Err(refusal) => return refuse(tx, refusal).await,
        };
        if !removed {
            // Nothing taken back: the common checks tell a refusal from a no-op.
            if let Err(refusal) = target(&mut tx, actor, conversation, message).await? {
                return refuse(tx, refusal).await;
            }
            tx.rollback().await?;
            return Ok(false);
        }
        let count = emoji_count(&mut tx, message, emoji).await?;
        let kind = reaction_removed(message, actor.user_id, emoji, count);
        let event = conversation_event(conversation, seq, at, actor, kind);
        commit_with(&self.outbox, tx, &[event]).await?;
        Ok(true)
    }

    async fn reactions(
        &self,
        message: Uuid,
        emoji: Option<&str>,
        after: Option<&ReactionPosition>,
        limit: usize,
    ) -> Result<Vec<Reaction>, StoreError> {
        // Emojis compare bytewise (COLLATE "C"), as on SQLite, so pages agree across backends.
        let rows = sqlx::query(
            "SELECT message_id, user_id, emoji, created_at FROM reactions \
             WHERE message_id = $1 AND ($2::text IS NULL OR emoji = $2) \
               AND ($3::timestamptz IS NULL \
                    OR (created_at, user_id, emoji COLLATE \"C\") > ($3, $4, $5 COLLATE \"C\")) \
             ORDER BY created_at, user_id, emoji COLLATE \"C\" LIMIT $6",
        )
        .bind(message)
        .bind(emoji)
        .bind(after.map(|p| position_time(p.created_micros)).transpose()?)
        .bind(after.map(|p| p.user_id))
        .bind(after.map(|p| p.emoji.as_str()))
        .bind(sql_limit(limit))
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(reaction).collect::<Result<_, _>>()?)
    }

    async fn reaction_tallies(
        &self,
        reader: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<ReactionTally>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Uuid, String, i32, bool, DateTime<Utc>)> = sqlx::query_as(
            "SELECT message_id, emoji, count(*)::int4, bool_or(user_id = $1), min(created_at) \
             FROM reactions WHERE message_id = ANY($2) GROUP BY message_id, emoji",
        )
        .bind(reader)
        .bind(ids)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(message_id, emoji, count, reacted_by_reader, first_at)| ReactionTally {
                    message_id,
                    emoji,
                    count,
                    reacted_by_reader,
                    first_at,
                },
            )
            .collect())
    }

    async fn pin(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(Pin, bool), StoreError> {
        let (mut tx, seq, kind) = match locked(self, conversation).await? {
            Ok(locked) => locked,
            Err(tx) => return refuse(tx, StoreError::ConversationNotFound).await,
        };
        let target = match target(&mut tx, actor, conversation, message).await? {
            Ok(target) => target,
            Err(refusal) => return refuse(tx, refusal).await,
        };
        if let Err(refusal) = may_pin(kind, target.role) {
            return refuse(tx, refusal).await;
        }
        if target.deleted {
            return refuse(tx, StoreError::MessageDeleted).await;
        }
        let existing = sqlx::query(
            "SELECT message_id, conversation_id, pinned_by, pinned_at FROM pins \
             WHERE message_id = $1",
        )
        .bind(message)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = existing {
            tx.rollback().await?;
            return Ok((pin(&existing)?, false));
        }
        let pins: i64 = sqlx::query_scalar("SELECT count(*) FROM pins WHERE conversation_id = $1")
            .bind(conversation)
            .fetch_one(&mut *tx)
            .await?;
        if pins >= MAX_PINS {
            return refuse(tx, StoreError::LimitExceeded("pins")).await;
        }
        let row = sqlx::query(
            "INSERT INTO pins (message_id, conversation_id, pinned_by, pinned_at) \
             VALUES ($1, $2, $3, $4) \
             RETURNING message_id, conversation_id, pinned_by, pinned_at",
        )
        .bind(message)
        .bind(conversation)
        .bind(actor.user_id)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        let event = conversation_event(conversation, seq, at, actor, message_pinned(message));
        commit_with(&self.outbox, tx, &[event]).await?;
        Ok((pin(&row)?, true))
    }

    async fn unpin(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (mut tx, seq, kind) = match locked(self, conversation).await? {
            Ok(locked) => locked,
            Err(tx) => return refuse(tx, StoreError::ConversationNotFound).await,
        };
        let target = match target(&mut tx, actor, conversation, message).await? {
            Ok(target) => target,
            Err(refusal) => return refuse(tx, refusal).await,
        };
        if let Err(refusal) = may_pin(kind, target.role) {
            return refuse(tx, refusal).await;
        }
        let removed = sqlx::query("DELETE FROM pins WHERE message_id = $1")
            .bind(message)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let event = conversation_event(conversation, seq, at, actor, message_unpinned(message));
        commit_with(&self.outbox, tx, &[event]).await?;
        Ok(true)
    }

    async fn pins(
        &self,
        conversation: Uuid,
        above_seq: i64,
        after: Option<&PinPosition>,
        limit: usize,
    ) -> Result<Vec<Pin>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.message_id, p.conversation_id, p.pinned_by, p.pinned_at \
             FROM pins p JOIN messages m ON m.message_id = p.message_id \
             WHERE p.conversation_id = $1 AND m.seq > $2 \
               AND ($3::timestamptz IS NULL OR (p.pinned_at, p.message_id) < ($3, $4)) \
             ORDER BY p.pinned_at DESC, p.message_id DESC LIMIT $5",
        )
        .bind(conversation)
        .bind(above_seq)
        .bind(after.map(|p| position_time(p.pinned_micros)).transpose()?)
        .bind(after.map(|p| p.message_id))
        .bind(sql_limit(limit))
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(pin).collect::<Result<_, _>>()?)
    }

    async fn pinned_among(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(
            sqlx::query_scalar("SELECT message_id FROM pins WHERE message_id = ANY($1)")
                .bind(ids)
                .fetch_all(&self.db.pool)
                .await?,
        )
    }
}

/// A transaction holding `conversation`'s next seq (and so its row lock), with its kind; the
/// transaction alone, to be rolled back, when there is no such conversation.
async fn locked(
    store: &PostgresMessageStore,
    conversation: Uuid,
) -> Result<Result<(PgTx, i64, Kind), PgTx>, StoreError> {
    let mut tx = store.db.pool.begin().await?;
    order_writes(&mut tx, Some(conversation), &[]).await?;
    // Reactions and pins do not move the conversation up in lists (activity None).
    Ok(match take_seq(&mut tx, conversation, None).await? {
        Some((seq, kind)) => Ok((tx, seq, kind)),
        None => Err(tx),
    })
}

/// The common checks of every write (see [`ReactionStore`]), under the conversation's lock.
async fn target(
    conn: &mut PgConnection,
    actor: Actor,
    conversation: Uuid,
    message: Uuid,
) -> Result<Result<Target, StoreError>, sqlx::Error> {
    let member: Option<(i16, i64)> = sqlx::query_as(
        "SELECT role, joined_at_seq FROM members \
         WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL",
    )
    .bind(conversation)
    .bind(actor.user_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((role, joined_at_seq)) = member else {
        return Ok(Err(StoreError::ConversationNotFound));
    };
    let role = Role::from_code(role.into()).ok_or_else(|| corrupt("member role", role))?;
    let deleted: Option<bool> = sqlx::query_scalar(
        "SELECT deleted_at IS NOT NULL FROM messages \
         WHERE message_id = $1 AND conversation_id = $2 AND seq > $3 \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages \
                           WHERE user_id = $4 AND message_id = messages.message_id)",
    )
    .bind(message)
    .bind(conversation)
    .bind(joined_at_seq)
    .bind(actor.user_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match deleted {
        Some(deleted) => Ok(Target { role, deleted }),
        None => Err(StoreError::MessageNotFound),
    })
}

/// Deletes `actor`'s own reaction `emoji` to `message` of `conversation` (not deleted for the
/// actor alone), whatever the actor's join seq: one left from an earlier membership can always
/// be taken back. `ConversationNotFound` unless `actor` is a current member; whether a row went.
async fn take_back(
    conn: &mut PgConnection,
    actor: Actor,
    conversation: Uuid,
    message: Uuid,
    emoji: &str,
) -> Result<Result<bool, StoreError>, sqlx::Error> {
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM members \
                        WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL)",
    )
    .bind(conversation)
    .bind(actor.user_id)
    .fetch_one(&mut *conn)
    .await?;
    if !member {
        return Ok(Err(StoreError::ConversationNotFound));
    }
    let removed = sqlx::query(
        "DELETE FROM reactions r WHERE r.message_id = $1 AND r.user_id = $2 AND r.emoji = $3 \
           AND EXISTS (SELECT 1 FROM messages m \
                       WHERE m.message_id = $1 AND m.conversation_id = $4) \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = $2 AND h.message_id = $1)",
    )
    .bind(message)
    .bind(actor.user_id)
    .bind(emoji)
    .bind(conversation)
    .execute(conn)
    .await?;
    Ok(Ok(removed.rows_affected() > 0))
}

/// Whether a block stands between the two users of the DIRECT `conversation`.
async fn blocked_direct(
    conn: &mut PgConnection,
    actor: Actor,
    conversation: Uuid,
) -> Result<bool, sqlx::Error> {
    let key: Option<String> =
        sqlx::query_scalar("SELECT direct_key FROM conversations WHERE conversation_id = $1")
            .bind(conversation)
            .fetch_one(&mut *conn)
            .await?;
    let key = key.ok_or_else(|| corrupt("direct key", "missing"))?;
    let (low, high) = parse_direct_key(&key)?;
    let peer = if low == actor.user_id { high } else { low };
    blocked_either(conn, actor.user_id, peer).await
}

/// How many users react to `message` with `emoji`.
async fn emoji_count(
    conn: &mut PgConnection,
    message: Uuid,
    emoji: &str,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*)::int4 FROM reactions WHERE message_id = $1 AND emoji = $2")
        .bind(message)
        .bind(emoji)
        .fetch_one(conn)
        .await
}

/// The time of a page position.
fn position_time(micros: i64) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt("page position", micros))
}

fn reaction(row: &PgRow) -> Result<Reaction, sqlx::Error> {
    Ok(Reaction {
        message_id: row.try_get("message_id")?,
        user_id: row.try_get("user_id")?,
        emoji: row.try_get("emoji")?,
        created_at: row.try_get("created_at")?,
    })
}

fn pin(row: &PgRow) -> Result<Pin, sqlx::Error> {
    Ok(Pin {
        message_id: row.try_get("message_id")?,
        conversation_id: row.try_get("conversation_id")?,
        pinned_by: row.try_get("pinned_by")?,
        pinned_at: row.try_get("pinned_at")?,
    })
}
