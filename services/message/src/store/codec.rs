//! The primitives every message store script shares, so each script is written once over both
//! backends (STYLE 15, "rules once, dialect twice"): the shared row encodings ([`Id`], [`At`]
//! and the row types that decode [`Conversation`], [`Member`] and [`Message`] the same way on
//! either backend), the transaction steps every sequenced change takes (the write order, the
//! conversation's and users' next seqs) and the checks most scripts make (live users, blocks,
//! a current member). Typed ids (`echo_ids`) cross into SQL one way: bound as
//! `Id(conversation.into())`, decoded as `row.conversation_id.0.into()` in the row → domain
//! conversions below.
//!
//! Dialect lives here only where it earns its place: PostgreSQL's write-order advisory locks
//! (SQLite's single writer orders writes by construction) and the set-based user seq upsert
//! (one statement instead of one per user, and the row locks in user id order).
//!
//! Over 400 lines as one piece: it is the store's one vocabulary (row encodings, the write
//! order, seqs, the shared checks), and every script imports from it; splitting it by size
//! would only scatter what the scripts share.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_ids::{ConversationId, UserId};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1::MessageContent;
pub(crate) use echo_store::native::{At, Id, for_update};
use echo_store::{Database, Tx, placeholders, with_tx};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{Conversation, Kind, Member, Message, MessageError, Role};

/// The conversation columns, in [`ConversationRow`]'s order.
macro_rules! conversation_columns {
    () => {
        "conversation_id, kind, title, description, avatar, only_admins_edit_info, \
         only_admins_add_members, created_by, created_at, direct_key, member_count, last_seq, \
         last_activity_at, last_message_id, message_ttl_seconds"
    };
}
pub(crate) use conversation_columns;

/// The member columns but `conversation_id` (which a join with `conversations` USING
/// `conversation_id` provides once).
macro_rules! member_state_columns {
    () => {
        "user_id, role, joined_at, joined_at_seq, added_by, left_at_seq, last_read_seq, \
         unread_count, mention_count, mute_until, pinned_at, archived"
    };
}
pub(crate) use member_state_columns;

/// The member columns, in [`MemberRow`]'s order.
macro_rules! member_columns {
    () => {
        concat!(
            "conversation_id, ",
            $crate::store::codec::member_state_columns!()
        )
    };
}
pub(crate) use member_columns;

/// The message columns, in [`MessageRow`]'s order.
macro_rules! message_columns {
    () => {
        "message_id, conversation_id, seq, sender_id, sender_device_id, client_message_id, \
         content, reply_to_message_id, thread_root_message_id, reply_count, created_at, \
         edited_at, edit_count, deleted_at, expires_at"
    };
}
pub(crate) use message_columns;

/// A `conversations` row as stored (select [`conversation_columns!`]).
#[derive(sqlx::FromRow)]
pub(crate) struct ConversationRow {
    conversation_id: Id,
    kind: i16,
    title: String,
    description: String,
    avatar: Option<Vec<u8>>,
    only_admins_edit_info: bool,
    only_admins_add_members: bool,
    created_by: Id,
    created_at: At,
    direct_key: Option<String>,
    member_count: i32,
    last_seq: i64,
    last_activity_at: At,
    last_message_id: Option<Id>,
    message_ttl_seconds: Option<i64>,
}

impl TryFrom<ConversationRow> for Conversation {
    type Error = sqlx::Error;

    fn try_from(row: ConversationRow) -> Result<Self, sqlx::Error> {
        Ok(Conversation {
            id: row.conversation_id.0.into(),
            kind: kind(row.kind)?,
            title: row.title,
            description: row.description,
            avatar: decoded::<Media>("avatar", row.avatar)?,
            only_admins_edit_info: row.only_admins_edit_info,
            only_admins_add_members: row.only_admins_add_members,
            created_by: row.created_by.0.into(),
            created_at: row.created_at.0,
            direct_pair: row.direct_key.as_deref().map(direct_pair).transpose()?,
            member_count: row.member_count,
            last_seq: row.last_seq,
            last_activity_at: row.last_activity_at.0,
            last_message_id: row.last_message_id.map(|id| id.0.into()),
            message_ttl: row.message_ttl_seconds.map(chrono::TimeDelta::seconds),
        })
    }
}

