//! [`ReactionStore`] on SQLite: every write runs on the single writer in a `BEGIN IMMEDIATE`
//! transaction, so its checks, its row and its count cannot interleave with another write;
//! the seq is taken only once the write is certain (a refusal or a no-op takes none).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::{
    SqliteMessageStore, WriteTx, begin, blocked_either_way, commit_with, conversation_by_id,
    decode_error, json_ids, micros, next_seq, refuse, sql_limit, time, uuid,
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

/// What the common checks found.
struct Target {
    kind: Kind,
    direct_pair: Option<(Uuid, Uuid)>,
    role: Role,
    deleted: bool,
}

#[async_trait]
impl ReactionStore for SqliteMessageStore {
    async fn add_reaction(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(&self.db.writer).await?;
        let target = match target(&mut tx, actor, conversation, message).await? {
            Ok(target) => target,
            Err(refusal) => return refuse(tx, refusal).await,
        };
        if target.deleted {
            return refuse(tx, StoreError::MessageDeleted).await;
        }
        if let Some((a, b)) = target.direct_pair
            && blocked_either_way(&mut tx, a, b).await?
        {
            return refuse(tx, StoreError::Blocked(None)).await;
        }
        let (present, mine): (bool, i64) = sqlx::query_as(
            "SELECT coalesce(max(emoji = $3), 0), count(*) FROM reactions \
             WHERE message_id = $1 AND user_id = $2",
        )
        .bind(message.to_string())
        .bind(actor.user_id.to_string())
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
        .bind(message.to_string())
        .bind(actor.user_id.to_string())
        .bind(emoji)
        .bind(conversation.to_string())
        .bind(micros(at))
        .execute(&mut *tx)
        .await?;
        let count = emoji_count(&mut tx, message, emoji).await?;
        let seq = next_seq(&mut tx, conversation, None).await?;
        let kind = reaction_added(message, actor.user_id, emoji, count);
        commit_with(
            &self.outbox,
            tx,
            &[conversation_event(conversation, seq, at, actor, kind)],
        )
        .await?;
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
        let mut tx = begin(&self.db.writer).await?;
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
        let seq = next_seq(&mut tx, conversation, None).await?;
        let kind = reaction_removed(message, actor.user_id, emoji, count);
        commit_with(
            &self.outbox,
            tx,
            &[conversation_event(conversation, seq, at, actor, kind)],
        )
        .await?;
        Ok(true)
    }

    async fn reactions(
        &self,
        message: Uuid,
        emoji: Option<&str>,
        after: Option<&ReactionPosition>,
        limit: usize,
    ) -> Result<Vec<Reaction>, StoreError> {
        let rows = sqlx::query(
            "SELECT message_id, user_id, emoji, created_at FROM reactions \
             WHERE message_id = $1 AND ($2 IS NULL OR emoji = $2) \
               AND ($3 IS NULL OR (created_at, user_id, emoji) > ($3, $4, $5)) \
             ORDER BY created_at, user_id, emoji LIMIT $6",
        )
        .bind(message.to_string())
        .bind(emoji)
        .bind(after.map(|p| p.created_micros))
        .bind(after.map(|p| p.user_id.to_string()))
        .bind(after.map(|p| p.emoji.as_str()))
        .bind(sql_limit(limit))
        .fetch_all(&self.db.reader)
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
        let rows = sqlx::query(
            "SELECT message_id, emoji, count(*) AS count, max(user_id = $1) AS mine, \
               min(created_at) AS first_at \
             FROM reactions WHERE message_id IN (SELECT value FROM json_each($2)) \
             GROUP BY message_id, emoji",
        )
        .bind(reader.to_string())
        .bind(json_ids(ids))
        .fetch_all(&self.db.reader)
        .await?;
        let tally = |row: &SqliteRow| -> Result<ReactionTally, sqlx::Error> {
            let count: i64 = row.try_get("count")?;
            Ok(ReactionTally {
                message_id: uuid(row, "message_id")?,
                emoji: row.try_get("emoji")?,
                count: i32::try_from(count).map_err(|e| decode_error(format!("count: {e}")))?,
                reacted_by_reader: row.try_get("mine")?,
                first_at: time(row, "first_at")?,
            })
        };
        Ok(rows.iter().map(tally).collect::<Result<_, _>>()?)
    }

