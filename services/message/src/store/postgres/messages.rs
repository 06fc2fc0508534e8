//! Messages: reads by seq, and the look-ups sending shares (`sending.rs` sends).

use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{message, sql_limit};
use crate::store::{Actor, Message, NewMessage, Sent, SeqWindow, StoreError, repeated};

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

/// The thread root of message `id` (`Some(None)`: it is top-level) when it is a message of
/// `conversation` from `joined_at_seq` on, and not deleted for everyone unless `tombstone_ok`
/// (a reply may quote a tombstone; a thread cannot hang off one); `None` otherwise.
pub(super) async fn visible(
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
pub(super) async fn by_idempotency_key<'c, E>(
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
pub(super) fn repeat(
    (stored, request_hash): (Message, Vec<u8>),
    new: &NewMessage,
) -> Result<Sent, StoreError> {
    repeated(stored, &request_hash, new)
}
