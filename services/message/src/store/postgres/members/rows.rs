//! The row operations the membership writes share on PostgreSQL: taking seqs under the
//! conversation's lock, reading members, joining (and joining back), leaving, roles, and the
//! checks on users being added.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::postgres::{conversation, member};
use crate::store::{Conversation, Member, Role};

/// Takes conversation `id`'s next seq under its row lock (see `super::take_seq`) and returns
/// the conversation after it; None when there is no such conversation.
pub(super) async fn take(
    conn: &mut PgConnection,
    id: Uuid,
    activity: Option<DateTime<Utc>>,
) -> Result<Option<Conversation>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "UPDATE conversations SET last_seq = last_seq + 1, \
           last_activity_at = COALESCE($2, last_activity_at) \
         WHERE conversation_id = $1 RETURNING ",
        conversation_columns!()
    ))
    .bind(id)
    .bind(activity)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(conversation).transpose()
}

/// [`take`], and `user`'s current member row: None when either is missing (a non-member
/// learns nothing).
pub(super) async fn lock(
    conn: &mut PgConnection,
    id: Uuid,
    user: Uuid,
    activity: Option<DateTime<Utc>>,
) -> Result<Option<(Conversation, Member)>, sqlx::Error> {
    let Some(locked) = take(&mut *conn, id, activity).await? else {
        return Ok(None);
    };
    Ok(current_member(conn, id, user).await?.map(|m| (locked, m)))
}

/// `user`'s row in `conversation` while a member.
pub(super) async fn current_member(
    conn: &mut PgConnection,
    conversation: Uuid,
    user: Uuid,
) -> Result<Option<Member>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        member_columns!(),
        " FROM members WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL"
    ))
    .bind(conversation)
    .bind(user)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(member).transpose()
}

/// Takes `extra` more seqs and changes the member count by `members`; the conversation after.
pub(super) async fn bump(
    conn: &mut PgConnection,
    id: Uuid,
    extra: i64,
    members: i64,
) -> Result<Conversation, sqlx::Error> {
    let row = sqlx::query(concat!(
        "UPDATE conversations SET last_seq = last_seq + $2, \
           member_count = member_count + $3::integer \
         WHERE conversation_id = $1 RETURNING ",
        conversation_columns!()
    ))
    .bind(id)
    .bind(extra)
    .bind(members)
    .fetch_one(conn)
    .await?;
    conversation(&row)
}

/// Makes `users` current MEMBERs joining at seqs `first`, `first + 1`, … in order, added by
/// `added_by`: new rows, or a former member's row reset (watermark at the join, counters and
/// private settings cleared, the delivery receipts of the earlier membership deleted), each
/// with a new membership period from their join. Returned in join order.
pub(super) async fn join(
    conn: &mut PgConnection,
    id: Uuid,
    users: &[Uuid],
    first: i64,
    added_by: Uuid,
    at: DateTime<Utc>,
) -> Result<Vec<Member>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_at_seq, \
           added_by, last_read_seq) \
         SELECT $1, j.user_id, $2, $3, $4 + j.n - 1, $5, $4 + j.n - 1 \
         FROM unnest($6::uuid[]) WITH ORDINALITY AS j(user_id, n) \
         ON CONFLICT (conversation_id, user_id) DO UPDATE SET \
           role = excluded.role, joined_at = excluded.joined_at, \
           joined_at_seq = excluded.joined_at_seq, added_by = excluded.added_by, \
           left_at_seq = NULL, last_read_seq = excluded.last_read_seq, read_at = NULL, \
           unread_count = 0, mention_count = 0, mute_until = NULL, pinned_at = NULL, \
           archived = FALSE \
         RETURNING ",
        member_columns!()
    ))
    .bind(id)
    .bind(Role::Member.code())
    .bind(at)
    .bind(first)
    .bind(added_by)
    .bind(users)
    .fetch_all(&mut *conn)
    .await?;
    let mut members = rows.iter().map(member).collect::<Result<Vec<_>, _>>()?;
    members.sort_by_key(|m| m.joined_at_seq);
    sqlx::query("DELETE FROM device_receipts WHERE conversation_id = $1 AND user_id = ANY($2)")
        .bind(id)
        .bind(users)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO member_periods (conversation_id, user_id, from_seq) \
         SELECT $1, j.user_id, $2 + j.n - 1 FROM unnest($3::uuid[]) WITH ORDINALITY AS j(user_id, n)",
    )
    .bind(id)
    .bind(first)
    .bind(users)
    .execute(conn)
    .await?;
    Ok(members)
}

/// Ends `user`'s membership at `seq` (their open period closes there, at `at`) and drops the
/// member count.
pub(super) async fn leave_at(
    conn: &mut PgConnection,
    id: Uuid,
    user: Uuid,
    seq: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE members SET left_at_seq = $3 WHERE conversation_id = $1 AND user_id = $2")
        .bind(id)
        .bind(user)
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE member_periods SET until_seq = $3, closed_at = $4 \
         WHERE conversation_id = $1 AND user_id = $2 AND until_seq IS NULL",
    )
    .bind(id)
    .bind(user)
    .bind(seq)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    bump(conn, id, 0, -1).await?;
    Ok(())
}

/// Sets `user`'s role; their row after.
pub(super) async fn set(
    conn: &mut PgConnection,
    id: Uuid,
    user: Uuid,
    role: Role,
) -> Result<Member, sqlx::Error> {
    let row = sqlx::query(concat!(
        "UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = $2 RETURNING ",
        member_columns!()
    ))
    .bind(id)
    .bind(user)
    .bind(role.code())
    .fetch_one(conn)
    .await?;
    member(&row)
}