    async fn pin(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(Pin, bool), StoreError> {
        let mut tx = begin(&self.db.writer).await?;
        let target = match target(&mut tx, actor, conversation, message).await? {
            Ok(target) => target,
            Err(refusal) => return refuse(tx, refusal).await,
        };
        if let Err(refusal) = may_pin(target.kind, target.role) {
            return refuse(tx, refusal).await;
        }
        if target.deleted {
            return refuse(tx, StoreError::MessageDeleted).await;
        }
        let existing = sqlx::query(
            "SELECT message_id, conversation_id, pinned_by, pinned_at FROM pins \
             WHERE message_id = $1",
        )
        .bind(message.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = existing {
            tx.rollback().await?;
            return Ok((pin(&existing)?, false));
        }
        let pins: i64 = sqlx::query_scalar("SELECT count(*) FROM pins WHERE conversation_id = $1")
            .bind(conversation.to_string())
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
        .bind(message.to_string())
        .bind(conversation.to_string())
        .bind(actor.user_id.to_string())
        .bind(micros(at))
        .fetch_one(&mut *tx)
        .await?;
        let pinned = pin(&row)?;
        let seq = next_seq(&mut tx, conversation, None).await?;
        let event = conversation_event(conversation, seq, at, actor, message_pinned(message));
        commit_with(&self.outbox, tx, &[event]).await?;
        Ok((pinned, true))
    }

    async fn unpin(
        &self,
        actor: Actor,
        conversation: Uuid,
        message: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(&self.db.writer).await?;
        let target = match target(&mut tx, actor, conversation, message).await? {
            Ok(target) => target,
            Err(refusal) => return refuse(tx, refusal).await,
        };
        if let Err(refusal) = may_pin(target.kind, target.role) {
            return refuse(tx, refusal).await;
        }
        let removed = sqlx::query("DELETE FROM pins WHERE message_id = $1")
            .bind(message.to_string())
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let seq = next_seq(&mut tx, conversation, None).await?;
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
               AND ($3 IS NULL OR (p.pinned_at, p.message_id) < ($3, $4)) \
             ORDER BY p.pinned_at DESC, p.message_id DESC LIMIT $5",
        )
        .bind(conversation.to_string())
        .bind(above_seq)
        .bind(after.map(|p| p.pinned_micros))
        .bind(after.map(|p| p.message_id.to_string()))
        .bind(sql_limit(limit))
        .fetch_all(&self.db.reader)
        .await?;
        Ok(rows.iter().map(pin).collect::<Result<_, _>>()?)
    }

    async fn pinned_among(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT message_id FROM pins WHERE message_id IN (SELECT value FROM json_each($1))",
        )
        .bind(json_ids(ids))
        .fetch_all(&self.db.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|row| uuid(row, "message_id"))
            .collect::<Result<_, _>>()?)
    }
}

/// The common checks of every write (see [`ReactionStore`]), inside the write transaction.
async fn target(
    tx: &mut WriteTx,
    actor: Actor,
    conversation: Uuid,
    message: Uuid,
) -> Result<Result<Target, StoreError>, sqlx::Error> {
    let member: Option<(i64, i64)> = sqlx::query_as(
        "SELECT role, joined_at_seq FROM members \
         WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL",
    )
    .bind(conversation.to_string())
    .bind(actor.user_id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some((role, joined_at_seq)) = member else {
        return Ok(Err(StoreError::ConversationNotFound));
    };
    let Some(found) = conversation_by_id(&mut **tx, conversation).await? else {
        return Ok(Err(StoreError::ConversationNotFound));
    };
    let role =
        Role::from_code(role).ok_or_else(|| decode_error(format!("role: unknown role {role}")))?;
    let deleted: Option<bool> = sqlx::query_scalar(
        "SELECT deleted_at IS NOT NULL FROM messages \
         WHERE message_id = $1 AND conversation_id = $2 AND seq > $3 \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages \
                           WHERE user_id = $4 AND message_id = messages.message_id)",
    )
    .bind(message.to_string())
    .bind(conversation.to_string())
    .bind(joined_at_seq)
    .bind(actor.user_id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match deleted {
        Some(deleted) => Ok(Target {
            kind: found.kind,
            direct_pair: found.direct_pair,
            role,
            deleted,
        }),
        None => Err(StoreError::MessageNotFound),
    })
}

/// Deletes `actor`'s own reaction `emoji` to `message` of `conversation` (not deleted for the
/// actor alone), whatever the actor's join seq: one left from an earlier membership can always
/// be taken back. `ConversationNotFound` unless `actor` is a current member; whether a row went.
async fn take_back(
    conn: &mut SqliteConnection,
    actor: Actor,
    conversation: Uuid,
    message: Uuid,
    emoji: &str,
) -> Result<Result<bool, StoreError>, sqlx::Error> {
    let (conversation, user, message) = (
        conversation.to_string(),
        actor.user_id.to_string(),
        message.to_string(),
    );
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM members \
                        WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL)",
    )
    .bind(&conversation)
    .bind(&user)
    .fetch_one(&mut *conn)
    .await?;
    if !member {
        return Ok(Err(StoreError::ConversationNotFound));
    }
    let removed = sqlx::query(
        "DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3 \
           AND EXISTS (SELECT 1 FROM messages m \
                       WHERE m.message_id = $1 AND m.conversation_id = $4) \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = $2 AND h.message_id = $1)",
    )
    .bind(&message)
    .bind(&user)
    .bind(emoji)
    .bind(&conversation)
    .execute(conn)
    .await?;
    Ok(Ok(removed.rows_affected() > 0))
}

/// How many users react to `message` with `emoji`.
async fn emoji_count(
    conn: &mut SqliteConnection,
    message: Uuid,
    emoji: &str,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM reactions WHERE message_id = $1 AND emoji = $2")
        .bind(message.to_string())
        .bind(emoji)
        .fetch_one(conn)
        .await
}

fn reaction(row: &SqliteRow) -> Result<Reaction, sqlx::Error> {
    Ok(Reaction {
        message_id: uuid(row, "message_id")?,
        user_id: uuid(row, "user_id")?,
        emoji: row.try_get("emoji")?,
        created_at: time(row, "created_at")?,
    })
}

fn pin(row: &SqliteRow) -> Result<Pin, sqlx::Error> {
    Ok(Pin {
        message_id: uuid(row, "message_id")?,
        conversation_id: uuid(row, "conversation_id")?,
        pinned_by: uuid(row, "pinned_by")?,
        pinned_at: time(row, "pinned_at")?,
    })
}
