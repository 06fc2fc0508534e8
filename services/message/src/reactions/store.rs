//! [`MessageStore`], one script per operation for both backends (STYLE 15): reactions and
//! their reads here, pins in [`pins`], the steps every write shares ([`locked`], [`target`]).
//!
//! Every write takes the conversation's seq first (on PostgreSQL its row lock serialises the
//! conversation's changes, deletion for everyone included; on SQLite the transaction holds the
//! single writer), checks under it, and gives the number back by rolling back on a refusal or
//! a no-op.
//!
//! One piece past 400 lines: the reaction scripts and the steps they share with the pin
//! scripts (`locked`, `target`, `position_time`) are one transaction discipline, read together.

#[path = "store_pins.rs"]
mod pins;

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_proto::echo::message::v1::conversation_event::Kind as EventKind;
use echo_store::{Database, Tx, placeholders, sql_limit, with_db, with_tx};
use sqlx::AssertSqlSafe;

use super::events::{reaction_added, reaction_removed};
use super::{MAX_EMOJIS_PER_USER, Pin, PinPosition, Reaction, ReactionPosition, ReactionTally};
use crate::error::MessageError;
use crate::events::conversation_event;
use crate::store::codec::{
    At, Id, blocked_either, commit_with, conversation_in, corrupt, current_member, order_writes,
    refuse, take_seq,
};
use crate::store::{Actor, Kind, MessageStore, Role};

