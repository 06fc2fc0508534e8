//! The row steps the membership scripts share, written once for both backends: taking the
//! conversation's seqs under its row lock, reading members, checking users being added,
//! joining (and joining back, with a new membership period), leaving, and roles.
//!
//! Generated IN lists and multi-row VALUES go in chunks of `codec::IN_LIST_CHUNK` users (7
//! parameters a row in the widest, [`join`]), so a statement stays under either backend's
//! bound-parameter limit.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, UserId};
use echo_store::{Tx, placeholders, value_rows, with_tx};
use sqlx::AssertSqlSafe;

use crate::store::codec::{
    At, ConversationRow, IN_LIST_CHUNK, Id, MemberRow, conversation_columns, current_member,
    decode_all, member_columns,
};
use crate::store::{Conversation, Member, Role};

/// Takes conversation `id`'s next seq under its row lock (held to commit on PostgreSQL; the
/// single writer holds everything on SQLite), moving it up in lists when `activity` is Some;
/// the conversation after. None when there is no such conversation. A rollback gives the seq
/// back. (Like `codec::take_seq`, but returning the whole row the membership rules read.)
pub(crate) async fn take(
    tx: &mut Tx,
    id: ConversationId,
    activity: Option<DateTime<Utc>>,
) -> Result<Option<Conversation>, sqlx::Error> {
    let row: Option<ConversationRow> = with_tx!(tx, |c| {
        sqlx::query_as(concat!(
            "UPDATE conversations SET last_seq = last_seq + 1, \
               last_activity_at = COALESCE($2, last_activity_at) \
             WHERE conversation_id = $1 RETURNING ",
            conversation_columns!()
        ))
        .bind(Id(id.into()))
        .bind(activity.map(At))
        .fetch_optional(c)
        .await
    })?;
    row.map(Conversation::try_from).transpose()
}

/// [`take`] (with activity at `at`), then `user`'s current member row read under the lock:
/// None when either is missing (a non-member learns nothing).
pub(crate) async fn lock(
    tx: &mut Tx,
    id: ConversationId,
    user: UserId,
    at: DateTime<Utc>,
) -> Result<Option<(Conversation, Member)>, sqlx::Error> {
    let Some(locked) = take(tx, id, Some(at)).await? else {
        return Ok(None);
    };
    Ok(current_member(tx, id, user).await?.map(|m| (locked, m)))
}

/// Takes `extra` more seqs and changes the member count by `members`; the conversation after.
pub(crate) async fn bump(
    tx: &mut Tx,
    id: ConversationId,
    extra: i64,
    members: i32,
) -> Result<Conversation, sqlx::Error> {
    let row: ConversationRow = with_tx!(tx, |c| {
        sqlx::query_as(concat!(
            "UPDATE conversations SET last_seq = last_seq + $2, \
               member_count = member_count + $3 \
             WHERE conversation_id = $1 RETURNING ",
            conversation_columns!()
        ))
        .bind(Id(id.into()))
        .bind(extra)
        .bind(members)
        .fetch_one(c)
        .await
    })?;
    Conversation::try_from(row)
}

/// Those of `users` who are current members of `conversation`.
pub(crate) async fn current_among(
    tx: &mut Tx,
    conversation: ConversationId,
    users: &[UserId],
) -> Result<HashSet<UserId>, sqlx::Error> {
    let mut current = HashSet::new();
    for chunk in users.chunks(IN_LIST_CHUNK) {
        let sql = format!(
            "SELECT user_id FROM members WHERE conversation_id = $1 AND left_at_seq IS NULL \
               AND user_id IN ({})",
            placeholders(2, chunk.len())
        );
        let found: Vec<Id> = with_tx!(&mut *tx, sql, |c| {
            let mut query = sqlx::query_scalar(AssertSqlSafe(sql)).bind(Id(conversation.into()));
            for user in chunk {
                query = query.bind(Id((*user).into()));
            }
            query.fetch_all(c).await
        })?;
        current.extend(found.into_iter().map(|Id(user)| UserId::from(user)));
    }
    Ok(current)
}

