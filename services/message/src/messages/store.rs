//! Messages written once for both backends: the reads (one message, messages by id, a window
//! of a conversation by seq) and the look-ups a send decides on (the message an idempotency key
//! stored, a reply target or thread root).

use echo_ids::{ConversationId, MessageId};
use echo_store::{Database, Tx, placeholders, sql_limit, with_db, with_tx};
use sqlx::AssertSqlSafe;

use super::sending::{BatchOutcome, SendRequest};
use super::store_sending::send_batch;
use crate::error::MessageError;
use crate::store::codec::{Id, MessageRow, decode_all, message_columns};
use crate::store::{Actor, Message, MessageStore};
use crate::store::{NewMessage, Sent};
use chrono::{DateTime, Utc};

/// A window of a conversation's messages by seq: strictly between `after` and `before`,
/// `newest_first` or oldest first, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqWindow {
    /// Exclusive lower bound.
    pub after: i64,
    /// Exclusive upper bound.
    pub before: i64,
    /// Order.
    pub newest_first: bool,
    /// At most this many.
    pub limit: usize,
    /// Only messages that are not thread replies.
    pub top_level_only: bool,
}

/// Ids per generated IN list: far under SQLite's 32,766 bound values and PostgreSQL's 65,535.
const IDS_PER_STATEMENT: usize = 1_000;

/// A message with the hash of the request that stored it (what a retry is compared with).
#[derive(sqlx::FromRow)]
struct KeyedRow {
    #[sqlx(flatten)]
    message: MessageRow,
    request_hash: Vec<u8>,
}

/// See [`crate::store::MessageStore::message`].
pub(super) async fn message(
    db: &Database,
    conversation: ConversationId,
    id: MessageId,
) -> Result<Option<Message>, MessageError> {
    let row: Option<MessageRow> = with_db!(db, read, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 AND message_id = $2"
        ))
        .bind(Id(conversation.into()))
        .bind(Id(id.into()))
        .fetch_optional(c)
        .await
    })?;
    Ok(row.map(Message::try_from).transpose()?)
}

/// See [`crate::store::MessageStore::messages_by_id`].
pub(super) async fn by_id(db: &Database, ids: &[MessageId]) -> Result<Vec<Message>, MessageError> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let sql = format!(
            concat!(
                "SELECT ",
                message_columns!(),
                " FROM messages WHERE message_id IN ({})"
            ),
            placeholders(1, chunk.len())
        );
        let rows: Vec<MessageRow> = with_db!(db, read, sql, |c| {
            let mut query = sqlx::query_as(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(Id((*id).into()));
            }
            query.fetch_all(c).await
        })?;
        found.extend(decode_all::<_, Message>(rows)?);
    }
    Ok(found)
}

/// See [`crate::store::MessageStore::messages`].
pub(super) async fn window(
    db: &Database,
    conversation: ConversationId,
    window: SeqWindow,
) -> Result<Vec<Message>, MessageError> {
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
    let rows: Vec<MessageRow> = with_db!(db, read, |c| {
        sqlx::query_as(sql)
            .bind(Id(conversation.into()))
            .bind(window.after)
            .bind(window.before)
            .bind(window.top_level_only)
            .bind(sql_limit(window.limit))
            .fetch_all(c)
            .await
    })?;
    Ok(decode_all(rows)?)
}

/// The thread root of message `id` (`Some(None)`: it is top-level) when it is a message of
/// `conversation` from `joined_at_seq` on, and not deleted for everyone unless `tombstone_ok`
/// (a reply may quote a tombstone; a thread cannot hang off one); `None` otherwise.
pub(super) async fn visible(
    tx: &mut Tx,
    conversation: ConversationId,
    id: MessageId,
    joined_at_seq: i64,
    tombstone_ok: bool,
) -> Result<Option<Option<MessageId>>, sqlx::Error> {
    let root: Option<Option<Id>> = with_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT thread_root_message_id FROM messages \
             WHERE message_id = $1 AND conversation_id = $2 AND seq >= $3 \
               AND ($4 OR deleted_at IS NULL)",
        )
        .bind(Id(id.into()))
        .bind(Id(conversation.into()))
        .bind(joined_at_seq)
        .bind(tombstone_ok)
        .fetch_optional(c)
        .await
    })?;
    Ok(root.map(|root| root.map(|Id(root)| MessageId::from(root))))
}

