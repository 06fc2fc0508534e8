//! Invites on PostgreSQL: creating (counted under the conversation's lock), revoking, listing,
//! and joining with a code (under the conversation's seq lock, so concurrent joins with one
//! code see each other's use count and never pass `max_uses`).

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::rows::{bump, current_member, join as join_members, take};
use crate::events::members::member_joined_by_invite;
use crate::events::{conversation_event, conversation_joined, user_event};
use crate::store::members::{MAX_ACTIVE_INVITES, creator_may_still_invite, exceeds_cap};
use crate::store::postgres::{commit_with, conversation, next_user_seq, order_writes, refuse};
use crate::store::{Actor, Invite, NewInvite, StoreError, may_invite};

/// The invite columns, as [`invite`] reads them.
macro_rules! invite_columns {
    () => {
        "invite_id, conversation_id, code, created_by, created_at, expires_at, max_uses, \
         use_count, revoked_at"
    };
}

/// "Active at $n": not revoked, not expired, uses left.
macro_rules! active {
    ($at:literal) => {
        concat!(
            "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ",
            $at,
            ") AND (max_uses = 0 OR use_count < max_uses)"
        )
    };
}

/// See [`crate::store::MemberStore::create_invite`].
pub(super) async fn create(
    pool: &PgPool,
    actor: Actor,
    new: &NewInvite,
    at: DateTime<Utc>,
) -> Result<Invite, StoreError> {
    let mut tx = pool.begin().await?;
    // The row lock makes the count below and the insert one step for racing creators.
    let row = sqlx::query(concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM conversations WHERE conversation_id = $1 FOR UPDATE"
    ))
    .bind(new.conversation_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(locked) = row.as_ref().map(conversation).transpose()? else {
        return refuse(tx, StoreError::ConversationNotFound).await;
    };
    let Some(me) = current_member(&mut tx, locked.id, actor.user_id).await? else {
        return refuse(tx, StoreError::ConversationNotFound).await;
    };
    if let Err(refusal) = may_invite(&locked, me.role) {
        return refuse(tx, refusal).await;
    }
    let active: i64 = sqlx::query_scalar(concat!(
        "SELECT count(*) FROM invites WHERE conversation_id = $1 AND ",
        active!("$2")
    ))
    .bind(locked.id)
    .bind(at)
    .fetch_one(&mut *tx)
    .await?;
    if active >= MAX_ACTIVE_INVITES {
        return refuse(tx, StoreError::LimitExceeded("invites")).await;
    }
    let row = sqlx::query(concat!(
        "INSERT INTO invites (invite_id, conversation_id, code, created_by, created_at, \
         expires_at, max_uses) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        invite_columns!()
    ))
    .bind(new.id)
    .bind(new.conversation_id)
    .bind(&new.code)
    .bind(actor.user_id)
    .bind(at)
    .bind(new.expires_at)
    .bind(new.max_uses)
    .fetch_one(&mut *tx)
    .await?;
    let created = invite(&row)?;
    tx.commit().await?;
    Ok(created)
}

/// See [`crate::store::MemberStore::revoke_invite`].
pub(super) async fn revoke(
    pool: &PgPool,
    actor: Actor,
    conversation: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<Invite, StoreError> {
    let mut tx = pool.begin().await?;
    let Some(me) = current_member(&mut tx, conversation, actor.user_id).await? else {
        return refuse(tx, StoreError::ConversationNotFound).await;
    };
    let Some(found) = by_id(&mut tx, conversation, id).await? else {
        return refuse(tx, StoreError::InviteInvalid).await;
    };
    if !(me.role.is_admin() || found.created_by == actor.user_id) {
        return refuse(tx, StoreError::NotAllowed).await;
    }
    let row = sqlx::query(concat!(
        "UPDATE invites SET revoked_at = COALESCE(revoked_at, $2) WHERE invite_id = $1 \
         RETURNING ",
        invite_columns!()
    ))
    .bind(id)
    .bind(at)
    .fetch_one(&mut *tx)
    .await?;
    let revoked = invite(&row)?;
    tx.commit().await?;
    Ok(revoked)
}

/// See [`crate::store::MemberStore::invites`].
pub(super) async fn list(
    pool: &PgPool,
    conversation: Uuid,
    include_inactive: bool,
    before: Option<Uuid>,
    limit: usize,
    at: DateTime<Utc>,
) -> Result<Vec<Invite>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        invite_columns!(),
        " FROM invites WHERE conversation_id = $1 AND ($2 OR (",
        active!("$3"),
        ")) AND ($4::uuid IS NULL OR invite_id < $4) ORDER BY invite_id DESC LIMIT $5"
    ))
    .bind(conversation)
    .bind(include_inactive)
    .bind(at)
    .bind(before)
    .bind(echo_store::sql_limit(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(invite).collect::<Result<_, _>>()?)
}