impl MessageStore {
    /// Adds `actor`'s reaction `emoji` (validated) to `message`. After the common checks:
    /// `MessageDeleted` when it was deleted for everyone; `Blocked` in a DIRECT conversation
    /// with a block either way; the reaction already there: Ok(false), nothing written, no
    /// seq; `LimitExceeded("reactions")` when the actor already has
    /// [`crate::reactions::MAX_EMOJIS_PER_USER`] emojis on it; otherwise the row, the next seq (activity
    /// unchanged) and one ReactionAdded with the emoji's count after it: Ok(true).
    pub async fn add_reaction(
        &self,
        actor: Actor,
        conversation: ConversationId,
        message: MessageId,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, MessageError> {
        let (mut tx, seq, kind) = locked(self, conversation).await?;
        let target = match target(&mut tx, actor, conversation, message).await? {
            Ok(target) => target,
            Err(refusal) => return refuse(tx, refusal).await,
        };
        if target.deleted {
            return refuse(tx, MessageError::MessageDeleted).await;
        }
        if kind == Kind::Direct && blocked_direct(&mut tx, actor, conversation).await? {
            return refuse(tx, MessageError::Blocked(None)).await;
        }
        let (present, mine): (bool, i64) = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT count(CASE WHEN emoji = $3 THEN 1 END) > 0, count(*) FROM reactions \
                 WHERE message_id = $1 AND user_id = $2",
            )
            .bind(Id(message.into()))
            .bind(Id(actor.user_id.into()))
            .bind(emoji)
            .fetch_one(c)
            .await
        })?;
        if present {
            tx.rollback().await?;
            return Ok(false);
        }
        if mine >= MAX_EMOJIS_PER_USER {
            return refuse(tx, MessageError::LimitExceeded("reactions")).await;
        }
        with_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO reactions (message_id, user_id, emoji, conversation_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(Id(message.into()))
            .bind(Id(actor.user_id.into()))
            .bind(emoji)
            .bind(Id(conversation.into()))
            .bind(At(at))
            .execute(c)
            .await?;
        });
        let write = (actor, conversation, seq, at);
        commit_counted(self, tx, write, message, emoji, reaction_added).await
    }

    /// Takes back `actor`'s reaction `emoji` on `message`: `ConversationNotFound` unless
    /// `actor` is a current member; the actor's own reaction on a message of the conversation
    /// not deleted for them alone is taken back whatever their join seq (one left from an
    /// earlier membership, on a message from before the current join, is not stuck); no block
    /// check: taking back is always allowed. Then the row goes, the next seq and one
    /// ReactionRemoved with the count after it (0 when it was the last): Ok(true). No such
    /// reaction: the common checks refuse (`MessageNotFound` for a message the actor cannot
    /// see), or Ok(false), no seq (a message deleted for everyone has none).
    pub async fn remove_reaction(
        &self,
        actor: Actor,
        conversation: ConversationId,
        message: MessageId,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, MessageError> {
        let (mut tx, seq, _) = locked(self, conversation).await?;
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
        let write = (actor, conversation, seq, at);
        commit_counted(self, tx, write, message, emoji, reaction_removed).await
    }

    /// The reactions to `message`, oldest first by (created_at, user_id, emoji), only
    /// `emoji` when given, after `after`; at most `limit`. Who may read them is decided
    /// above.
    pub async fn reactions(
        &self,
        message: MessageId,
        emoji: Option<&str>,
        after: Option<&ReactionPosition>,
        limit: usize,
    ) -> Result<Vec<Reaction>, MessageError> {
        // Dialect: emojis compare bytewise on both backends, so pages agree across them. That
        // is SQLite's default (BINARY) collation, which has no collation named "C"; PostgreSQL
        // needs COLLATE "C" (its default collation is the database locale's).
        let bytewise = match &self.db {
            Database::Postgres(_) => " COLLATE \"C\"",
            Database::Sqlite(_) => "",
        };
        let sql = format!(
            "SELECT message_id, user_id, emoji, created_at FROM reactions \
             WHERE message_id = $1 AND ($2 IS NULL OR emoji = $2) \
               AND ($3 IS NULL \
                    OR (created_at, user_id, emoji{bytewise}) > ($3, $4, $5{bytewise})) \
             ORDER BY created_at, user_id, emoji{bytewise} LIMIT $6"
        );
        let after = after
            .map(|p| Ok::<_, sqlx::Error>((position_time(p.created_micros)?, p)))
            .transpose()?;
        let rows: Vec<ReactionRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(Id(message.into()))
                .bind(emoji)
                .bind(after.map(|(at, _)| at))
                .bind(after.map(|(_, p)| Id(p.user_id.into())))
                .bind(after.map(|(_, p)| p.emoji.as_str()))
                .bind(sql_limit(limit))
                .fetch_all(c)
                .await
        })?;
        Ok(rows.into_iter().map(Reaction::from).collect())
    }

    /// The tallies of the messages `ids` as `reader` sees them, in any order.
    pub async fn reaction_tallies(
        &self,
        reader: UserId,
        ids: &[MessageId],
    ) -> Result<Vec<ReactionTally>, MessageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT message_id, emoji, CAST(count(*) AS INTEGER), \
               count(CASE WHEN user_id = $1 THEN 1 END) > 0, min(created_at) \
             FROM reactions WHERE message_id IN ({}) GROUP BY message_id, emoji",
            placeholders(2, ids.len())
        );
        let rows: Vec<(Id, String, i32, bool, At)> = with_db!(&self.db, read, sql, |c| {
            let mut query = sqlx::query_as(AssertSqlSafe(sql)).bind(Id(reader.into()));
            for id in ids {
                query = query.bind(Id((*id).into()));
            }
            query.fetch_all(c).await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(message_id, emoji, count, reacted_by_reader, first_at)| ReactionTally {
                    message_id: message_id.0.into(),
                    emoji,
                    count,
                    reacted_by_reader,
                    first_at: first_at.0,
                },
            )
            .collect())
    }

    /// Pins `message` in `conversation`. After the common checks: `NotAllowed` for a MEMBER
    /// of a GROUP or CHANNEL (any member of a DIRECT may pin); `MessageDeleted` when it was
    /// deleted for everyone; already pinned: the existing pin and false, nothing written, no
    /// seq; `LimitExceeded("pins")` when the conversation has [`crate::reactions::MAX_PINS`] pins; otherwise
    /// the pin, the next seq (activity unchanged) and one MessagePinned: the new pin and true.
    pub async fn pin(
        &self,
        actor: Actor,
        conversation: ConversationId,
        message: MessageId,
        at: DateTime<Utc>,
    ) -> Result<(Pin, bool), MessageError> {
        pins::pin(self, actor, conversation, message, at).await
    }

    /// Unpins `message`. The same checks as [`MessageStore::pin`] but for deletion (a
    /// message deleted for everyone lost its pin): not pinned: Ok(false), no seq; otherwise
    /// the pin goes, the next seq and one MessageUnpinned: Ok(true).
    pub async fn unpin(
        &self,
        actor: Actor,
        conversation: ConversationId,
        message: MessageId,
        at: DateTime<Utc>,
    ) -> Result<bool, MessageError> {
        pins::unpin(self, actor, conversation, message, at).await
    }

    /// The pins of `conversation` whose messages have a seq above `above_seq` (what a member
    /// who joined then may see), newest pin first by (pinned_at, message_id) descending,
    /// after `after`; at most `limit`.
    pub async fn pins(
        &self,
        conversation: ConversationId,
        above_seq: i64,
        after: Option<&PinPosition>,
        limit: usize,
    ) -> Result<Vec<Pin>, MessageError> {
        pins::pins(self, conversation, above_seq, after, limit).await
    }

    /// Of `ids`, the messages currently pinned in their conversation.
    pub async fn pinned_among(&self, ids: &[MessageId]) -> Result<Vec<MessageId>, MessageError> {
        pins::pinned_among(self, ids).await
    }
}

/// A `reactions` row as listed.
#[derive(sqlx::FromRow)]
struct ReactionRow {
    message_id: Id,
    user_id: Id,
    emoji: String,
    created_at: At,
}

impl From<ReactionRow> for Reaction {
    fn from(row: ReactionRow) -> Self {
        Reaction {
            message_id: row.message_id.0.into(),
            user_id: row.user_id.0.into(),
            emoji: row.emoji,
            created_at: row.created_at.0,
        }
    }
}

/// What the common checks found: the actor's role and whether the message was deleted for
/// everyone.
struct Target {
    role: Role,
    deleted: bool,
}

