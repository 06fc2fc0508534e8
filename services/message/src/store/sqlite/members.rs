//! [`MemberStore`] on SQLite: every write runs in one `BEGIN IMMEDIATE` transaction on the
//! single writer, so the membership and role checks still hold when the write commits.

mod invites;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::Event;
use echo_proto::echo::message::v1::{JoinMethod, LeaveReason};
use prost::Message as _;
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::conversations::{first_blocked, first_unknown};
use super::{
    SqliteMessageStore, begin, commit_with, conversation, current_member, member, micros,
    next_user_seq, refuse,
};
use crate::events::members::{
    conversation_left, conversation_updated, member_left, member_removed, member_role_changed,
};
use crate::events::{conversation_event, conversation_joined, member_joined, user_event};
use crate::store::members::{
    exceeds_cap, may_remove, may_remove_someone, may_set_role, may_update,
};
use crate::store::{
    Actor, Conversation, ConversationUpdate, Invite, Kind, Member, MemberPosition, MemberStore,
    NewInvite, Role, StoreError, may_invite,
};

#[async_trait]
impl MemberStore for SqliteMessageStore {
    async fn update_conversation(
        &self,
        actor: Actor,
        id: Uuid,
        update: &ConversationUpdate,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, StoreError> {
        let mut tx = begin(&self.db.writer).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id).await? else {
            return refuse(tx, StoreError::ConversationNotFound).await;
        };
        if let Err(refusal) = may_update(&locked, me.role, update) {
            return refuse(tx, refusal).await;
        }
        let (next, paths) = update.apply(&locked);
        if paths.is_empty() {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = sqlx::query(concat!(
            "UPDATE conversations SET title = $2, description = $3, avatar = $4, \
             only_admins_edit_info = $5, only_admins_add_members = $6, \
             last_seq = last_seq + 1, last_activity_at = $7 \
             WHERE conversation_id = $1 RETURNING conversation_id, ",
            conversation_fields!()
        ))
        .bind(id.to_string())
        .bind(&next.title)
        .bind(&next.description)
        .bind(next.avatar.as_ref().map(|a| a.encode_to_vec()))
        .bind(next.only_admins_edit_info)
        .bind(next.only_admins_add_members)
        .bind(micros(at))
        .fetch_one(&mut *tx)
        .await?;
        let updated = conversation(&row)?;
        let kind = conversation_updated(&updated, &paths);
        let event = conversation_event(id, updated.last_seq, at, actor, kind);
        commit_with(&self.outbox, tx, &[event]).await?;
        Ok(Some(updated))
    }

    async fn add_members(
        &self,
        actor: Actor,
        id: Uuid,
        users: &[Uuid],
        at: DateTime<Utc>,
    ) -> Result<Vec<Member>, StoreError> {
        let mut tx = begin(&self.db.writer).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id).await? else {
            return refuse(tx, StoreError::ConversationNotFound).await;
        };
        if let Err(refusal) = may_invite(&locked, me.role) {
            return refuse(tx, refusal).await;
        }
        let mut joining: Vec<Uuid> = Vec::new();
        for &user in users {
            if !joining.contains(&user) && current_member(&mut tx, id, user).await?.is_none() {
                joining.push(user);
            }
        }
        if joining.is_empty() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let refusal = if let Some(unknown) = first_unknown(&mut tx, &joining).await? {
            Some(StoreError::UserNotFound(Some(unknown)))
        } else if let Some(blocked) = first_blocked(&mut tx, actor.user_id, &joining).await? {
            Some(StoreError::Blocked(Some(blocked)))
        } else if exceeds_cap(&locked, joining.len()) {
            Some(StoreError::LimitExceeded("members"))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return refuse(tx, refusal).await;
        }
        let mut members = Vec::with_capacity(joining.len());
        let mut after = locked;
        for &user in &joining {
            after = bump(&mut tx, id, 1, 1, at).await?;
            members.push(join(&mut tx, id, user, after.last_seq, actor.user_id, at).await?);
        }
        let mut events: Vec<Event> = members
            .iter()
            .map(|m| {
                let kind = member_joined(m, JoinMethod::Added);
                conversation_event(id, m.joined_at_seq, at, actor, kind)
            })
            .collect();
        for m in &members {
            let seq = next_user_seq(&mut tx, m.user_id).await?;
            let kind = conversation_joined(&after, m.joined_at_seq);
            events.push(user_event(m.user_id, seq, at, None, kind));
        }
        commit_with(&self.outbox, tx, &events).await?;
        Ok(members)
    }