/// See [`crate::store::MemberStore::join_by_invite`].
pub(super) async fn join(
    pool: &PgPool,
    outbox: &Outbox,
    actor: Actor,
    code: &str,
    at: DateTime<Utc>,
) -> Result<(Uuid, bool), StoreError> {
    let mut tx = pool.begin().await?;
    let found: Option<Uuid> =
        sqlx::query_scalar("SELECT conversation_id FROM invites WHERE code = $1")
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(id) = found else {
        return refuse(tx, StoreError::InviteInvalid).await;
    };
    // Before any write (an invite's conversation never changes, so reading it first is safe).
    order_writes(&mut tx, Some(id), &[actor.user_id]).await?;
    let Some(locked) = take(&mut tx, id, Some(at)).await? else {
        return refuse(tx, StoreError::InviteInvalid).await;
    };
    // Read again under the lock: a join committed meanwhile counts.
    let row = sqlx::query(concat!(
        "SELECT ",
        invite_columns!(),
        " FROM invites WHERE code = $1"
    ))
    .bind(code)
    .fetch_one(&mut *tx)
    .await?;
    let used = invite(&row)?;
    // Already a member: OK whatever became of the code (proto), so before its state.
    if current_member(&mut tx, id, actor.user_id).await?.is_some() {
        tx.rollback().await?;
        return Ok((id, false));
    }
    if let Some(refusal) = used.refusal(at) {
        return refuse(tx, refusal).await;
    }
    let creator = current_member(&mut tx, id, used.created_by).await?;
    if let Err(refusal) = creator_may_still_invite(&locked, creator.as_ref()) {
        return refuse(tx, refusal).await;
    }
    if exceeds_cap(&locked, 1) {
        return refuse(tx, StoreError::LimitExceeded("members")).await;
    }
    sqlx::query("UPDATE invites SET use_count = use_count + 1 WHERE invite_id = $1")
        .bind(used.id)
        .execute(&mut *tx)
        .await?;
    let seq = locked.last_seq;
    let joined = join_members(&mut tx, id, &[actor.user_id], seq, used.created_by, at).await?;
    let joined = joined.first().ok_or(sqlx::Error::RowNotFound)?;
    let after = bump(&mut tx, id, 0, 1).await?;
    let user_seq = next_user_seq(&mut tx, actor.user_id).await?;
    let events = [
        conversation_event(id, seq, at, actor, member_joined_by_invite(joined, used.id)),
        user_event(
            actor.user_id,
            user_seq,
            at,
            Some(actor.device_id),
            conversation_joined(&after, seq),
        ),
    ];
    commit_with(outbox, tx, &events).await?;
    Ok((id, true))
}

/// Invite `id` of `conversation`.
async fn by_id(
    conn: &mut PgConnection,
    conversation: Uuid,
    id: Uuid,
) -> Result<Option<Invite>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        invite_columns!(),
        " FROM invites WHERE invite_id = $1 AND conversation_id = $2"
    ))
    .bind(id)
    .bind(conversation)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(invite).transpose()
}

fn invite(row: &PgRow) -> Result<Invite, sqlx::Error> {
    Ok(Invite {
        id: row.try_get("invite_id")?,
        conversation_id: row.try_get("conversation_id")?,
        code: row.try_get("code")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        max_uses: row.try_get("max_uses")?,
        use_count: row.try_get("use_count")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
