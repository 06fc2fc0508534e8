//! [`MessageStore`] on PostgreSQL (the service's own schema, selected by `search_path`).
//!
//! Transactions run at READ COMMITTED; every check that decides a write runs under a lock, and
//! locks are always taken in one order (the write-order advisory locks of [`order_writes`]
//! first, then a conversation row, then its member rows and messages, then `user_sequences`
//! rows in user id order), so racing calls wait instead of deadlocking:
//! - a conversation's `seq` is taken by `UPDATE conversations SET last_seq = last_seq + 1`
//!   before anything else is checked: the row lock serialises every sequenced change of the
//!   conversation, membership and roles are read under it, and a refusal rolls the number back,
//!   so seqs have no gap and no duplicate;
//! - a user's `seq` is the upsert of their `user_sequences` row, locked the same way;
//! - idempotent creation and sending insert with `ON CONFLICT … DO NOTHING` on the unique key
//!   (`direct_key`, `creation_key`, `messages_idempotency`): of two racing inserts the second
//!   waits for the first to commit and then inserts nothing, and reads the winner's row.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1::MessageContent;
use echo_store::sql_limit;
use echo_store::{PostgresDatabase, Tx};
use prost::Message as _;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row};
use uuid::Uuid;

use super::{
    Actor, BatchOutcome, Conversation, ConversationPosition, Kind, ListFilter, Member, Message,
    MessageStore, NewConversation, Role, SendRequest, SeqWindow, StoreError,
};

/// The conversation columns, as [`conversation`] reads them.
macro_rules! conversation_columns {
    () => {
        "conversation_id, kind, title, description, avatar, only_admins_edit_info, \
         only_admins_add_members, created_by, created_at, direct_key, member_count, last_seq, \
         last_activity_at, last_message_id"
    };
}

/// The member columns but `conversation_id` (which a join with `conversations` USING
/// `conversation_id` provides once), as [`member`] reads them.
macro_rules! member_state_columns {
    () => {
        "user_id, role, joined_at, joined_at_seq, added_by, left_at_seq, last_read_seq, \
         unread_count, mention_count, mute_until, pinned_at, archived"
    };
}

/// The member columns, as [`member`] reads them.
macro_rules! member_columns {
    () => {
        concat!("conversation_id, ", member_state_columns!())
    };
}

/// The message columns, as [`message`] reads them.
macro_rules! message_columns {
    () => {
        "message_id, conversation_id, seq, sender_id, sender_device_id, client_message_id, \
         request_hash, content, reply_to_message_id, thread_root_message_id, reply_count, \
         created_at, edited_at, edit_count, deleted_at"
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
mod sending;

/// [`MessageStore`] on PostgreSQL.
#[derive(Clone)]
pub struct PostgresMessageStore {
    db: PostgresDatabase,
    outbox: Outbox,
}

impl PostgresMessageStore {
    /// The store on `db` (message and bus migrations applied), appending events to `outbox`.
    pub fn new(db: PostgresDatabase, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

#[async_trait]
impl MessageStore for PostgresMessageStore {
    async fn record_user(
        &self,
        tx: &mut Tx,
        user_id: Uuid,
        deleted_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        // A deletion is final: a late or redelivered "exists" keeps the tombstone, and a
        // redelivered deletion keeps the first time.
        sqlx::query(
            "INSERT INTO known_users (user_id, deleted_at) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE \
             SET deleted_at = COALESCE(known_users.deleted_at, excluded.deleted_at)",
        )
        .bind(user_id)
        .bind(deleted_at)
        .execute(tx.postgres()?)
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
        let sql = if blocking {
            "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2) \
             ON CONFLICT (blocker_id, blocked_id) DO NOTHING"
        } else {
            "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2"
        };
        sqlx::query(sql)
            .bind(blocker)
            .bind(blocked)
            .execute(tx.postgres()?)
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
        conversations::create_direct(&self.db.pool, &self.outbox, actor, peer, id, at).await
    }

    async fn create_conversation(
        &self,
        actor: Actor,
        new: &NewConversation,
        at: DateTime<Utc>,
    ) -> Result<(Conversation, bool), StoreError> {
        conversations::create_conversation(&self.db.pool, &self.outbox, actor, new, at).await
    }

    async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE conversation_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(conversation).transpose()?)
    }

    async fn member(&self, conversation: Uuid, user: Uuid) -> Result<Option<Member>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            member_columns!(),
            " FROM members WHERE conversation_id = $1 AND user_id = $2"
        ))
        .bind(conversation)
        .bind(user)
        .fetch_optional(&self.db.pool)
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
        conversations::list(&self.db.pool, user, filter, after, limit).await
    }

    async fn send_batch(&self, sends: &[SendRequest<'_>]) -> BatchOutcome {
        sending::send_batch(&self.db.pool, &self.outbox, sends).await
    }

    fn single_writer(&self) -> bool {
        false
    }

    async fn message(&self, conversation: Uuid, id: Uuid) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 AND message_id = $2"
        ))
        .bind(conversation)
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(message).transpose()?)
    }

    async fn messages_by_id(&self, ids: &[Uuid]) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE message_id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
    }

    async fn messages(
        &self,
        conversation: Uuid,
        window: SeqWindow,
    ) -> Result<Vec<Message>, StoreError> {
        messages::window(&self.db.pool, conversation, window).await
    }
}

