//! Messages: sending (idempotent, with its seq, counters and event) and windows of history.

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use prost::Message as _;
use sqlx::{Row, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::{
    begin, blocked_either_way, commit_with, conversation_by_id, decode_error, is_unique_violation,
    json_ids, member, message, micros, next_seq, sql_limit,
};
use crate::events;
use crate::store::live::may_post;
use crate::store::{
    Actor, BatchOutcome, Member, Message, NewMessage, SendRequest, Sent, SeqWindow, StoreError,
    Stored, counted_mentions, repeated,
};

/// See [`crate::store::MessageStore::send_batch`].
pub(super) async fn send_batch(
    writer: &SqlitePool,
    outbox: &Outbox,
    sends: &[SendRequest<'_>],
) -> BatchOutcome {
    let mut tx = begin(writer).await?;
    let mut outcomes = Vec::with_capacity(sends.len());
    let mut events = Vec::with_capacity(sends.len());
    if let [only] = sends {
        // Alone in its transaction: a refusal rolls the whole transaction back below.
        outcomes.push(
            send(&mut tx, only)
                .await
                .map(|s| s.record(only, &mut events)),
        );
    } else {
        // One writer, in-process: a savepoint per send costs little and keeps each refusal
        // to itself.
        for request in sends {
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            let outcome = send(&mut savepoint, request).await;
            if Stored::wrote(&outcome) {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
            outcomes.push(outcome.map(|s| s.record(request, &mut events)));
        }
    }
    if events.is_empty() {
        tx.rollback().await?;
    } else {
        commit_with(outbox, tx, &events).await?;
    }
    Ok(outcomes)
}

/// One send of a batch, inside the batch's transaction (which holds the write lock).
async fn send(
    conn: &mut SqliteConnection,
    request: &SendRequest<'_>,
) -> Result<Stored, StoreError> {
    let SendRequest { actor, new, at, .. } = *request;
    if let Some(outcome) = earlier(&mut *conn, actor, new).await? {
        return outcome.map(Stored::Repeated);
    }
    let sender = refusal(&mut *conn, actor, new).await??;
    let mentioned = counted(&mut *conn, &sender, new).await?;
    let seq = next_seq(&mut *conn, new.conversation_id, Some(at)).await?;
    let sent = match insert(&mut *conn, actor, new, seq, at).await {
        Ok(sent) => sent,
        // The single writer and `earlier` make this impossible; should an equal send have won
        // anyway, its message is the answer (this send's seq is rolled back).
        Err(error) if is_unique_violation(&error) => {
            let outcome = earlier(&mut *conn, actor, new).await?;
            return outcome.unwrap_or(Err(error.into())).map(Stored::Repeated);
        }
        Err(error) => return Err(error.into()),
    };
    count(&mut *conn, &sender, new, &mentioned, seq).await?;
    let event = events::conversation_event(
        new.conversation_id,
        seq,
        at,
        actor,
        events::message_created(&sent, &mentioned),
    );
    Ok(Stored::Created(sent, event))
}

/// See [`crate::store::MessageStore::messages`].
pub(super) async fn window(
    reader: &SqlitePool,
    conversation: Uuid,
    window: SeqWindow,
) -> Result<Vec<Message>, StoreError> {
    let sql = if window.newest_first {
        concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 AND seq > $2 AND seq < $3 \
              AND (NOT $4 OR thread_root_message_id IS NULL) ORDER BY seq DESC LIMIT $5"
        )
    } else {
        concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 AND seq > $2 AND seq < $3 \
              AND (NOT $4 OR thread_root_message_id IS NULL) ORDER BY seq LIMIT $5"
        )
    };
    let rows = sqlx::query(sql)
        .bind(conversation.to_string())
        .bind(window.after)
        .bind(window.before)
        .bind(window.top_level_only)
        .bind(sql_limit(window.limit))
        .fetch_all(reader)
        .await?;
    Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
}

/// The outcome for a key used before (see [`repeated`]); None for a new key.
async fn earlier(
    conn: &mut SqliteConnection,
    actor: Actor,
    new: &NewMessage,
) -> Result<Option<Result<Sent, StoreError>>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        message_columns!(),
        ", request_hash FROM messages WHERE sender_device_id = $1 AND client_message_id = $2"
    ))
    .bind(actor.device_id.to_string())
    .bind(&new.client_message_id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let hash: Vec<u8> = row.try_get("request_hash")?;
    Ok(Some(repeated(message(&row)?, &hash, new)))
}