/// A write transaction holding conversation `id`'s next seq (on PostgreSQL, its row lock), with
/// the seq and the conversation's kind; `ConversationNotFound` (rolled back) when there is no
/// such conversation.
async fn locked(db: &MessageStore, id: ConversationId) -> Result<(Tx, i64, Kind), MessageError> {
    let mut tx = db.db.begin().await?;
    order_writes(&mut tx, &[id], &[]).await?;
    // Reactions and pins do not move the conversation up in lists (activity None).
    match take_seq(&mut tx, id, None).await? {
        Some((seq, kind)) => Ok((tx, seq, kind)),
        None => refuse(tx, MessageError::ConversationNotFound).await,
    }
}

/// The common checks of every write (see [`MessageStore`]), under the conversation's lock.
async fn target(
    tx: &mut Tx,
    actor: Actor,
    conversation: ConversationId,
    message: MessageId,
) -> Result<Result<Target, MessageError>, MessageError> {
    let Some(member) = current_member(tx, conversation, actor.user_id).await? else {
        return Ok(Err(MessageError::ConversationNotFound));
    };
    let deleted: Option<bool> = with_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT deleted_at IS NOT NULL FROM messages \
             WHERE message_id = $1 AND conversation_id = $2 AND seq > $3 \
               AND NOT EXISTS (SELECT 1 FROM hidden_messages \
                               WHERE user_id = $4 AND message_id = messages.message_id)",
        )
        .bind(Id(message.into()))
        .bind(Id(conversation.into()))
        .bind(member.joined_at_seq)
        .bind(Id(actor.user_id.into()))
        .fetch_optional(c)
        .await
    })?;
    Ok(match deleted {
        Some(deleted) => Ok(Target {
            role: member.role,
            deleted,
        }),
        None => Err(MessageError::MessageNotFound),
    })
}

/// Deletes `actor`'s own reaction `emoji` to `message` of `conversation` (not deleted for the
/// actor alone), whatever the actor's join seq: one left from an earlier membership can always
/// be taken back. `ConversationNotFound` unless `actor` is a current member; whether a row went.
async fn take_back(
    tx: &mut Tx,
    actor: Actor,
    conversation: ConversationId,
    message: MessageId,
    emoji: &str,
) -> Result<Result<bool, MessageError>, MessageError> {
    let member: bool = with_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM members \
                            WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL)",
        )
        .bind(Id(conversation.into()))
        .bind(Id(actor.user_id.into()))
        .fetch_one(c)
        .await
    })?;
    if !member {
        return Ok(Err(MessageError::ConversationNotFound));
    }
    let removed = with_tx!(tx, |c| {
        sqlx::query(
            "DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3 \
               AND EXISTS (SELECT 1 FROM messages m \
                           WHERE m.message_id = $1 AND m.conversation_id = $4) \
               AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                               WHERE h.user_id = $2 AND h.message_id = $1)",
        )
        .bind(Id(message.into()))
        .bind(Id(actor.user_id.into()))
        .bind(emoji)
        .bind(Id(conversation.into()))
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(Ok(removed > 0))
}

/// Whether a block stands between the two users of the DIRECT `conversation`.
async fn blocked_direct(
    tx: &mut Tx,
    actor: Actor,
    conversation: ConversationId,
) -> Result<bool, MessageError> {
    let pair = conversation_in(tx, conversation)
        .await?
        .and_then(|found| found.direct_pair)
        .ok_or_else(|| corrupt("direct key", "missing"))?;
    let (low, high) = pair;
    let peer = if low == actor.user_id { high } else { low };
    Ok(blocked_either(tx, actor.user_id, peer).await?)
}

/// How many users react to `message` with `emoji`.
/// Ends the reaction write `(actor, conversation, seq, at)`: counts `emoji` on `message`
/// after it and commits it with the event `announce` makes of that count (ReactionAdded and
/// ReactionRemoved carry it). True.
async fn commit_counted(
    store: &MessageStore,
    mut tx: Tx,
    (actor, conversation, seq, at): (Actor, ConversationId, i64, DateTime<Utc>),
    message: MessageId,
    emoji: &str,
    announce: fn(MessageId, UserId, &str, i32) -> EventKind,
) -> Result<bool, MessageError> {
    let count = emoji_count(&mut tx, message, emoji).await?;
    let kind = announce(message, actor.user_id, emoji, count);
    let event = conversation_event(conversation, seq, at, actor, kind);
    commit_with(&store.outbox, tx, &[event]).await?;
    Ok(true)
}

async fn emoji_count(tx: &mut Tx, message: MessageId, emoji: &str) -> Result<i32, MessageError> {
    Ok(with_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT CAST(count(*) AS INTEGER) FROM reactions \
             WHERE message_id = $1 AND emoji = $2",
        )
        .bind(Id(message.into()))
        .bind(emoji)
        .fetch_one(c)
        .await
    })?)
}

/// The time of a page position.
fn position_time(micros: i64) -> Result<At, sqlx::Error> {
    DateTime::from_timestamp_micros(micros)
        .map(At)
        .ok_or_else(|| corrupt("page position", micros))
}