/// Rolls `tx` back and answers `refusal`.
async fn refuse<T>(
    tx: sqlx::Transaction<'static, Postgres>,
    refusal: StoreError,
) -> Result<T, StoreError> {
    tx.rollback().await?;
    Err(refusal)
}

/// Appends `events` to the outbox inside `tx` and commits it.
async fn commit_with(
    outbox: &Outbox,
    tx: sqlx::Transaction<'static, Postgres>,
    events: &[Event],
) -> Result<(), StoreError> {
    let mut tx = Tx::Postgres(tx);
    Outbox::append_all(&mut tx, events).await?;
    outbox.commit(tx).await?;
    Ok(())
}

/// Namespaces of the write-order locks, mixed into their keys so that a conversation and a
/// user never share a lock by construction of their ids ("conv", "user" in ASCII).
const CONVERSATION_ORDER: u64 = 0x636f_6e76_0000_0000;
const USER_ORDER: u64 = 0x7573_6572_0000_0000;

/// The write-order protocol: makes this transaction's position in the outbox (its xid) follow
/// the seqs it takes. Call it FIRST in every transaction that appends events, before any write
/// or row lock (reads are fine), with the conversation whose seqs it may take and every user
/// whose user seq it may take (a superset is fine).
///
/// Why: streams read the outbox in `(tx_id, id)` order, below the oldest running transaction,
/// and must see each conversation's and each user's events in seq order. A transaction gets its
/// xid at its first write (any UPDATE, INSERT, `SELECT … FOR UPDATE`, even `nextval`), which is
/// BEFORE it waits for the conversation's row lock: two sends could take xids 100 and 101 and
/// the lock (so seqs 6 and 5) the other way round, and the log would hold seq 6 before seq 5.
/// Transaction-scoped advisory locks assign no xid, so taking them first means a later
/// transaction on the same conversation or user gets its xid only after the earlier one
/// committed: xid order is seq order, per key.
///
/// The locks are taken in one statement, in one global key order, and before any other lock,
/// so they cannot deadlock with each other nor join a cycle with row locks (a transaction
/// waiting here holds no row lock). Keys are 64-bit hashes of (namespace, uuid) in the
/// two-int4 advisory key space, which the one-bigint locks elsewhere (the outbox relay's
/// session lease, other services' locks) never share; a collision only serialises more.
async fn order_writes(
    conn: &mut PgConnection,
    conversation: Option<Uuid>,
    users: &[Uuid],
) -> Result<(), sqlx::Error> {
    order_batch_writes(conn, conversation.as_slice(), users).await
}