/// Why `actor` may not send `new` now (as the contract orders the checks; mentions are never
/// refused), or their member row when they may.
async fn refusal(
    conn: &mut SqliteConnection,
    actor: Actor,
    new: &NewMessage,
) -> Result<Result<Member, StoreError>, sqlx::Error> {
    let conversation = new.conversation_id.to_string();
    let row = sqlx::query(concat!(
        "SELECT conversation_id, ",
        member_fields!(),
        " FROM members WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL"
    ))
    .bind(&conversation)
    .bind(actor.user_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(sender) = row.as_ref().map(member).transpose()? else {
        return Ok(Err(StoreError::ConversationNotFound));
    };
    let Some(found) = conversation_by_id(&mut *conn, new.conversation_id).await? else {
        return Ok(Err(StoreError::ConversationNotFound));
    };
    if let Err(refusal) = may_post(found.kind, sender.role) {
        return Ok(Err(refusal));
    }
    if let Some((a, b)) = found.direct_pair
        && blocked_either_way(conn, a, b).await?
    {
        return Ok(Err(StoreError::Blocked(None)));
    }
    let floor = sender.joined_at_seq;
    if let Some(reply_to) = new.reply_to_message_id
        && !visible(conn, new.conversation_id, reply_to, floor, false).await?
    {
        return Ok(Err(StoreError::MessageNotFound));
    }
    if let Some(root) = new.thread_root_message_id
        && !visible(conn, new.conversation_id, root, floor, true).await?
    {
        return Ok(Err(StoreError::MessageNotFound));
    }
    Ok(Ok(sender))
}

/// Whether `id` is a message of `conversation` from seq `floor` on; for a thread root also
/// top-level and not deleted for everyone (a reply may quote a tombstone; a thread cannot hang
/// off one).
async fn visible(
    conn: &mut SqliteConnection,
    conversation: Uuid,
    id: Uuid,
    floor: i64,
    as_root: bool,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE message_id = $1 AND conversation_id = $2 \
           AND seq >= $3 \
           AND (NOT $4 OR (thread_root_message_id IS NULL AND deleted_at IS NULL)))",
    )
    .bind(id.to_string())
    .bind(conversation.to_string())
    .bind(floor)
    .bind(as_root)
    .fetch_one(conn)
    .await
}

/// Stores `new` as message number `seq`.
async fn insert(
    conn: &mut SqliteConnection,
    actor: Actor,
    new: &NewMessage,
    seq: i64,
    at: DateTime<Utc>,
) -> Result<Message, sqlx::Error> {
    let row = sqlx::query(concat!(
        "INSERT INTO messages (message_id, conversation_id, seq, sender_id, sender_device_id, \
         client_message_id, request_hash, content, body, reply_to_message_id, \
         thread_root_message_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
        message_columns!()
    ))
    .bind(new.id.to_string())
    .bind(new.conversation_id.to_string())
    .bind(seq)
    .bind(actor.user_id.to_string())
    .bind(actor.device_id.to_string())
    .bind(&new.client_message_id)
    .bind(new.request_hash.as_slice())
    .bind(new.content.encode_to_vec())
    .bind(&new.content.text)
    .bind(new.reply_to_message_id.map(|id| id.to_string()))
    .bind(new.thread_root_message_id.map(|id| id.to_string()))
    .bind(micros(at))
    .fetch_one(conn)
    .await?;
    message(&row)
}

/// Of `new.mentioned`, those the message counts for: current members other than the sender
/// (a mention of anyone else stays in the content and counts for nobody).
async fn counted(
    conn: &mut SqliteConnection,
    sender: &Member,
    new: &NewMessage,
) -> Result<Vec<Uuid>, sqlx::Error> {
    if new.mentioned.is_empty() {
        return Ok(Vec::new());
    }
    let members: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM members WHERE conversation_id = $1 AND user_id <> $2 \
           AND left_at_seq IS NULL AND user_id IN (SELECT value FROM json_each($3))",
    )
    .bind(new.conversation_id.to_string())
    .bind(sender.user_id.to_string())
    .bind(json_ids(&new.mentioned))
    .fetch_all(conn)
    .await?;
    let members: Vec<Uuid> = members
        .iter()
        .map(|user| Uuid::parse_str(user).map_err(|e| decode_error(format!("member: {e}"))))
        .collect::<Result<_, _>>()?;
    Ok(counted_mentions(&new.mentioned, &members))
}

/// Everything a new message counts in: the conversation's latest message, its thread root's
/// replies, the other members' unread counters, and the `mentioned` members' mention counters
/// and mention rows. The sender's read state is left alone (their own messages are never
/// unread; their watermark moves by MarkRead only).
async fn count(
    conn: &mut SqliteConnection,
    sender: &Member,
    new: &NewMessage,
    mentioned: &[Uuid],
    seq: i64,
) -> Result<(), sqlx::Error> {
    let conversation = new.conversation_id.to_string();
    let user = sender.user_id.to_string();
    sqlx::query("UPDATE conversations SET last_message_id = $1 WHERE conversation_id = $2")
        .bind(new.id.to_string())
        .bind(&conversation)
        .execute(&mut *conn)
        .await?;
    if let Some(root) = new.thread_root_message_id {
        sqlx::query("UPDATE messages SET reply_count = reply_count + 1 WHERE message_id = $1")
            .bind(root.to_string())
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "UPDATE members SET unread_count = unread_count + 1, \
           mention_count = mention_count + (user_id IN (SELECT value FROM json_each($3))) \
         WHERE conversation_id = $1 AND user_id <> $2 AND left_at_seq IS NULL",
    )
    .bind(&conversation)
    .bind(&user)
    .bind(json_ids(mentioned))
    .execute(&mut *conn)
    .await?;
    if !mentioned.is_empty() {
        sqlx::query(
            "INSERT INTO mentions (message_id, user_id, conversation_id, seq) \
             SELECT $1, value, $2, $3 FROM json_each($4)",
        )
        .bind(new.id.to_string())
        .bind(&conversation)
        .bind(seq)
        .bind(json_ids(mentioned))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
