//! Invites, written once for both backends: creating (counted under the conversation's row
//! lock), revoking, listing, and joining with a code (under the conversation's seq lock, so
//! concurrent joins with one code see each other's use count and never pass `max_uses`).

use chrono::{DateTime, Utc};
use echo_ids::ConversationId;
use echo_store::{Tx, sql_limit, with_db, with_tx};
use uuid::Uuid;

use crate::error::MessageError;
use crate::events::{conversation_event, conversation_joined, user_event};
use crate::members::events::member_joined_by_invite;
use crate::members::rules::{MAX_ACTIVE_INVITES, creator_may_still_invite, exceeds_cap};
use crate::members::store_rows::{bump, join as join_members, take};
use crate::store::MessageStore;
use crate::store::codec::{
    At, ConversationRow, Id, commit_with, conversation_columns, current_member, decode_all,
    for_update, next_user_seq, order_writes, refuse,
};
use crate::store::{Actor, Conversation, Invite, NewInvite, may_invite};

/// The invite columns, in [`InviteRow`]'s order.
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

/// An `invites` row as stored (select [`invite_columns!`]).
#[derive(sqlx::FromRow)]
struct InviteRow {
    invite_id: Id,
    conversation_id: Id,
    code: String,
    created_by: Id,
    created_at: At,
    expires_at: Option<At>,
    max_uses: i32,
    use_count: i32,
    revoked_at: Option<At>,
}

impl TryFrom<InviteRow> for Invite {
    type Error = sqlx::Error;

    fn try_from(row: InviteRow) -> Result<Self, sqlx::Error> {
        Ok(Invite {
            id: row.invite_id.0,
            conversation_id: row.conversation_id.0.into(),
            code: row.code,
            created_by: row.created_by.0.into(),
            created_at: row.created_at.0,
            expires_at: row.expires_at.map(|at| at.0),
            max_uses: row.max_uses,
            use_count: row.use_count,
            revoked_at: row.revoked_at.map(|at| at.0),
        })
    }
}

/// See [`crate::store::MessageStore::create_invite`].
pub(super) async fn create(
    store: &MessageStore,
    actor: Actor,
    new: &NewInvite,
    at: DateTime<Utc>,
) -> Result<Invite, MessageError> {
    let mut tx = store.db.begin().await?;
    // The row lock makes the count below and the insert one step for racing creators (on
    // SQLite the single writer does).
    let sql = for_update(
        &tx,
        concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE conversation_id = $1"
        ),
    );
    let row: Option<ConversationRow> = with_tx!(&mut tx, |c| {
        sqlx::query_as(sql)
            .bind(Id(new.conversation_id.into()))
            .fetch_optional(c)
            .await
    })?;
    let Some(locked) = row.map(Conversation::try_from).transpose()? else {
        return refuse(tx, MessageError::ConversationNotFound).await;
    };
    let Some(me) = current_member(&mut tx, locked.id, actor.user_id).await? else {
        return refuse(tx, MessageError::ConversationNotFound).await;
    };
    if let Err(refusal) = may_invite(&locked, me.role) {
        return refuse(tx, refusal).await;
    }
    let active: i64 = with_tx!(&mut tx, |c| {
        sqlx::query_scalar(concat!(
            "SELECT count(*) FROM invites WHERE conversation_id = $1 AND ",
            active!("$2")
        ))
        .bind(Id(locked.id.into()))
        .bind(At(at))
        .fetch_one(c)
        .await
    })?;
    if active >= MAX_ACTIVE_INVITES {
        return refuse(tx, MessageError::LimitExceeded("invites")).await;
    }
    let row: InviteRow = with_tx!(&mut tx, |c| {
        sqlx::query_as(concat!(
            "INSERT INTO invites (invite_id, conversation_id, code, created_by, created_at, \
             expires_at, max_uses) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            invite_columns!()
        ))
        .bind(Id(new.id))
        .bind(Id(new.conversation_id.into()))
        .bind(&new.code)
        .bind(Id(actor.user_id.into()))
        .bind(At(at))
        .bind(new.expires_at.map(At))
        .bind(new.max_uses)
        .fetch_one(c)
        .await
    })?;
    let created = Invite::try_from(row)?;
    tx.commit().await?;
    Ok(created)
}