/// [`order_writes`] for a transaction that may take seqs of several conversations (a batch
/// of sends): all their locks in one statement, in key order, so batches never deadlock.
async fn order_batch_writes(
    conn: &mut PgConnection,
    conversations: &[Uuid],
    users: &[Uuid],
) -> Result<(), sqlx::Error> {
    let mut keys: Vec<u64> = users.iter().map(|&u| order_key(USER_ORDER, u)).collect();
    keys.extend(
        conversations
            .iter()
            .map(|&c| order_key(CONVERSATION_ORDER, c)),
    );
    keys.sort_unstable();
    keys.dedup();
    // unnest yields the pairs in array order, so the locks are taken in key order.
    let (high, low): (Vec<i32>, Vec<i32>) = keys.iter().map(|&key| split_key(key)).unzip();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k.high, k.low) \
         FROM unnest($1::int4[], $2::int4[]) AS k(high, low)",
    )
    .bind(&high)
    .bind(&low)
    .execute(conn)
    .await?;
    Ok(())
}

/// The write-order key of `id` in `namespace`: both halves of the uuid (a UUIDv7's first half
/// is mostly its timestamp) folded together.
fn order_key(namespace: u64, id: Uuid) -> u64 {
    let (high, low) = id.as_u64_pair();
    high ^ low ^ namespace
}

/// `key` as the two int4 halves of a two-key advisory lock.
fn split_key(key: u64) -> (i32, i32) {
    let [a, b, c, d, e, f, g, h] = key.to_be_bytes();
    (
        i32::from_be_bytes([a, b, c, d]),
        i32::from_be_bytes([e, f, g, h]),
    )
}

/// Takes `conversation`'s next seq under its row lock (held to the end of the transaction, so
/// every sequenced change of the conversation waits here and what follows is checked against a
/// state no one else can change; a rollback gives the number back). `activity` is Some(at)
/// when the change moves the conversation up in its members' lists (messages, membership
/// changes, updates; not reactions, pins, edits or deletions). None when there is no such
/// conversation; otherwise the seq and the conversation's kind.
async fn take_seq(
    conn: &mut PgConnection,
    conversation: Uuid,
    activity: Option<DateTime<Utc>>,
) -> Result<Option<(i64, Kind)>, sqlx::Error> {
    let row: Option<(i64, i16)> = sqlx::query_as(
        "UPDATE conversations SET last_seq = last_seq + 1, \
           last_activity_at = COALESCE($2, last_activity_at) \
         WHERE conversation_id = $1 RETURNING last_seq, kind",
    )
    .bind(conversation)
    .bind(activity)
    .fetch_optional(conn)
    .await?;
    row.map(|(seq, kind)| {
        Kind::from_code(kind.into())
            .map(|kind| (seq, kind))
            .ok_or_else(|| corrupt("conversation kind", kind))
    })
    .transpose()
}

/// Takes the next user seq of each of `users` (distinct). Their rows are locked in user id
/// order, so transactions bumping overlapping sets cannot deadlock.
async fn next_user_seqs(
    conn: &mut PgConnection,
    users: &[Uuid],
) -> Result<HashMap<Uuid, i64>, sqlx::Error> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "INSERT INTO user_sequences (user_id, last_seq) \
         SELECT u, 1 FROM unnest($1::uuid[]) AS u ORDER BY u \
         ON CONFLICT (user_id) DO UPDATE SET last_seq = user_sequences.last_seq + 1 \
         RETURNING user_id, last_seq",
    )
    .bind(users)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// `user`'s next user seq (their `user_sequences` row stays locked to the end).
async fn next_user_seq(conn: &mut PgConnection, user: Uuid) -> Result<i64, sqlx::Error> {
    next_user_seqs(conn, &[user])
        .await?
        .get(&user)
        .copied()
        .ok_or(sqlx::Error::RowNotFound)
}

/// Whether every one of `users` is known and not deleted.
async fn all_live(conn: &mut PgConnection, users: &[Uuid]) -> Result<bool, sqlx::Error> {
    let mut distinct = users.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM known_users WHERE user_id = ANY($1) AND deleted_at IS NULL",
    )
    .bind(&distinct)
    .fetch_one(conn)
    .await?;
    Ok(usize::try_from(live).is_ok_and(|live| live == distinct.len()))
}

