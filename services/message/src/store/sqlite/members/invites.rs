//! Invites on SQLite: creating (counted and inserted in one writer transaction), revoking,
//! listing, and joining with a code (the single writer serialises concurrent joins, so uses
//! never pass `max_uses`).

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use echo_store::sqlite_rows::{micros, optional_time, time, uuid};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::{bump, join as join_members, lock};
use crate::events::members::member_joined_by_invite;
use crate::events::{conversation_event, conversation_joined, user_event};
use crate::store::members::{MAX_ACTIVE_INVITES, creator_may_still_invite, exceeds_cap};
use crate::store::sqlite::{begin, commit_with, current_member, next_user_seq, refuse};
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
    writer: &SqlitePool,
    actor: Actor,
    new: &NewInvite,
    at: DateTime<Utc>,
) -> Result<Invite, StoreError> {
    let mut tx = begin(writer).await?;
    let Some((found, me)) = lock(&mut tx, new.conversation_id, actor.user_id).await? else {
        return refuse(tx, StoreError::ConversationNotFound).await;
    };
    if let Err(refusal) = may_invite(&found, me.role) {
        return refuse(tx, refusal).await;
    }
    let active: i64 = sqlx::query_scalar(concat!(
        "SELECT count(*) FROM invites WHERE conversation_id = $1 AND ",
        active!("$2")
    ))
    .bind(found.id.to_string())
    .bind(micros(at))
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
    .bind(new.id.to_string())
    .bind(new.conversation_id.to_string())
    .bind(&new.code)
    .bind(actor.user_id.to_string())
    .bind(micros(at))
    .bind(new.expires_at.map(micros))
    .bind(new.max_uses)
    .fetch_one(&mut *tx)
    .await?;
    let created = invite(&row)?;
    tx.commit().await?;
    Ok(created)
}

/// See [`crate::store::MemberStore::revoke_invite`].
pub(super) async fn revoke(
    writer: &SqlitePool,
    actor: Actor,
    conversation: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<Invite, StoreError> {
    let mut tx = begin(writer).await?;
    let Some(me) = current_member(&mut tx, conversation, actor.user_id).await? else {
        return refuse(tx, StoreError::ConversationNotFound).await;
    };
    let found = sqlx::query(concat!(
        "SELECT ",
        invite_columns!(),
        " FROM invites WHERE invite_id = $1 AND conversation_id = $2"
    ))
    .bind(id.to_string())
    .bind(conversation.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(found) = found.as_ref().map(invite).transpose()? else {
        return refuse(tx, StoreError::InviteInvalid).await;
    };
    if !(me.role.is_admin() || found.created_by == actor.user_id) {
        return refuse(tx, StoreError::NotAllowed).await;
    }
    let row = sqlx::query(concat!(
        "UPDATE invites SET revoked_at = coalesce(revoked_at, $2) WHERE invite_id = $1 \
         RETURNING ",
        invite_columns!()
    ))
    .bind(id.to_string())
    .bind(micros(at))
    .fetch_one(&mut *tx)
    .await?;
    let revoked = invite(&row)?;
    tx.commit().await?;
    Ok(revoked)
}

/// See [`crate::store::MemberStore::invites`].
pub(super) async fn list(
    reader: &SqlitePool,
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
        ")) AND ($4 IS NULL OR invite_id < $4) ORDER BY invite_id DESC LIMIT $5"
    ))
    .bind(conversation.to_string())
    .bind(include_inactive)
    .bind(micros(at))
    .bind(before.map(|id| id.to_string()))
    .bind(echo_store::sql_limit(limit))
    .fetch_all(reader)
    .await?;
    Ok(rows.iter().map(invite).collect::<Result<_, _>>()?)
}

/// See [`crate::store::MemberStore::join_by_invite`].
pub(super) async fn join(
    writer: &SqlitePool,
    outbox: &Outbox,
    actor: Actor,
    code: &str,
    at: DateTime<Utc>,
) -> Result<(Uuid, bool), StoreError> {
    let mut tx = begin(writer).await?;
    let row = sqlx::query(concat!(
        "SELECT ",
        invite_columns!(),
        " FROM invites WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(used) = row.as_ref().map(invite).transpose()? else {
        return refuse(tx, StoreError::InviteInvalid).await;
    };
    let id = used.conversation_id;
    // Already a member: OK whatever became of the code (proto), so before its state.
    if current_member(&mut tx, id, actor.user_id).await?.is_some() {
        tx.rollback().await?;
        return Ok((id, false));
    }
    if let Some(refusal) = used.refusal(at) {
        return refuse(tx, refusal).await;
    }
    let Some(found) = crate::store::sqlite::conversation_by_id(&mut *tx, id).await? else {
        return refuse(tx, StoreError::InviteInvalid).await;
    };
    let creator = current_member(&mut tx, id, used.created_by).await?;
    if let Err(refusal) = creator_may_still_invite(&found, creator.as_ref()) {
        return refuse(tx, refusal).await;
    }
    if exceeds_cap(&found, 1) {
        return refuse(tx, StoreError::LimitExceeded("members")).await;
    }
    sqlx::query("UPDATE invites SET use_count = use_count + 1 WHERE invite_id = $1")
        .bind(used.id.to_string())
        .execute(&mut *tx)
        .await?;
    let after = bump(&mut tx, id, 1, 1, at).await?;
    let seq = after.last_seq;
    let joined = join_members(&mut tx, id, actor.user_id, seq, used.created_by, at).await?;
    let user_seq = next_user_seq(&mut tx, actor.user_id).await?;
    let events = [
        conversation_event(
            id,
            seq,
            at,
            actor,
            member_joined_by_invite(&joined, used.id),
        ),
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

fn invite(row: &SqliteRow) -> Result<Invite, sqlx::Error> {
    Ok(Invite {
        id: uuid(row, "invite_id")?,
        conversation_id: uuid(row, "conversation_id")?,
        code: row.try_get("code")?,
        created_by: uuid(row, "created_by")?,
        created_at: time(row, "created_at")?,
        expires_at: optional_time(row, "expires_at")?,
        max_uses: row.try_get("max_uses")?,
        use_count: row.try_get("use_count")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}
