//! [`MemberStore`] on PostgreSQL: every membership change takes the conversation's next seq
//! with `UPDATE conversations … RETURNING` (the row lock held to commit), then reads the
//! actor's and the target's member rows under it; refusals roll the seq back.

mod invites;
mod rows;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::Event;
use echo_proto::echo::message::v1::{JoinMethod, LeaveReason};
use prost::Message as _;
use uuid::Uuid;

use self::rows::{bump, current_member, join, leave_at, lock, set};
use super::conversations::{first_blocked, first_unknown};
use super::{
    PostgresMessageStore, commit_with, conversation, member, next_user_seqs, order_writes, refuse,
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
impl MemberStore for PostgresMessageStore {
    async fn update_conversation(
        &self,
        actor: Actor,
        id: Uuid,
        update: &ConversationUpdate,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        order_writes(&mut tx, Some(id), &[]).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id, Some(at)).await? else {
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
             only_admins_edit_info = $5, only_admins_add_members = $6 \
             WHERE conversation_id = $1 RETURNING ",
            conversation_columns!()
        ))
        .bind(id)
        .bind(&next.title)
        .bind(&next.description)
        .bind(next.avatar.as_ref().map(|a| a.encode_to_vec()))
        .bind(next.only_admins_edit_info)
        .bind(next.only_admins_add_members)
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
        let mut tx = self.db.pool.begin().await?;
        order_writes(&mut tx, Some(id), users).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id, Some(at)).await? else {
            return refuse(tx, StoreError::ConversationNotFound).await;
        };
        if let Err(refusal) = may_invite(&locked, me.role) {
            return refuse(tx, refusal).await;
        }
        let current: Vec<Uuid> = sqlx::query_scalar(
            "SELECT user_id FROM members \
             WHERE conversation_id = $1 AND user_id = ANY($2) AND left_at_seq IS NULL",
        )
        .bind(id)
        .bind(users)
        .fetch_all(&mut *tx)
        .await?;
        let mut joining: Vec<Uuid> = Vec::new();
        for user in users {
            if !current.contains(user) && !joining.contains(user) {
                joining.push(*user);
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
        let first = locked.last_seq;
        let members = join(&mut tx, id, &joining, first, actor.user_id, at).await?;
        let added = i64::try_from(joining.len()).unwrap_or(i64::MAX);
        let after = bump(&mut tx, id, added - 1, added).await?;
        let mut events: Vec<Event> = members
            .iter()
            .map(|m| {
                let kind = member_joined(m, JoinMethod::Added);
                conversation_event(id, m.joined_at_seq, at, actor, kind)
            })
            .collect();
        let user_seqs = next_user_seqs(&mut tx, &joining).await?;
        for m in &members {
            let seq = *user_seqs.get(&m.user_id).ok_or(sqlx::Error::RowNotFound)?;
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
        let mut tx = self.db.pool.begin().await?;
        order_writes(&mut tx, Some(id), &[user]).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id, Some(at)).await? else {
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
        let seq = locked.last_seq;
        leave_at(&mut tx, id, user, seq, at).await?;
        let user_seq = next_user_seqs(&mut tx, &[user]).await?;
        let user_seq = *user_seq.get(&user).ok_or(sqlx::Error::RowNotFound)?;
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
        let mut tx = self.db.pool.begin().await?;
        order_writes(&mut tx, Some(id), &[actor.user_id]).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id, Some(at)).await? else {
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
            .bind(id)
            .bind(actor.user_id)
            .bind(Role::Owner.code())
            .fetch_one(&mut *tx)
            .await?;
            if other_owners == 0 {
                return refuse(tx, StoreError::LastOwner).await;
            }
        }
        let seq = locked.last_seq;
        leave_at(&mut tx, id, actor.user_id, seq, at).await?;
        let user_seq = next_user_seqs(&mut tx, &[actor.user_id]).await?;
        let user_seq = *user_seq
            .get(&actor.user_id)
            .ok_or(sqlx::Error::RowNotFound)?;
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
        let mut tx = self.db.pool.begin().await?;
        order_writes(&mut tx, Some(id), &[]).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id, Some(at)).await? else {
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
        let seq = locked.last_seq;
        let changed = set(&mut tx, id, user, role).await?;
        let mut events = vec![conversation_event(
            id,
            seq,
            at,
            actor,
            member_role_changed(user, target.role, role),
        )];
        if role == Role::Owner {
            // The transfer's second half takes the next seq.
            bump(&mut tx, id, 1, 0).await?;
            set(&mut tx, id, actor.user_id, Role::Admin).await?;
            let kind = member_role_changed(actor.user_id, Role::Owner, Role::Admin);
            events.push(conversation_event(id, seq + 1, at, actor, kind));
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
            "SELECT ",
            member_columns!(),
            " FROM members WHERE conversation_id = $1 AND left_at_seq IS NULL \
               AND ($2::uuid IS NULL OR role IN (1, 2) OR user_id = $2) \
               AND ($3::smallint IS NULL OR (role, joined_at_seq) > ($3, $4)) \
             ORDER BY role, joined_at_seq LIMIT $5"
        ))
        .bind(conversation)
        .bind(admins_and)
        .bind(after.map(|a| a.role))
        .bind(after.map(|a| a.joined_at_seq))
        .bind(echo_store::sql_limit(limit))
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(member).collect::<Result<_, _>>()?)
    }

    async fn create_invite(
        &self,
        actor: Actor,
        new: &NewInvite,
        at: DateTime<Utc>,
    ) -> Result<Invite, StoreError> {
        invites::create(&self.db.pool, actor, new, at).await
    }

    async fn revoke_invite(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Invite, StoreError> {
        invites::revoke(&self.db.pool, actor, conversation, id, at).await
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
            &self.db.pool,
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
        invites::join(&self.db.pool, &self.outbox, actor, code, at).await
    }
}