/// A `members` row as stored (select [`member_columns!`]).
#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    conversation_id: Id,
    user_id: Id,
    role: i16,
    joined_at: At,
    joined_at_seq: i64,
    added_by: Option<Id>,
    left_at_seq: Option<i64>,
    last_read_seq: i64,
    unread_count: i32,
    mention_count: i32,
    mute_until: Option<At>,
    pinned_at: Option<At>,
    archived: bool,
}

impl TryFrom<MemberRow> for Member {
    type Error = sqlx::Error;

    fn try_from(row: MemberRow) -> Result<Self, sqlx::Error> {
        Ok(Member {
            conversation_id: row.conversation_id.0.into(),
            user_id: row.user_id.0.into(),
            role: Role::from_code(row.role.into())
                .ok_or_else(|| corrupt("member role", row.role))?,
            joined_at: row.joined_at.0,
            joined_at_seq: row.joined_at_seq,
            added_by: row.added_by.map(|id| id.0.into()),
            left_at_seq: row.left_at_seq,
            last_read_seq: row.last_read_seq,
            unread_count: row.unread_count,
            mention_count: row.mention_count,
            mute_until: row.mute_until.map(|at| at.0),
            pinned_at: row.pinned_at.map(|at| at.0),
            archived: row.archived,
        })
    }
}

/// A `messages` row as stored (select [`message_columns!`]).
#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    message_id: Id,
    conversation_id: Id,
    seq: i64,
    sender_id: Id,
    sender_device_id: Id,
    client_message_id: String,
    content: Option<Vec<u8>>,
    reply_to_message_id: Option<Id>,
    thread_root_message_id: Option<Id>,
    reply_count: i32,
    created_at: At,
    edited_at: Option<At>,
    edit_count: i32,
    deleted_at: Option<At>,
    expires_at: Option<At>,
}

impl TryFrom<MessageRow> for Message {
    type Error = sqlx::Error;

    fn try_from(row: MessageRow) -> Result<Self, sqlx::Error> {
        Ok(Message {
            id: row.message_id.0.into(),
            conversation_id: row.conversation_id.0.into(),
            seq: row.seq,
            sender_id: row.sender_id.0.into(),
            sender_device_id: row.sender_device_id.0.into(),
            client_message_id: row.client_message_id,
            content: decoded::<MessageContent>("content", row.content)?,
            reply_to_message_id: row.reply_to_message_id.map(|id| id.0.into()),
            thread_root_message_id: row.thread_root_message_id.map(|id| id.0.into()),
            reply_count: row.reply_count,
            created_at: row.created_at.0,
            edited_at: row.edited_at.map(|at| at.0),
            edit_count: row.edit_count,
            deleted_at: row.deleted_at.map(|at| at.0),
            expires_at: row.expires_at.map(|at| at.0),
        })
    }
}

/// Decodes every row of `rows` into its domain type.
pub(crate) fn decode_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, sqlx::Error>
where
    T: TryFrom<R, Error = sqlx::Error>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// The conversation type stored as `code`.
pub(crate) fn kind(code: i16) -> Result<Kind, sqlx::Error> {
    Kind::from_code(code.into()).ok_or_else(|| corrupt("conversation kind", code))
}

/// The protobuf message `T` stored encoded in `column` (None when NULL).
pub(crate) fn decoded<T: prost::Message + Default>(
    column: &str,
    bytes: Option<Vec<u8>>,
) -> Result<Option<T>, sqlx::Error> {
    bytes
        .map(|bytes| T::decode(bytes.as_slice()).map_err(|e| corrupt(column, e)))
        .transpose()
}

