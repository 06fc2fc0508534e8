//! Deletion for one user and for everyone ([`MessageStore::delete_for_me`],
//! [`MessageStore::delete_for_everyone`]), one script each for both backends, with the counters
//! they correct and, for everyone, the erasure of the content everywhere the store holds it.
//!
//! [`MessageStore::delete_for_me`]: crate::store::MessageStore::delete_for_me
//! [`MessageStore::delete_for_everyone`]: crate::store::MessageStore::delete_for_everyone

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId};
use echo_store::{Tx, placeholders, with_tx};

use super::{MessageStore, Target, target};
use crate::error::MessageError;
use crate::events::{conversation_event, user_event};
use crate::messages::events::{message_deleted, message_deleted_for_me};
use crate::store::codec::{At, Id, commit_with, next_user_seq, order_writes, refuse, take_seq};
use crate::store::{Actor, Message};

/// See [`crate::store::MessageStore::delete_for_me`].
pub(super) async fn delete_for_me(
    db: &MessageStore,
    actor: Actor,
    conversation: ConversationId,
    id: MessageId,
    at: DateTime<Utc>,
) -> Result<bool, MessageError> {
    let mut tx = db.db.begin().await?;
    // Before the row lock below (which assigns the xid): only the actor's user seq is taken.
    order_writes(&mut tx, &[], &[actor.user_id]).await?;
    if !lock_conversation(&mut tx, conversation).await? {
        return refuse(tx, MessageError::ConversationNotFound).await;
    }
    let target = match target(&mut tx, actor.user_id, conversation, id).await {
        Ok(target) => target,
        Err(refusal) => return refuse(tx, refusal).await,
    };
    if target.hidden {
        tx.rollback().await?;
        return Ok(false);
    }
    let message = &target.message;
    with_tx!(&mut tx, |c| {
        sqlx::query(
            "INSERT INTO hidden_messages (user_id, message_id, conversation_id, seq, hidden_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Id(actor.user_id.into()))
        .bind(Id(message.id.into()))
        .bind(Id(conversation.into()))
        .bind(message.seq)
        .bind(At(at))
        .execute(c)
        .await?;
    });
    let counted = message.deleted_at.is_none() && message.sender_id != actor.user_id;
    let mentioned: bool = with_tx!(&mut tx, |c| {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM mentions WHERE message_id = $1 AND user_id = $2)",
        )
        .bind(Id(message.id.into()))
        .bind(Id(actor.user_id.into()))
        .fetch_one(c)
        .await
    })?;
    // The watermark is compared in the UPDATE itself, on the row it writes. Counters are never
    // negative, so "- 1 unless 0" is the old GREATEST(n - 1, 0) / max(n - 1, 0) in both.
    let (unread, mentions): (i32, i32) = with_tx!(&mut tx, |c| {
        sqlx::query_as(
            "UPDATE members SET \
               unread_count = unread_count - \
                 CASE WHEN $3 AND $4 > last_read_seq AND unread_count > 0 THEN 1 ELSE 0 END, \
               mention_count = mention_count - \
                 CASE WHEN $3 AND $5 AND $4 > last_read_seq AND mention_count > 0 \
                      THEN 1 ELSE 0 END \
             WHERE conversation_id = $1 AND user_id = $2 RETURNING unread_count, mention_count",
        )
        .bind(Id(conversation.into()))
        .bind(Id(actor.user_id.into()))
        .bind(counted)
        .bind(message.seq)
        .bind(mentioned)
        .fetch_one(c)
        .await
    })?;
    let user_seq = next_user_seq(&mut tx, actor.user_id).await?;
    let kind = message_deleted_for_me(conversation, message.id, unread, mentions);
    let event = user_event(actor.user_id, user_seq, at, Some(actor.device_id), kind);
    commit_with(&db.outbox, tx, &[event]).await?;
    Ok(true)
}

/// Takes the row lock a sequenced change takes on `conversation`, without a seq, so a send or
/// a deletion for everyone counting this member waits and the message is counted exactly once
/// either way; false when there is no such conversation.
///
/// Dialect: PostgreSQL locks the row `FOR NO KEY UPDATE`, the lock `take_seq`'s UPDATE takes
/// (a stronger `FOR UPDATE` would also hold off inserts referencing the conversation). SQLite
/// has no row locks and needs none: the transaction holds the single writer.
async fn lock_conversation(
    tx: &mut Tx,
    conversation: ConversationId,
) -> Result<bool, MessageError> {
    let select = "SELECT kind FROM conversations WHERE conversation_id = $1";
    let sql = match tx {
        Tx::Postgres(_) => format!("{select} FOR NO KEY UPDATE"),
        Tx::Sqlite(_) => select.to_owned(),
    };
    let kind: Option<i16> = with_tx!(tx, |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(Id(conversation.into()))
            .fetch_optional(c)
            .await
    })?;
    Ok(kind.is_some())
}

