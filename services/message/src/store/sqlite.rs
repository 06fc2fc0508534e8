//! [`MessageStore`] on the embedded SQLite file.
//!
//! Every write runs on the single writer connection in a `BEGIN IMMEDIATE` transaction. That
//! serialisation is what the PostgreSQL store gets from row locks: a seq is read and bumped
//! with nothing in between (so seqs are gap-free and never repeat), and every check (an
//! existing idempotency key, membership, a block) still holds when the write that follows it
//! commits. Reads use the reader pool. UUIDs are hyphenated lowercase TEXT, which sorts like
//! the UUID's bytes (so keyset pages follow PostgreSQL's order), times are unix microseconds,
//! and protobuf values (content, avatar) are their encoded bytes (see the migration).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1::MessageContent;
use echo_store::sql_limit;
use echo_store::sqlite_rows::{
    decode_error, is_unique_violation, json_ids, micros, optional_time, optional_uuid, time, uuid,
};
use echo_store::{SqliteDatabase, Tx};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection, SqliteExecutor, SqlitePool};
use uuid::Uuid;

use super::{
    Actor, BatchOutcome, Conversation, ConversationPosition, Kind, ListFilter, Member, Message,
    MessageStore, NewConversation, Role, SendRequest, SeqWindow, StoreError,
};

/// The conversation columns after `conversation_id`, as [`conversation`] reads them (none of
/// them is also a member column, so they need no table prefix in a join with `members`).
macro_rules! conversation_fields {
    () => {
        "kind, title, description, avatar, only_admins_edit_info, only_admins_add_members, \
         created_by, created_at, direct_key, member_count, last_seq, last_activity_at, \
         last_message_id"
    };
}

/// The member columns after `conversation_id`, as [`member`] reads them.
macro_rules! member_fields {
    () => {
        "user_id, role, joined_at, joined_at_seq, added_by, left_at_seq, last_read_seq, \
         unread_count, mention_count, mute_until, pinned_at, archived"
    };
}

/// The message columns, as [`message`] reads them.
macro_rules! message_columns {
    () => {
        "message_id, conversation_id, seq, sender_id, sender_device_id, client_message_id, \
         content, reply_to_message_id, thread_root_message_id, reply_count, created_at, \
         edited_at, edit_count, deleted_at"
    };
}

mod conversations;
mod edits;
mod live;
mod members;
mod messages;
mod reactions;
mod receipts;
mod search;

/// [`MessageStore`] on SQLite.
#[derive(Clone)]
pub struct SqliteMessageStore {
    db: SqliteDatabase,
    outbox: Outbox,
}

impl SqliteMessageStore {
    /// The store on `db` (message and bus migrations applied), appending events to `outbox`.
    pub fn new(db: SqliteDatabase, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

#[async_trait]
impl MessageStore for SqliteMessageStore {
    async fn record_user(
        &self,
        tx: &mut Tx,
        user_id: Uuid,
        deleted_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        // A deletion is final: a late or redelivered "exists" never revives the account, and a
        // repeated deletion keeps the first time.
        sqlx::query(
            "INSERT INTO known_users (user_id, deleted_at) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET \
               deleted_at = COALESCE(known_users.deleted_at, excluded.deleted_at)",
        )
        .bind(user_id.to_string())
        .bind(deleted_at.map(micros))
        .execute(tx.sqlite()?)
        .await?;
        Ok(())
    }

    async fn record_block(
        &self,
        tx: &mut Tx,
        blocker: Uuid,
        blocked: Uuid,
        blocking: bool,
    ) -> Result<(), StoreError> {
        let statement = if blocking {
            "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2) \
             ON CONFLICT (blocker_id, blocked_id) DO NOTHING"
        } else {
            "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2"
        };
        sqlx::query(statement)
            .bind(blocker.to_string())
            .bind(blocked.to_string())
            .execute(tx.sqlite()?)
            .await?;
        Ok(())
    }

    async fn create_direct(
        &self,
        actor: Actor,
        peer: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(Conversation, bool), StoreError> {
        conversations::create_direct(&self.db.writer, &self.outbox, actor, peer, id, at).await
    }

    async fn create_conversation(
        &self,
        actor: Actor,
        new: &NewConversation,
        at: DateTime<Utc>,
    ) -> Result<(Conversation, bool), StoreError> {
        conversations::create_conversation(&self.db.writer, &self.outbox, actor, new, at).await
    }

    async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>, StoreError> {
        Ok(conversation_by_id(&self.db.reader, id).await?)
    }

    async fn member(&self, conversation: Uuid, user: Uuid) -> Result<Option<Member>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT conversation_id, ",
            member_fields!(),
            " FROM members WHERE conversation_id = $1 AND user_id = $2"
        ))
        .bind(conversation.to_string())
        .bind(user.to_string())
        .fetch_optional(&self.db.reader)
        .await?;
        Ok(row.as_ref().map(member).transpose()?)
    }