/// The pair a `direct_key` names (see [`super::direct_key`]).
fn direct_pair(key: &str) -> Result<(UserId, UserId), sqlx::Error> {
    let parse = |part: Option<&str>| part.and_then(|p| p.parse::<UserId>().ok());
    let mut parts = key.split(':');
    match (parse(parts.next()), parse(parts.next()), parts.next()) {
        (Some(low), Some(high), None) => Ok((low, high)),
        _ => Err(corrupt("direct_key", format!("{key:?}"))),
    }
}

/// A stored value that does not decode.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} is invalid: {detail}").into())
}

/// Rolls `tx` back (on SQLite freeing the writer at once) and answers `refusal`.
pub(crate) async fn refuse<T>(tx: Tx, refusal: MessageError) -> Result<T, MessageError> {
    tx.rollback().await?;
    Err(refusal)
}

/// Appends `events` to the outbox inside `tx` and commits it, so the change and its events
/// become visible together.
pub(crate) async fn commit_with(
    outbox: &Outbox,
    mut tx: Tx,
    events: &[Event],
) -> Result<(), MessageError> {
    Outbox::append_all(&mut tx, events).await?;
    outbox.commit(tx).await?;
    Ok(())
}

/// Namespaces of the write-order locks, mixed into their keys so that a conversation and a
/// user never share a lock by construction of their ids ("conv", "user" in ASCII).
const CONVERSATION_ORDER: u64 = 0x636f_6e76_0000_0000;
const USER_ORDER: u64 = 0x7573_6572_0000_0000;

/// The write-order protocol: makes this transaction's position in the outbox follow the seqs
/// it takes. Call it FIRST in every transaction that appends events, before any write or row
/// lock (reads are fine), with the conversations whose seqs it may take and every user whose
/// user seq it may take (a superset is fine).
///
/// PostgreSQL only. Streams read the outbox in `(tx_id, id)` order, below the oldest running
/// transaction, and must see each conversation's and each user's events in seq order. A
/// transaction gets its xid at its first write (any UPDATE, INSERT, `SELECT … FOR UPDATE`, even
/// `nextval`), which is BEFORE it waits for the conversation's row lock: two sends could take
/// xids 100 and 101 and the lock (so seqs 6 and 5) the other way round, and the log would hold
/// seq 6 before seq 5. Transaction-scoped advisory locks assign no xid, so taking them first
/// means a later transaction on the same conversation or user gets its xid only after the
/// earlier one committed: xid order is seq order, per key. The locks are taken in one
/// statement, in one global key order, and before any other lock, so they cannot deadlock with
/// each other nor join a cycle with row locks. Keys are 64-bit hashes of (namespace, uuid) in
/// the two-int4 advisory key space, which the one-bigint locks elsewhere (the outbox relay's
/// session lease, other services' locks) never share; a collision only serialises more.
///
/// SQLite needs nothing: every write transaction holds the single writer (`BEGIN IMMEDIATE`),
/// so id order is commit order is seq order by construction.
pub(crate) async fn order_writes(
    tx: &mut Tx,
    conversations: &[ConversationId],
    users: &[UserId],
) -> Result<(), sqlx::Error> {
    let Tx::Postgres(tx) = tx else {
        return Ok(());
    };
    let mut keys: Vec<u64> = users
        .iter()
        .map(|&u| order_key(USER_ORDER, u.into()))
        .collect();
    keys.extend(
        conversations
            .iter()
            .map(|&c| order_key(CONVERSATION_ORDER, c.into())),
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
    .execute(&mut **tx)
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

/// Takes `conversation`'s next seq under its row lock (on PostgreSQL held to the end of the
/// transaction, so every sequenced change of the conversation waits here and what follows is
/// checked against a state no one else can change; a rollback gives the number back).
/// `activity` is Some(at) when the change moves the conversation up in its members' lists
/// (messages, membership changes, updates; not reactions, pins, edits or deletions). None when
/// there is no such conversation; otherwise the seq and the conversation's kind.
pub(crate) async fn take_seq(
    tx: &mut Tx,
    conversation: ConversationId,
    activity: Option<DateTime<Utc>>,
) -> Result<Option<(i64, Kind)>, sqlx::Error> {
    let row: Option<(i64, i16)> = with_tx!(tx, |c| {
        sqlx::query_as(
            "UPDATE conversations SET last_seq = last_seq + 1, \
               last_activity_at = COALESCE($2, last_activity_at) \
             WHERE conversation_id = $1 RETURNING last_seq, kind",
        )
        .bind(Id(conversation.into()))
        .bind(activity.map(At))
        .fetch_optional(c)
        .await
    })?;
    row.map(|(seq, code)| Ok((seq, kind(code)?))).transpose()
}

/// Takes the next user seq of each of `users` (1 for a user's first).
///
/// Dialect: on PostgreSQL one statement over the array, its rows locked in user id order (so
/// transactions bumping overlapping sets cannot deadlock); on SQLite, where the single writer
/// excludes every other write, one upsert per user.
pub(crate) async fn next_user_seqs(
    tx: &mut Tx,
    users: &[UserId],
) -> Result<HashMap<UserId, i64>, sqlx::Error> {
    let mut distinct = users.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    match tx {
        Tx::Postgres(tx) => {
            let raw: Vec<Uuid> = distinct.iter().map(|&user| user.into()).collect();
            let rows: Vec<(Uuid, i64)> = sqlx::query_as(
                "INSERT INTO user_sequences (user_id, last_seq) \
                 SELECT u, 1 FROM unnest($1::uuid[]) AS u ORDER BY u \
                 ON CONFLICT (user_id) DO UPDATE SET last_seq = user_sequences.last_seq + 1 \
                 RETURNING user_id, last_seq",
            )
            .bind(&raw)
            .fetch_all(&mut **tx)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(user, seq)| (UserId::from(user), seq))
                .collect())
        }
        Tx::Sqlite(tx) => {
            let mut seqs = HashMap::with_capacity(distinct.len());
            for user in distinct {
                let seq: i64 = sqlx::query_scalar(
                    "INSERT INTO user_sequences (user_id, last_seq) VALUES ($1, 1) \
                     ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + 1 \
                     RETURNING last_seq",
                )
                .bind(Id(user.into()))
                .fetch_one(&mut **tx)
                .await?;
                seqs.insert(user, seq);
            }
            Ok(seqs)
        }
    }
}