/// See [`crate::store::MessageStore::delete_for_everyone`].
pub(super) async fn delete_for_everyone(
    db: &MessageStore,
    actor: Actor,
    conversation: ConversationId,
    id: MessageId,
    at: DateTime<Utc>,
) -> Result<bool, MessageError> {
    let mut tx = db.db.begin().await?;
    order_writes(&mut tx, &[conversation], &[]).await?;
    // A deletion does not move the conversation up in lists (activity None).
    let Some((seq, kind)) = take_seq(&mut tx, conversation, None).await? else {
        return refuse(tx, MessageError::ConversationNotFound).await;
    };
    let Target {
        member, message, ..
    } = match target(&mut tx, actor.user_id, conversation, id).await {
        Ok(target) => target,
        Err(refusal) => return refuse(tx, refusal).await,
    };
    if let Err(refusal) = message.check_deletable(actor.user_id, kind, member.role) {
        return refuse(tx, refusal).await;
    }
    if message.deleted_at.is_some() {
        tx.rollback().await?;
        return Ok(false);
    }
    erase(&mut tx, conversation, std::slice::from_ref(&message), at).await?;
    let kind = message_deleted(message.id, message.thread_root_message_id);
    let event = conversation_event(conversation, seq, at, actor, kind);
    commit_with(&db.outbox, tx, &[event]).await?;
    Ok(true)
}

/// Erases `messages` (all of `conversation`, none deleted yet) exactly as a deletion for
/// everyone does, inside `tx`, which holds the conversation's lock (its seq was taken): for
/// every member for whom one was unread, the counters drop; their mentions, reactions, pins
/// and edit history go; content, search text and request hash are emptied (`deleted_at` = `at`,
/// the tombstone stays); thread roots count one reply less; the conversation's last message
/// moves to the newest one left. Shared with expiry and retention
/// (`crate::messages::store_expiry`), whose batches erase many messages of a conversation at
/// once: the per-message counter and reply updates run once per message, the rest once per
/// batch over an id list (at most 1,000 ids).
pub(in crate::messages) async fn erase(
    tx: &mut Tx,
    conversation: ConversationId,
    messages: &[Message],
    at: DateTime<Utc>,
) -> Result<(), MessageError> {
    if messages.is_empty() {
        return Ok(());
    }
    for message in messages {
        // Every member for whom it was unread (see crate::messages::edits) stops counting it,
        // and its mention. Counters are never negative: "- 1 unless 0" is GREATEST(n - 1, 0).
        with_tx!(&mut *tx, |c| {
            sqlx::query(
                "UPDATE members SET \
                   unread_count = unread_count - CASE WHEN unread_count > 0 THEN 1 ELSE 0 END, \
                   mention_count = mention_count - CASE WHEN mention_count > 0 AND EXISTS \
                     (SELECT 1 FROM mentions x \
                      WHERE x.message_id = $2 AND x.user_id = members.user_id) \
                     THEN 1 ELSE 0 END \
                 WHERE conversation_id = $1 AND left_at_seq IS NULL AND user_id <> $3 \
                   AND $4 > last_read_seq AND $4 > joined_at_seq \
                   AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                                   WHERE h.user_id = members.user_id AND h.message_id = $2)",
            )
            .bind(Id(conversation.into()))
            .bind(Id(message.id.into()))
            .bind(Id(message.sender_id.into()))
            .bind(message.seq)
            .execute(c)
            .await?;
        });
    }
    let ids = placeholders(1, messages.len());
    for table in ["mentions", "reactions", "pins", "message_edits"] {
        let sql = format!("DELETE FROM {table} WHERE message_id IN ({ids})");
        with_tx!(&mut *tx, sql, |c| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for message in messages {
                query = query.bind(Id(message.id.into()));
            }
            query.execute(c).await?;
        });
    }
    // body NULL empties the search index too: PostgreSQL's generated tsvector follows it, and
    // SQLite's FTS5 table forgets the old text in its UPDATE OF body trigger (secure-delete).
    // The request hash becomes zero bytes (an unsalted hash of the content is a trace of it).
    let first = messages.len() + 1;
    let sql = format!(
        "UPDATE messages SET content = NULL, body = NULL, deleted_at = ${first}, \
           request_hash = ${} \
         WHERE message_id IN ({ids})",
        first + 1
    );
    with_tx!(&mut *tx, sql, |c| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for message in messages {
            query = query.bind(Id(message.id.into()));
        }
        query.bind(At(at)).bind(Vec::<u8>::new()).execute(c).await?;
    });
    for root in messages.iter().filter_map(|m| m.thread_root_message_id) {
        with_tx!(&mut *tx, |c| {
            sqlx::query(
                "UPDATE messages SET \
                   reply_count = reply_count - CASE WHEN reply_count > 0 THEN 1 ELSE 0 END \
                 WHERE message_id = $1",
            )
            .bind(Id(root.into()))
            .execute(c)
            .await?;
        });
    }
    let sql = format!(
        "UPDATE conversations SET last_message_id = \
           (SELECT message_id FROM messages \
            WHERE conversation_id = $1 AND deleted_at IS NULL ORDER BY seq DESC LIMIT 1) \
         WHERE conversation_id = $1 AND last_message_id IN ({})",
        placeholders(2, messages.len())
    );
    with_tx!(&mut *tx, sql, |c| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Id(conversation.into()));
        for message in messages {
            query = query.bind(Id(message.id.into()));
        }
        query.execute(c).await?;
    });
    Ok(())
}
