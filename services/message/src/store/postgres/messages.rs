//! Messages: idempotent sending under the conversation's lock (in batches: group commit),
//! and reads by seq.

use echo_bus::Outbox;
use prost::Message as _;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{
    blocked_either, commit_with, corrupt, message, order_batch_writes, parse_direct_key, sql_limit,
};
use crate::events::{conversation_event, message_created};
use crate::store::live::may_post;
use crate::store::{
    Actor, BatchOutcome, Kind, Message, NewMessage, Role, SendRequest, Sent, SeqWindow, StoreError,
    Stored, counted_mentions, repeated,
};

/// See [`crate::store::MessageStore::send_batch`].
pub(super) async fn send_batch(
    pool: &PgPool,
    outbox: &Outbox,
    sends: &[SendRequest<'_>],
) -> BatchOutcome {
    let mut tx = pool.begin().await?;
    let conversations: Vec<Uuid> = sends.iter().map(|s| s.new.conversation_id).collect();
    order_batch_writes(&mut tx, &conversations, &[]).await?;
    let mut outcomes = Vec::with_capacity(sends.len());
    let mut events = Vec::with_capacity(sends.len());
    if let [only] = sends {
        // Alone in its transaction: a refusal rolls the whole transaction back below.
        outcomes.push(send(&mut tx, only).await.map(|s| s.record(&mut events)));
    } else {
        for request in sends {
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            let outcome = send(&mut savepoint, request).await;
            if Stored::wrote(&outcome) {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
            outcomes.push(outcome.map(|s| s.record(&mut events)));
        }
    }
    if events.is_empty() {
        tx.rollback().await?;
    } else {
        commit_with(outbox, tx, &events).await?;
    }
    Ok(outcomes)
}

/// One send of a batch, inside the batch's transaction (which holds the write-order locks of
/// every conversation in the batch).
async fn send(conn: &mut PgConnection, request: &SendRequest<'_>) -> Result<Stored, StoreError> {
    let SendRequest { actor, new, at } = *request;
    // First, so that a retry succeeds whatever changed since (the sender left, a block).
    if let Some(stored) = by_idempotency_key(&mut *conn, actor, &new.client_message_id).await? {
        return repeat(stored, new).map(Stored::Repeated);
    }
    // The next seq, under the row lock held to the end: every sequenced change of this
    // conversation waits here, so what follows is checked against a state no one else can
    // change meanwhile. Any refusal rolls all of it back, the number included (no gap).
    let locked: Option<(i64, i16, Option<String>)> = sqlx::query_as(
        "UPDATE conversations \
         SET last_seq = last_seq + 1, last_activity_at = $2, last_message_id = $3 \
         WHERE conversation_id = $1 RETURNING last_seq, kind, direct_key",
    )
    .bind(new.conversation_id)
    .bind(at)
    .bind(new.id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((seq, kind, direct_key)) = locked else {
        return Err(StoreError::ConversationNotFound);
    };
    let mentioned = check(&mut *conn, actor, new, kind, direct_key.as_deref()).await?;
    let inserted = sqlx::query(concat!(
        "INSERT INTO messages (message_id, conversation_id, seq, sender_id, sender_device_id, \
         client_message_id, request_hash, content, body, reply_to_message_id, \
         thread_root_message_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT ON CONSTRAINT messages_idempotency DO NOTHING RETURNING ",
        message_columns!()
    ))
    .bind(new.id)
    .bind(new.conversation_id)
    .bind(seq)
    .bind(actor.user_id)
    .bind(actor.device_id)
    .bind(&new.client_message_id)
    .bind(&new.request_hash[..])
    .bind(new.content.encode_to_vec())
    .bind(&new.content.text)
    .bind(new.reply_to_message_id)
    .bind(new.thread_root_message_id)
    .bind(at)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(inserted) = inserted else {
        // The same key sent concurrently from another transaction (both missed it above): the
        // insert waited for it and found its row. This send's seq is rolled back with it.
        let stored = by_idempotency_key(&mut *conn, actor, &new.client_message_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        return repeat(stored, new).map(Stored::Repeated);
    };
    let sent = message(&inserted)?;
    if let Some(root) = new.thread_root_message_id {
        sqlx::query("UPDATE messages SET reply_count = reply_count + 1 WHERE message_id = $1")
            .bind(root)
            .execute(&mut *conn)
            .await?;
    }
    // Everyone else has one more unread (and one more mention when counted as mentioned);
    // the sender's read state stays as it is (their own messages are never unread).
    sqlx::query(
        "UPDATE members SET unread_count = unread_count + 1, \
           mention_count = mention_count + CASE WHEN user_id = ANY($3) THEN 1 ELSE 0 END \
         WHERE conversation_id = $1 AND user_id <> $2 AND left_at_seq IS NULL",
    )
    .bind(new.conversation_id)
    .bind(actor.user_id)
    .bind(&mentioned)
    .execute(&mut *conn)
    .await?;
    if !mentioned.is_empty() {
        sqlx::query(
            "INSERT INTO mentions (message_id, user_id, conversation_id, seq) \
             SELECT $1, mentioned, $2, $3 FROM unnest($4::uuid[]) AS mentioned",
        )
        .bind(new.id)
        .bind(new.conversation_id)
        .bind(seq)
        .bind(&mentioned)
        .execute(&mut *conn)
        .await?;
    }
    let event = conversation_event(
        new.conversation_id,
        seq,
        at,
        actor,
        message_created(&sent, &mentioned),
    );
    Ok(Stored::Created(sent, event))
}

/// See [`crate::store::MessageStore::messages`].
pub(super) async fn window(
    pool: &PgPool,
    conversation: Uuid,
    window: SeqWindow,
) -> Result<Vec<Message>, StoreError> {
    const OLDEST_FIRST: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE conversation_id = $1 AND seq > $2 AND seq < $3 \
           AND (NOT $4 OR thread_root_message_id IS NULL) \
         ORDER BY seq LIMIT $5"
    );
    const NEWEST_FIRST: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE conversation_id = $1 AND seq > $2 AND seq < $3 \
           AND (NOT $4 OR thread_root_message_id IS NULL) \
         ORDER BY seq DESC LIMIT $5"
    );
    let sql = if window.newest_first {
        NEWEST_FIRST
    } else {
        OLDEST_FIRST
    };
    let rows = sqlx::query(sql)
        .bind(conversation)
        .bind(window.after)
        .bind(window.before)
        .bind(window.top_level_only)
        .bind(sql_limit(window.limit))
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
}

/// What refuses `new` from `actor` in a conversation of `kind` (locked by the caller), if
/// anything: membership, role, a block, the reply target and thread root. Otherwise the
/// mentioned users the message counts for: current members other than the sender (a mention
/// of anyone else stays in the content and counts for nobody).
async fn check(
    conn: &mut PgConnection,
    actor: Actor,
    new: &NewMessage,
    kind: i16,
    direct_key: Option<&str>,
) -> Result<Vec<Uuid>, StoreError> {
    let sender: Option<(i16, i64)> = sqlx::query_as(
        "SELECT role, joined_at_seq FROM members \
         WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL",
    )
    .bind(new.conversation_id)
    .bind(actor.user_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((role, joined_at_seq)) = sender else {
        return Err(StoreError::ConversationNotFound);
    };
    let role = Role::from_code(role.into()).ok_or_else(|| corrupt("member role", role))?;
    let kind = Kind::from_code(kind.into()).ok_or_else(|| corrupt("conversation kind", kind))?;
    may_post(kind, role)?;
    if kind == Kind::Direct {
        let key = direct_key.ok_or_else(|| corrupt("direct key", "missing"))?;
        let (low, high) = parse_direct_key(key)?;
        let peer = if low == actor.user_id { high } else { low };
        if blocked_either(&mut *conn, actor.user_id, peer).await? {
            return Err(StoreError::Blocked(None));
        }
    }
    if let Some(target) = new.reply_to_message_id
        && visible(conn, new.conversation_id, target, joined_at_seq, true)
            .await?
            .is_none()
    {
        return Err(StoreError::MessageNotFound);
    }
    if let Some(root) = new.thread_root_message_id {
        // A thread hangs off a top-level message: a reply in a thread cannot root another.
        match visible(conn, new.conversation_id, root, joined_at_seq, false).await? {
            Some(None) => {}
            _ => return Err(StoreError::MessageNotFound),
        }
    }
    if new.mentioned.is_empty() {
        return Ok(Vec::new());
    }
    let members: Vec<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM members \
         WHERE conversation_id = $1 AND user_id = ANY($2) AND user_id <> $3 \
           AND left_at_seq IS NULL",
    )
    .bind(new.conversation_id)
    .bind(&new.mentioned)
    .bind(actor.user_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(counted_mentions(&new.mentioned, &members))
}

/// The thread root of message `id` (`Some(None)`: it is top-level) when it is a message of
/// `conversation` from `joined_at_seq` on, and not deleted for everyone unless `tombstone_ok`
/// (a reply may quote a tombstone; a thread cannot hang off one); `None` otherwise.
async fn visible(
    conn: &mut PgConnection,
    conversation: Uuid,
    id: Uuid,
    joined_at_seq: i64,
    tombstone_ok: bool,
) -> Result<Option<Option<Uuid>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT thread_root_message_id FROM messages \
         WHERE message_id = $1 AND conversation_id = $2 AND seq >= $3 \
           AND ($4 OR deleted_at IS NULL)",
    )
    .bind(id)
    .bind(conversation)
    .bind(joined_at_seq)
    .bind(tombstone_ok)
    .fetch_optional(conn)
    .await
}

/// The message `actor`'s device sent with `client_message_id`, with its request hash.
async fn by_idempotency_key<'c, E>(
    executor: E,
    actor: Actor,
    client_message_id: &str,
) -> Result<Option<(Message, Vec<u8>)>, sqlx::Error>
where
    E: sqlx::PgExecutor<'c>,
{
    let row = sqlx::query(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE sender_device_id = $1 AND client_message_id = $2"
    ))
    .bind(actor.device_id)
    .bind(client_message_id)
    .fetch_optional(executor)
    .await?;
    row.map(|row| Ok((message(&row)?, row.try_get("request_hash")?)))
        .transpose()
}

/// The answer to a send whose key was used before: the stored message when it was this
/// request (same conversation and payload), a refusal otherwise. See
/// [`crate::store::repeated`].
fn repeat(
    (stored, request_hash): (Message, Vec<u8>),
    new: &NewMessage,
) -> Result<Sent, StoreError> {
    repeated(stored, &request_hash, new)
}