    async fn remove_member(
        &self,
        actor: Actor,
        id: Uuid,
        user: Uuid,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = begin(&self.db.writer).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id).await? else {
            return refuse(tx, StoreError::ConversationNotFound).await;
        };
        if let Err(refusal) = may_remove_someone(locked.kind, me.role, actor.user_id, user) {
            return refuse(tx, refusal).await;
        }
        let Some(target) = current_member(&mut tx, id, user).await? else {
            tx.rollback().await?;
            return Ok(0);
        };
        if let Err(refusal) = may_remove(me.role, target.role) {
            return refuse(tx, refusal).await;
        }
        let seq = leave_now(&mut tx, id, user, at).await?;
        let user_seq = next_user_seq(&mut tx, user).await?;
        let events = [
            conversation_event(id, seq, at, actor, member_removed(user)),
            user_event(
                user,
                user_seq,
                at,
                None,
                conversation_left(id, seq, LeaveReason::Removed),
            ),
        ];
        commit_with(&self.outbox, tx, &events).await?;
        Ok(seq)
    }

    async fn leave(&self, actor: Actor, id: Uuid, at: DateTime<Utc>) -> Result<i64, StoreError> {
        let mut tx = begin(&self.db.writer).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id).await? else {
            return refuse(tx, StoreError::ConversationNotFound).await;
        };
        if locked.kind == Kind::Direct {
            return refuse(tx, StoreError::NotAllowed).await;
        }
        if me.role == Role::Owner && locked.member_count > 1 {
            let other_owners: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM members WHERE conversation_id = $1 AND user_id <> $2 \
                   AND role = $3 AND left_at_seq IS NULL",
            )
            .bind(id.to_string())
            .bind(actor.user_id.to_string())
            .bind(Role::Owner.code())
            .fetch_one(&mut *tx)
            .await?;
            if other_owners == 0 {
                return refuse(tx, StoreError::LastOwner).await;
            }
        }
        let seq = leave_now(&mut tx, id, actor.user_id, at).await?;
        let user_seq = next_user_seq(&mut tx, actor.user_id).await?;
        let events = [
            conversation_event(id, seq, at, actor, member_left(actor.user_id)),
            user_event(
                actor.user_id,
                user_seq,
                at,
                Some(actor.device_id),
                conversation_left(id, seq, LeaveReason::Left),
            ),
        ];
        commit_with(&self.outbox, tx, &events).await?;
        Ok(seq)
    }

    async fn set_role(
        &self,
        actor: Actor,
        id: Uuid,
        user: Uuid,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<Member, StoreError> {
        let mut tx = begin(&self.db.writer).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id).await? else {
            return refuse(tx, StoreError::ConversationNotFound).await;
        };
        if let Err(refusal) = may_set_role(locked.kind, me.role, actor.user_id, user) {
            return refuse(tx, refusal).await;
        }
        let Some(target) = current_member(&mut tx, id, user).await? else {
            return refuse(tx, StoreError::UserNotFound(None)).await;
        };
        if target.role == role {
            tx.rollback().await?;
            return Ok(target);
        }
        let seq = bump(&mut tx, id, 1, 0, at).await?.last_seq;
        let changed = set(&mut tx, id, user, role).await?;
        let kind = member_role_changed(user, target.role, role);
        let mut events = vec![conversation_event(id, seq, at, actor, kind)];
        if role == Role::Owner {
            // The transfer's second half takes the next seq.
            let seq = bump(&mut tx, id, 1, 0, at).await?.last_seq;
            set(&mut tx, id, actor.user_id, Role::Admin).await?;
            let kind = member_role_changed(actor.user_id, Role::Owner, Role::Admin);
            events.push(conversation_event(id, seq, at, actor, kind));
        }
        commit_with(&self.outbox, tx, &events).await?;
        Ok(changed)
    }

    async fn members(
        &self,
        conversation: Uuid,
        admins_and: Option<Uuid>,
        after: Option<&MemberPosition>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT conversation_id, ",
            member_fields!(),
            " FROM members WHERE conversation_id = $1 AND left_at_seq IS NULL \
               AND ($2 IS NULL OR role IN (1, 2) OR user_id = $2) \
               AND ($3 IS NULL OR (role, joined_at_seq) > ($3, $4)) \
             ORDER BY role, joined_at_seq LIMIT $5"
        ))
        .bind(conversation.to_string())
        .bind(admins_and.map(|u| u.to_string()))
        .bind(after.map(|a| a.role))
        .bind(after.map(|a| a.joined_at_seq))
        .bind(echo_store::sql_limit(limit))
        .fetch_all(&self.db.reader)
        .await?;
        Ok(rows.iter().map(member).collect::<Result<_, _>>()?)
    }

    async fn create_invite(
        &self,
        actor: Actor,
        new: &NewInvite,
        at: DateTime<Utc>,
    ) -> Result<Invite, StoreError> {
        invites::create(&self.db.writer, actor, new, at).await
    }

    async fn revoke_invite(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Invite, StoreError> {
        invites::revoke(&self.db.writer, actor, conversation, id, at).await
    }

    async fn invites(
        &self,
        conversation: Uuid,
        include_inactive: bool,
        before: Option<Uuid>,
        limit: usize,
        at: DateTime<Utc>,
    ) -> Result<Vec<Invite>, StoreError> {
        invites::list(
            &self.db.reader,
            conversation,
            include_inactive,
            before,
            limit,
            at,
        )
        .await
    }

    async fn join_by_invite(
        &self,
        actor: Actor,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<(Uuid, bool), StoreError> {
        invites::join(&self.db.writer, &self.outbox, actor, code, at).await
    }
}

/// Conversation `id` and `user`'s current member row (the writer is held, so neither changes
/// before commit); None when either is missing (a non-member learns nothing).
async fn lock(
    conn: &mut SqliteConnection,
    id: Uuid,
    user: Uuid,
) -> Result<Option<(Conversation, Member)>, sqlx::Error> {
    let Some(found) = super::conversation_by_id(&mut *conn, id).await? else {
        return Ok(None);
    };
    Ok(current_member(conn, id, user).await?.map(|m| (found, m)))
}

/// Takes `seqs` more seqs (0 or 1) and changes the member count by `members`; a sequenced
/// change moves the conversation up in lists. The conversation after.
async fn bump(
    conn: &mut SqliteConnection,
    id: Uuid,
    seqs: i64,
    members: i64,
    at: DateTime<Utc>,
) -> Result<Conversation, sqlx::Error> {
    let row = sqlx::query(concat!(
        "UPDATE conversations SET last_seq = last_seq + $2, member_count = member_count + $3, \
           last_activity_at = CASE WHEN $2 > 0 THEN $4 ELSE last_activity_at END \
         WHERE conversation_id = $1 RETURNING conversation_id, ",
        conversation_fields!()
    ))
    .bind(id.to_string())
    .bind(seqs)
    .bind(members)
    .bind(micros(at))
    .fetch_one(conn)
    .await?;
    conversation(&row)
}

/// Makes `user` a current MEMBER joining at `seq`, added by `added_by`: a new row, or a
/// former member's row reset (watermark at the join, counters and private settings cleared,
/// the delivery receipts of the earlier membership deleted), with a new membership period
/// from `seq`.
async fn join(
    conn: &mut SqliteConnection,
    id: Uuid,
    user: Uuid,
    seq: i64,
    added_by: Uuid,
    at: DateTime<Utc>,
) -> Result<Member, sqlx::Error> {
    let row = sqlx::query(concat!(
        "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_at_seq, \
           added_by, last_read_seq) VALUES ($1, $2, $3, $4, $5, $6, $5) \
         ON CONFLICT (conversation_id, user_id) DO UPDATE SET \
           role = excluded.role, joined_at = excluded.joined_at, \
           joined_at_seq = excluded.joined_at_seq, added_by = excluded.added_by, \
           left_at_seq = NULL, last_read_seq = excluded.last_read_seq, read_at = NULL, \
           unread_count = 0, mention_count = 0, mute_until = NULL, pinned_at = NULL, \
           archived = 0 \
         RETURNING conversation_id, ",
        member_fields!()
    ))
    .bind(id.to_string())
    .bind(user.to_string())
    .bind(Role::Member.code())
    .bind(micros(at))
    .bind(seq)
    .bind(added_by.to_string())
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM device_receipts WHERE conversation_id = $1 AND user_id = $2")
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO member_periods (conversation_id, user_id, from_seq) VALUES ($1, $2, $3)",
    )
    .bind(id.to_string())
    .bind(user.to_string())
    .bind(seq)
    .execute(conn)
    .await?;
    member(&row)
}