/// `user`'s next user seq (on PostgreSQL their `user_sequences` row stays locked to the end).
pub(crate) async fn next_user_seq(tx: &mut Tx, user: UserId) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO user_sequences (user_id, last_seq) VALUES ($1, 1) \
             ON CONFLICT (user_id) DO UPDATE SET last_seq = user_sequences.last_seq + 1 \
             RETURNING last_seq",
        )
        .bind(Id(user.into()))
        .fetch_one(c)
        .await
    })
}

/// Whether every one of `users` is known and not deleted.
pub(crate) async fn all_live(tx: &mut Tx, users: &[UserId]) -> Result<bool, sqlx::Error> {
    let mut distinct = users.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.is_empty() {
        return Ok(true);
    }
    let sql = format!(
        "SELECT count(*) FROM known_users WHERE deleted_at IS NULL AND user_id IN ({})",
        placeholders(1, distinct.len())
    );
    let live: i64 = with_tx!(tx, sql, |c| {
        let mut query = sqlx::query_scalar(AssertSqlSafe(sql));
        for user in &distinct {
            query = query.bind(Id((*user).into()));
        }
        query.fetch_one(c).await
    })?;
    Ok(usize::try_from(live).is_ok_and(|live| live == distinct.len()))
}

/// Whether `a` blocks `b` or `b` blocks `a`.
pub(crate) async fn blocked_either(tx: &mut Tx, a: UserId, b: UserId) -> Result<bool, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
                                                   OR (blocker_id = $2 AND blocked_id = $1))",
        )
        .bind(Id(a.into()))
        .bind(Id(b.into()))
        .fetch_one(c)
        .await
    })
}