/// The message `actor`'s device sent with `client_message_id`, with its request hash.
pub(super) async fn by_idempotency_key(
    tx: &mut Tx,
    actor: Actor,
    client_message_id: &str,
) -> Result<Option<(Message, Vec<u8>)>, sqlx::Error> {
    let row: Option<KeyedRow> = with_tx!(tx, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            message_columns!(),
            ", request_hash FROM messages WHERE sender_device_id = $1 AND client_message_id = $2"
        ))
        .bind(Id(actor.device_id.into()))
        .bind(client_message_id)
        .fetch_optional(c)
        .await
    })?;
    row.map(|row| Ok((Message::try_from(row.message)?, row.request_hash)))
        .transpose()
}

impl MessageStore {
    /// Group commit: every send of `sends` as [`MessageStore::send`] describes, in order, in
    /// ONE transaction (one commit, one fsync). A refused send (or one that fails) is rolled
    /// back alone (a savepoint) and takes no seq; the others commit together, their events in
    /// the batch's order, so seq order and the outbox order still agree. Sends to the same
    /// conversation take consecutive seqs in batch order; an earlier send of the batch with
    /// the same key answers a later one as a retry.
    pub async fn send_batch(&self, sends: &[SendRequest<'_>]) -> BatchOutcome {
        send_batch(self, sends).await
    }

    /// True when writes go through one connection (SQLite): one batch at a time then. On
    /// PostgreSQL several batches run at once, one's commit overlapping the next one's work.
    pub fn single_writer(&self) -> bool {
        matches!(self.db, Database::Sqlite(_))
    }

    /// The message `id` of `conversation`.
    pub async fn message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<Message>, MessageError> {
        message(&self.db, conversation, id).await
    }

    /// The messages of `ids` (any conversation), in any order.
    pub async fn messages_by_id(&self, ids: &[MessageId]) -> Result<Vec<Message>, MessageError> {
        by_id(&self.db, ids).await
    }

    /// The messages of `conversation` in `window`.
    pub async fn messages(
        &self,
        conversation: ConversationId,
        window: SeqWindow,
    ) -> Result<Vec<Message>, MessageError> {
        self::window(&self.db, conversation, window).await
    }

    /// Sends `new` as `actor`, in one transaction under the conversation's row lock:
    /// - a message with this `(actor.device_id, client_message_id)` exists: [`repeated`](super::edits::repeated)
    ///   decides (checked first, so a retry succeeds even after the sender left);
    /// - `ConversationNotFound` unless `actor` is a current member; `NotAllowed` for a
    ///   MEMBER of a CHANNEL; `Blocked` in a DIRECT conversation with a block either way;
    ///   `MessageNotFound` when the reply target (a tombstone is fine) or thread root (not
    ///   deleted, not itself a thread reply) is no message of this conversation after the
    ///   actor's join. Mentions are never refused;
    /// - otherwise: the next seq; the message row; the thread root's reply_count + 1; the
    ///   conversation's last_activity_at and last_message_id; every other current member's
    ///   unread_count + 1; for the mentioned current members other than the sender (others stay
    ///   in the content, counted for nobody) a mention row and mention_count + 1; one
    ///   MessageCreated whose `mentioned_user_ids` are exactly those. The sender's read state
    ///   (watermark, read_at, counters) is untouched: own messages are never unread, and the
    ///   watermark moves only by MarkRead (with its ReadMarkerMoved). `Created`.
    ///
    /// The same as a batch of one ([`MessageStore::send_batch`]).
    pub async fn send(
        &self,
        actor: Actor,
        new: &NewMessage,
        at: DateTime<Utc>,
    ) -> Result<Sent, MessageError> {
        let trace_parent = echo_telemetry::current_traceparent();
        let request = SendRequest {
            actor,
            new,
            at,
            trace_parent: trace_parent.as_deref(),
        };
        let mut outcomes = self.send_batch(&[request]).await?;
        outcomes.pop().expect("one outcome per send")
    }
}