    async fn list_conversations(
        &self,
        user: Uuid,
        filter: ListFilter,
        after: Option<&ConversationPosition>,
        limit: usize,
    ) -> Result<Vec<(Conversation, Member)>, StoreError> {
        conversations::list(&self.db.reader, user, filter, after, limit).await
    }

    async fn send_batch(&self, sends: &[SendRequest<'_>]) -> BatchOutcome {
        messages::send_batch(&self.db.writer, &self.outbox, sends).await
    }

    fn single_writer(&self) -> bool {
        true
    }

    async fn message(&self, conversation: Uuid, id: Uuid) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE message_id = $1 AND conversation_id = $2"
        ))
        .bind(id.to_string())
        .bind(conversation.to_string())
        .fetch_optional(&self.db.reader)
        .await?;
        Ok(row.as_ref().map(message).transpose()?)
    }

    async fn messages_by_id(&self, ids: &[Uuid]) -> Result<Vec<Message>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE message_id IN (SELECT value FROM json_each($1))"
        ))
        .bind(json_ids(ids))
        .fetch_all(&self.db.reader)
        .await?;
        Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
    }

    async fn messages(
        &self,
        conversation: Uuid,
        window: SeqWindow,
    ) -> Result<Vec<Message>, StoreError> {
        messages::window(&self.db.reader, conversation, window).await
    }
}

/// A writer transaction, as every write of this store runs in.
type WriteTx = sqlx::Transaction<'static, Sqlite>;

/// Begins a write transaction holding the write lock from the start, so it cannot fail
/// half-way with SQLITE_BUSY and nothing interleaves between its checks and its writes.
async fn begin(writer: &SqlitePool) -> Result<WriteTx, sqlx::Error> {
    writer.begin_with("BEGIN IMMEDIATE").await
}

/// Rolls `tx` back (freeing the writer at once) and answers `refusal`.
async fn refuse<T>(tx: WriteTx, refusal: StoreError) -> Result<T, StoreError> {
    tx.rollback().await?;
    Err(refusal)
}

/// Appends `events` to the outbox inside `tx` and commits it, so the change and its events
/// become visible together.
async fn commit_with(outbox: &Outbox, tx: WriteTx, events: &[Event]) -> Result<(), StoreError> {
    let mut tx = Tx::Sqlite(tx);
    Outbox::append_all(&mut tx, events).await?;
    outbox.commit(tx).await?;
    Ok(())
}

/// `user`'s row in `conversation` while a member (under the write lock it holds to commit).
async fn current_member(
    conn: &mut SqliteConnection,
    conversation: Uuid,
    user: Uuid,
) -> Result<Option<Member>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT conversation_id, ",
        member_fields!(),
        " FROM members WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL"
    ))
    .bind(conversation.to_string())
    .bind(user.to_string())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(member).transpose()
}

/// Takes `conversation`'s next seq; `activity` Some(at) when the change moves the
/// conversation up in its members' lists (messages, membership changes, updates; not
/// reactions, pins, edits or deletions).
async fn next_seq(
    conn: &mut SqliteConnection,
    conversation: Uuid,
    activity: Option<DateTime<Utc>>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE conversations SET last_seq = last_seq + 1, \
           last_activity_at = coalesce($1, last_activity_at) \
         WHERE conversation_id = $2 RETURNING last_seq",
    )
    .bind(activity.map(micros))
    .bind(conversation.to_string())
    .fetch_one(conn)
    .await
}

/// Takes `user`'s next user seq (1 for their first).
async fn next_user_seq(conn: &mut SqliteConnection, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO user_sequences (user_id, last_seq) VALUES ($1, 1) \
         ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq",
    )
    .bind(user.to_string())
    .fetch_one(conn)
    .await
}

/// Whether a block stands between `a` and `b`, either way.
async fn blocked_either_way(
    conn: &mut SqliteConnection,
    a: Uuid,
    b: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
                                               OR (blocker_id = $2 AND blocked_id = $1))",
    )
    .bind(a.to_string())
    .bind(b.to_string())
    .fetch_one(conn)
    .await
}