/// `user`'s row in `conversation` while a member, read inside `tx` (on PostgreSQL callers that
/// decide a write on it hold the conversation's row lock from [`take_seq`] first).
pub(crate) async fn current_member(
    tx: &mut Tx,
    conversation: ConversationId,
    user: UserId,
) -> Result<Option<Member>, sqlx::Error> {
    let row: Option<MemberRow> = with_tx!(tx, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            member_columns!(),
            " FROM members WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL"
        ))
        .bind(Id(conversation.into()))
        .bind(Id(user.into()))
        .fetch_optional(c)
        .await
    })?;
    row.map(Member::try_from).transpose()
}

/// The conversation `id`, read inside `tx`.
pub(crate) async fn conversation_in(
    tx: &mut Tx,
    id: ConversationId,
) -> Result<Option<Conversation>, sqlx::Error> {
    let row: Option<ConversationRow> = with_tx!(tx, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE conversation_id = $1"
        ))
        .bind(Id(id.into()))
        .fetch_optional(c)
        .await
    })?;
    row.map(Conversation::try_from).transpose()
}

/// How many ids a generated IN list or multi-row VALUES takes at most: statements stay well
/// under either backend's parameter limit (SQLite: 32,766; PostgreSQL: 65,535).
pub(crate) const IN_LIST_CHUNK: usize = 1000;

/// The first of `users` (in their order) unknown or deleted.
pub(crate) async fn first_unknown(
    tx: &mut Tx,
    users: &[UserId],
) -> Result<Option<UserId>, sqlx::Error> {
    for chunk in users.chunks(IN_LIST_CHUNK) {
        let sql = format!(
            "SELECT user_id FROM known_users WHERE deleted_at IS NULL AND user_id IN ({})",
            placeholders(1, chunk.len())
        );
        let live: Vec<Id> = with_tx!(&mut *tx, sql, |c| {
            let mut query = sqlx::query_scalar(AssertSqlSafe(sql));
            for user in chunk {
                query = query.bind(Id((*user).into()));
            }
            query.fetch_all(c).await
        })?;
        let live: HashSet<UserId> = live.into_iter().map(|Id(user)| user.into()).collect();
        if let Some(unknown) = chunk.iter().find(|user| !live.contains(user)) {
            return Ok(Some(*unknown));
        }
    }
    Ok(None)
}

/// The first of `others` (in their order) with a block between them and `user`, either way.
pub(crate) async fn first_blocked(
    tx: &mut Tx,
    user: UserId,
    others: &[UserId],
) -> Result<Option<UserId>, sqlx::Error> {
    for chunk in others.chunks(IN_LIST_CHUNK) {
        let n = chunk.len();
        let sql = format!(
            "SELECT blocked_id FROM blocks WHERE blocker_id = $1 AND blocked_id IN ({}) \
             UNION SELECT blocker_id FROM blocks WHERE blocked_id = ${} AND blocker_id IN ({})",
            placeholders(2, n),
            n + 2,
            placeholders(n + 3, n)
        );
        let found: Vec<Id> = with_tx!(&mut *tx, sql, |c| {
            let mut query = sqlx::query_scalar(AssertSqlSafe(sql)).bind(Id(user.into()));
            for other in chunk {
                query = query.bind(Id((*other).into()));
            }
            query = query.bind(Id(user.into()));
            for other in chunk {
                query = query.bind(Id((*other).into()));
            }
            query.fetch_all(c).await
        })?;
        let blocked: HashSet<UserId> = found.into_iter().map(|Id(other)| other.into()).collect();
        if let Some(first) = chunk.iter().find(|other| blocked.contains(other)) {
            return Ok(Some(*first));
        }
    }
    Ok(None)
}

/// A read-only transaction on `db`: PostgreSQL's pool, or one of SQLite's readers (a deferred
/// transaction, so its reads share one WAL snapshot; it never takes the writer). For scripts
/// that read several statements and then decide; drop or roll it back, never write in it.
pub(crate) async fn read_tx(db: &Database) -> Result<Tx, sqlx::Error> {
    Ok(match db {
        Database::Postgres(db) => Tx::Postgres(db.pool.begin().await?),
        Database::Sqlite(db) => Tx::Sqlite(db.reader.begin().await?),
    })
}