/// Takes the next seq, ends `user`'s membership at it (their open period closes there, at
/// `at`) and drops the member count; the seq.
async fn leave_now(
    conn: &mut SqliteConnection,
    id: Uuid,
    user: Uuid,
    at: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let seq = bump(&mut *conn, id, 1, -1, at).await?.last_seq;
    sqlx::query("UPDATE members SET left_at_seq = $3 WHERE conversation_id = $1 AND user_id = $2")
        .bind(id.to_string())
        .bind(user.to_string())
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE member_periods SET until_seq = $3, closed_at = $4 \
         WHERE conversation_id = $1 AND user_id = $2 AND until_seq IS NULL",
    )
    .bind(id.to_string())
    .bind(user.to_string())
    .bind(seq)
    .bind(micros(at))
    .execute(conn)
    .await?;
    Ok(seq)
}

/// Sets `user`'s role; their row after.
async fn set(
    conn: &mut SqliteConnection,
    id: Uuid,
    user: Uuid,
    role: Role,
) -> Result<Member, sqlx::Error> {
    let row = sqlx::query(concat!(
        "UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = $2 \
         RETURNING conversation_id, ",
        member_fields!()
    ))
    .bind(id.to_string())
    .bind(user.to_string())
    .bind(role.code())
    .fetch_one(conn)
    .await?;
    member(&row)
}