/// Whether every one of `users` is known and not deleted.
async fn all_live(conn: &mut SqliteConnection, users: &[Uuid]) -> Result<bool, sqlx::Error> {
    let missing: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM json_each($1) WHERE value NOT IN \
           (SELECT user_id FROM known_users WHERE deleted_at IS NULL))",
    )
    .bind(json_ids(users))
    .fetch_one(conn)
    .await?;
    Ok(!missing)
}

/// The conversation `id`.
async fn conversation_by_id(
    executor: impl SqliteExecutor<'_>,
    id: Uuid,
) -> Result<Option<Conversation>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT conversation_id, ",
        conversation_fields!(),
        " FROM conversations WHERE conversation_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(conversation).transpose()
}

/// The protobuf message `T` encoded in `column` (None when NULL).
fn decoded<T: prost::Message + Default>(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<T>, sqlx::Error> {
    match row.try_get::<Option<Vec<u8>>, _>(column)? {
        None => Ok(None),
        Some(bytes) => T::decode(bytes.as_slice())
            .map(Some)
            .map_err(|e| decode_error(format!("{column}: {e}"))),
    }
}

/// The pair a `direct_key` names (see [`super::direct_key`]).
fn direct_pair(key: &str) -> Result<(Uuid, Uuid), sqlx::Error> {
    let parse = |part: Option<&str>| part.and_then(|p| Uuid::parse_str(p).ok());
    let mut parts = key.split(':');
    match (parse(parts.next()), parse(parts.next()), parts.next()) {
        (Some(low), Some(high), None) => Ok((low, high)),
        _ => Err(decode_error(format!("direct_key: {key:?}"))),
    }
}

fn conversation(row: &SqliteRow) -> Result<Conversation, sqlx::Error> {
    let code: i64 = row.try_get("kind")?;
    let kind = Kind::from_code(code)
        .ok_or_else(|| decode_error(format!("kind: unknown conversation type {code}")))?;
    let direct_key: Option<String> = row.try_get("direct_key")?;
    Ok(Conversation {
        id: uuid(row, "conversation_id")?,
        kind,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        avatar: decoded::<Media>(row, "avatar")?,
        only_admins_edit_info: row.try_get("only_admins_edit_info")?,
        only_admins_add_members: row.try_get("only_admins_add_members")?,
        created_by: uuid(row, "created_by")?,
        created_at: time(row, "created_at")?,
        direct_pair: direct_key.as_deref().map(direct_pair).transpose()?,
        member_count: row.try_get("member_count")?,
        last_seq: row.try_get("last_seq")?,
        last_activity_at: time(row, "last_activity_at")?,
        last_message_id: optional_uuid(row, "last_message_id")?,
    })
}

fn member(row: &SqliteRow) -> Result<Member, sqlx::Error> {
    let code: i64 = row.try_get("role")?;
    let role =
        Role::from_code(code).ok_or_else(|| decode_error(format!("role: unknown role {code}")))?;
    Ok(Member {
        conversation_id: uuid(row, "conversation_id")?,
        user_id: uuid(row, "user_id")?,
        role,
        joined_at: time(row, "joined_at")?,
        joined_at_seq: row.try_get("joined_at_seq")?,
        added_by: optional_uuid(row, "added_by")?,
        left_at_seq: row.try_get("left_at_seq")?,
        last_read_seq: row.try_get("last_read_seq")?,
        unread_count: row.try_get("unread_count")?,
        mention_count: row.try_get("mention_count")?,
        mute_until: optional_time(row, "mute_until")?,
        pinned_at: optional_time(row, "pinned_at")?,
        archived: row.try_get("archived")?,
    })
}

fn message(row: &SqliteRow) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: uuid(row, "message_id")?,
        conversation_id: uuid(row, "conversation_id")?,
        seq: row.try_get("seq")?,
        sender_id: uuid(row, "sender_id")?,
        sender_device_id: uuid(row, "sender_device_id")?,
        client_message_id: row.try_get("client_message_id")?,
        content: decoded::<MessageContent>(row, "content")?,
        reply_to_message_id: optional_uuid(row, "reply_to_message_id")?,
        thread_root_message_id: optional_uuid(row, "thread_root_message_id")?,
        reply_count: row.try_get("reply_count")?,
        created_at: time(row, "created_at")?,
        edited_at: optional_time(row, "edited_at")?,
        edit_count: row.try_get("edit_count")?,
        deleted_at: optional_time(row, "deleted_at")?,
    })
}