/// Makes `users` (distinct) current MEMBERs of `id` joining at seqs `first`, `first + 1`, … in
/// order, added by `added_by`: new rows, or a former member's row reset (watermark at the
/// join, counters and private settings cleared, the delivery receipts of the earlier
/// membership deleted), each with a new membership period from their join. In join order.
pub(crate) async fn join(
    tx: &mut Tx,
    id: ConversationId,
    users: &[UserId],
    first: i64,
    added_by: UserId,
    at: DateTime<Utc>,
) -> Result<Vec<Member>, sqlx::Error> {
    let mut members = Vec::with_capacity(users.len());
    let mut seq = first;
    for chunk in users.chunks(IN_LIST_CHUNK) {
        let sql = format!(
            concat!(
                "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_at_seq, \
                   added_by, last_read_seq) VALUES {} \
                 ON CONFLICT (conversation_id, user_id) DO UPDATE SET \
                   role = excluded.role, joined_at = excluded.joined_at, \
                   joined_at_seq = excluded.joined_at_seq, added_by = excluded.added_by, \
                   left_at_seq = NULL, last_read_seq = excluded.last_read_seq, read_at = NULL, \
                   unread_count = 0, mention_count = 0, mute_until = NULL, pinned_at = NULL, \
                   archived = FALSE \
                 RETURNING ",
                member_columns!()
            ),
            value_rows(1, chunk.len(), 7)
        );
        let rows: Vec<MemberRow> = with_tx!(&mut *tx, sql, |c| {
            let mut query = sqlx::query_as(AssertSqlSafe(sql));
            for (n, user) in (seq..).zip(chunk) {
                query = query
                    .bind(Id(id.into()))
                    .bind(Id((*user).into()))
                    .bind(Role::Member.code())
                    .bind(At(at))
                    .bind(n)
                    .bind(Id(added_by.into()))
                    .bind(n);
            }
            query.fetch_all(c).await
        })?;
        members.extend(decode_all::<_, Member>(rows)?);

        let sql = format!(
            "DELETE FROM device_receipts WHERE conversation_id = $1 AND user_id IN ({})",
            placeholders(2, chunk.len())
        );
        with_tx!(&mut *tx, sql, |c| {
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(Id(id.into()));
            for user in chunk {
                query = query.bind(Id((*user).into()));
            }
            query.execute(c).await.map(drop)
        })?;

        let sql = format!(
            "INSERT INTO member_periods (conversation_id, user_id, from_seq) VALUES {}",
            value_rows(1, chunk.len(), 3)
        );
        with_tx!(&mut *tx, sql, |c| {
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (n, user) in (seq..).zip(chunk) {
                query = query.bind(Id(id.into())).bind(Id((*user).into())).bind(n);
            }
            query.execute(c).await.map(drop)
        })?;
        seq += i64::try_from(chunk.len()).unwrap_or(i64::MAX);
    }
    // RETURNING promises no order.
    members.sort_by_key(|m| m.joined_at_seq);
    Ok(members)
}

/// Ends `user`'s membership of `id` at `seq` (their open period closes there, at `at`) and
/// drops the member count.
pub(crate) async fn leave_at(
    tx: &mut Tx,
    id: ConversationId,
    user: UserId,
    seq: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    with_tx!(&mut *tx, |c| {
        sqlx::query(
            "UPDATE members SET left_at_seq = $3 WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(Id(id.into()))
        .bind(Id(user.into()))
        .bind(seq)
        .execute(c)
        .await
        .map(drop)
    })?;
    with_tx!(&mut *tx, |c| {
        sqlx::query(
            "UPDATE member_periods SET until_seq = $3, closed_at = $4 \
             WHERE conversation_id = $1 AND user_id = $2 AND until_seq IS NULL",
        )
        .bind(Id(id.into()))
        .bind(Id(user.into()))
        .bind(seq)
        .bind(At(at))
        .execute(c)
        .await
        .map(drop)
    })?;
    bump(tx, id, 0, -1).await?;
    Ok(())
}

/// Sets `user`'s role in `id`; their row after.
pub(crate) async fn set(
    tx: &mut Tx,
    id: ConversationId,
    user: UserId,
    role: Role,
) -> Result<Member, sqlx::Error> {
    let row: MemberRow = with_tx!(tx, |c| {
        sqlx::query_as(concat!(
            "UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = $2 \
             RETURNING ",
            member_columns!()
        ))
        .bind(Id(id.into()))
        .bind(Id(user.into()))
        .bind(role.code())
        .fetch_one(c)
        .await
    })?;
    Member::try_from(row)
}