/// See [`crate::store::MessageStore::revoke_invite`].
pub(super) async fn revoke(
    store: &MessageStore,
    actor: Actor,
    conversation: ConversationId,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<Invite, MessageError> {
    let mut tx = store.db.begin().await?;
    let Some(me) = current_member(&mut tx, conversation, actor.user_id).await? else {
        return refuse(tx, MessageError::ConversationNotFound).await;
    };
    let found: Option<InviteRow> = with_tx!(&mut tx, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            invite_columns!(),
            " FROM invites WHERE invite_id = $1 AND conversation_id = $2"
        ))
        .bind(Id(id))
        .bind(Id(conversation.into()))
        .fetch_optional(c)
        .await
    })?;
    let Some(found) = found.map(Invite::try_from).transpose()? else {
        return refuse(tx, MessageError::InviteInvalid).await;
    };
    if !(me.role.is_admin() || found.created_by == actor.user_id) {
        return refuse(tx, MessageError::NotAllowed).await;
    }
    let row: InviteRow = with_tx!(&mut tx, |c| {
        sqlx::query_as(concat!(
            "UPDATE invites SET revoked_at = COALESCE(revoked_at, $2) WHERE invite_id = $1 \
             RETURNING ",
            invite_columns!()
        ))
        .bind(Id(id))
        .bind(At(at))
        .fetch_one(c)
        .await
    })?;
    let revoked = Invite::try_from(row)?;
    tx.commit().await?;
    Ok(revoked)
}

/// See [`crate::store::MessageStore::invites`].
pub(super) async fn list(
    store: &MessageStore,
    conversation: ConversationId,
    include_inactive: bool,
    before: Option<Uuid>,
    limit: usize,
    at: DateTime<Utc>,
) -> Result<Vec<Invite>, MessageError> {
    let rows: Vec<InviteRow> = with_db!(&store.db, read, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            invite_columns!(),
            " FROM invites WHERE conversation_id = $1 AND ($2 OR (",
            active!("$3"),
            ")) AND ($4 IS NULL OR invite_id < $4) ORDER BY invite_id DESC LIMIT $5"
        ))
        .bind(Id(conversation.into()))
        .bind(include_inactive)
        .bind(At(at))
        .bind(before.map(Id))
        .bind(sql_limit(limit))
        .fetch_all(c)
        .await
    })?;
    Ok(decode_all(rows)?)
}

/// See [`crate::store::MessageStore::join_by_invite`].
pub(super) async fn join(
    store: &MessageStore,
    actor: Actor,
    code: &str,
    at: DateTime<Utc>,
) -> Result<(ConversationId, bool), MessageError> {
    let mut tx = store.db.begin().await?;
    let found: Option<Id> = with_tx!(&mut tx, |c| {
        sqlx::query_scalar("SELECT conversation_id FROM invites WHERE code = $1")
            .bind(code)
            .fetch_optional(c)
            .await
    })?;
    let Some(Id(id)) = found else {
        return refuse(tx, MessageError::InviteInvalid).await;
    };
    let id = ConversationId::from(id);
    // Before any write (an invite's conversation never changes, so reading it first is safe).
    order_writes(&mut tx, &[id], &[actor.user_id]).await?;
    let Some(locked) = take(&mut tx, id, Some(at)).await? else {
        return refuse(tx, MessageError::InviteInvalid).await;
    };
    // Read again under the lock: a join committed meanwhile counts.
    let used = by_code(&mut tx, code).await?;
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
        return refuse(tx, MessageError::LimitExceeded("members")).await;
    }
    with_tx!(&mut tx, |c| {
        sqlx::query("UPDATE invites SET use_count = use_count + 1 WHERE invite_id = $1")
            .bind(Id(used.id))
            .execute(c)
            .await
            .map(drop)
    })?;
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
    commit_with(&store.outbox, tx, &events).await?;
    Ok((id, true))
}

/// The invite with `code` (which the caller found in this transaction).
async fn by_code(tx: &mut Tx, code: &str) -> Result<Invite, sqlx::Error> {
    let row: InviteRow = with_tx!(tx, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            invite_columns!(),
            " FROM invites WHERE code = $1"
        ))
        .bind(code)
        .fetch_one(c)
        .await
    })?;
    Invite::try_from(row)
}