/// Whether `a` blocks `b` or `b` blocks `a`.
async fn blocked_either(conn: &mut PgConnection, a: Uuid, b: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
                                               OR (blocker_id = $2 AND blocked_id = $1))",
    )
    .bind(a)
    .bind(b)
    .fetch_one(conn)
    .await
}

/// A stored value that does not decode.
fn corrupt(what: &str, detail: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} is invalid: {detail}").into())
}

fn conversation(row: &PgRow) -> Result<Conversation, sqlx::Error> {
    let kind: i16 = row.try_get("kind")?;
    let avatar = row
        .try_get::<Option<Vec<u8>>, _>("avatar")?
        .map(|bytes| Media::decode(bytes.as_slice()))
        .transpose()
        .map_err(|e| corrupt("avatar", e))?;
    let direct_pair = row
        .try_get::<Option<String>, _>("direct_key")?
        .map(|key| parse_direct_key(&key))
        .transpose()?;
    Ok(Conversation {
        id: row.try_get("conversation_id")?,
        kind: Kind::from_code(kind.into()).ok_or_else(|| corrupt("conversation kind", kind))?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        avatar,
        only_admins_edit_info: row.try_get("only_admins_edit_info")?,
        only_admins_add_members: row.try_get("only_admins_add_members")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        direct_pair,
        member_count: row.try_get("member_count")?,
        last_seq: row.try_get("last_seq")?,
        last_activity_at: row.try_get("last_activity_at")?,
        last_message_id: row.try_get("last_message_id")?,
    })
}

/// The pair of a `direct_key` ('<smaller id>:<larger id>').
fn parse_direct_key(key: &str) -> Result<(Uuid, Uuid), sqlx::Error> {
    let pair = key
        .split_once(':')
        .and_then(|(low, high)| Some((Uuid::parse_str(low).ok()?, Uuid::parse_str(high).ok()?)));
    pair.ok_or_else(|| corrupt("direct key", key))
}

fn member(row: &PgRow) -> Result<Member, sqlx::Error> {
    let role: i16 = row.try_get("role")?;
    Ok(Member {
        conversation_id: row.try_get("conversation_id")?,
        user_id: row.try_get("user_id")?,
        role: Role::from_code(role.into()).ok_or_else(|| corrupt("member role", role))?,
        joined_at: row.try_get("joined_at")?,
        joined_at_seq: row.try_get("joined_at_seq")?,
        added_by: row.try_get("added_by")?,
        left_at_seq: row.try_get("left_at_seq")?,
        last_read_seq: row.try_get("last_read_seq")?,
        unread_count: row.try_get("unread_count")?,
        mention_count: row.try_get("mention_count")?,
        mute_until: row.try_get("mute_until")?,
        pinned_at: row.try_get("pinned_at")?,
        archived: row.try_get("archived")?,
    })
}

fn message(row: &PgRow) -> Result<Message, sqlx::Error> {
    let content = row
        .try_get::<Option<Vec<u8>>, _>("content")?
        .map(|bytes| MessageContent::decode(bytes.as_slice()))
        .transpose()
        .map_err(|e| corrupt("message content", e))?;
    Ok(Message {
        id: row.try_get("message_id")?,
        conversation_id: row.try_get("conversation_id")?,
        seq: row.try_get("seq")?,
        sender_id: row.try_get("sender_id")?,
        sender_device_id: row.try_get("sender_device_id")?,
        client_message_id: row.try_get("client_message_id")?,
        content,
        reply_to_message_id: row.try_get("reply_to_message_id")?,
        thread_root_message_id: row.try_get("thread_root_message_id")?,
        reply_count: row.try_get("reply_count")?,
        created_at: row.try_get("created_at")?,
        edited_at: row.try_get("edited_at")?,
        edit_count: row.try_get("edit_count")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}
