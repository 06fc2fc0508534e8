//! [`MessageStore`], written once for both backends: every membership change
//! first orders its writes ([`order_writes`]), then takes the conversation's next seq under
//! its row lock ([`lock`]) and reads the actor's and the target's member rows under it,
//! so the rules hold at the moment of the write; refusals roll the seq back. The row steps
//! are in `store_rows.rs`, invites in `store_invites.rs`.

#[path = "store_invites.rs"]
mod invites;

use chrono::{DateTime, Utc};
use echo_bus::Event;
use echo_ids::{ConversationId, UserId};
use echo_proto::echo::message::v1::{JoinMethod, LeaveReason};
use echo_store::{sql_limit, with_db, with_tx};
use uuid::Uuid;

use super::events::{conversation_left, member_left, member_removed, member_role_changed};
use super::rules::{exceeds_cap, may_remove, may_remove_someone, may_set_role};
use super::store_rows::{bump, current_among, join, leave_at, lock, set};
use crate::error::MessageError;
use crate::events::{conversation_event, conversation_joined, member_joined, user_event};
use crate::store::MessageStore;
use crate::store::codec::{
    Id, MemberRow, commit_with, current_member, decode_all, first_blocked, first_unknown,
    member_columns, next_user_seq, next_user_seqs, order_writes, refuse,
};
use crate::store::{Actor, Invite, Kind, Member, MemberPosition, NewInvite, Role, may_invite};

impl MessageStore {
    /// Adds `users` (distinct) to `conversation` as MEMBERs, added by `actor`, all or nothing:
    /// `ConversationNotFound` unless `actor` is a current member; `NotAllowed` per
    /// [`may_invite`]; users already members are skipped; of the others, `UserNotFound` when
    /// one is unknown or deleted, `Blocked` when a block stands between one and the actor
    /// (either way), `LimitExceeded("members")` past [`member_cap`](super::rules::member_cap). Each added user takes the
    /// next seq in order (a MemberJoined, method ADDED) and a user seq (ConversationJoined, no
    /// device); a former member's row is reused: new join seq, read watermark at it, counters
    /// and private settings reset, the delivery receipts of the earlier membership deleted.
    /// The refusals name the first offending user in `users` order (`UserNotFound(Some(u))`,
    /// `Blocked(Some(u))`). Returns the added members in order (none: no seq, no event).
    pub async fn add_members(
        &self,
        actor: Actor,
        id: ConversationId,
        users: &[UserId],
        at: DateTime<Utc>,
    ) -> Result<Vec<Member>, MessageError> {
        let mut tx = self.db.begin().await?;
        order_writes(&mut tx, &[id], users).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id, at).await? else {
            return refuse(tx, MessageError::ConversationNotFound).await;
        };
        if let Err(refusal) = may_invite(&locked, me.role) {
            return refuse(tx, refusal).await;
        }
        let current = current_among(&mut tx, id, users).await?;
        let mut joining: Vec<UserId> = Vec::new();
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
            Some(MessageError::UserNotFound(Some(unknown)))
        } else if let Some(blocked) = first_blocked(&mut tx, actor.user_id, &joining).await? {
            Some(MessageError::Blocked(Some(blocked)))
        } else if exceeds_cap(&locked, joining.len()) {
            Some(MessageError::LimitExceeded("members"))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return refuse(tx, refusal).await;
        }
        // The first joiner takes the seq `lock` took, the others the next ones in order.
        let first = locked.last_seq;
        let members = join(&mut tx, id, &joining, first, actor.user_id, at).await?;
        let added = i32::try_from(joining.len()).unwrap_or(i32::MAX);
        let after = bump(&mut tx, id, i64::from(added) - 1, added).await?;
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

    /// Removes `user` (not `actor`: `NotAllowed`) from `conversation`: `ConversationNotFound`
    /// unless `actor` is a current member; `NotAllowed` in a DIRECT conversation, for a MEMBER,
    /// or per [`may_remove`]; `user` not a current member: 0 (no seq, no event). Otherwise the
    /// next seq (MemberRemoved) is their `left_at_seq`, the member count drops, and they get
    /// ConversationLeft (reason REMOVED, no device). Returns the seq.
    pub async fn remove_member(
        &self,
        actor: Actor,
        id: ConversationId,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<i64, MessageError> {
        let mut tx = self.db.begin().await?;
        order_writes(&mut tx, &[id], &[user]).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id, at).await? else {
            return refuse(tx, MessageError::ConversationNotFound).await;
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

    /// `actor` leaves `conversation`: `ConversationNotFound` unless a current member;
    /// `NotAllowed` in a DIRECT conversation; `LastOwner` for the only OWNER while others
    /// remain (the last member may leave). The next seq (MemberLeft) is their `left_at_seq`;
    /// they get ConversationLeft (reason LEFT, their device). Returns the seq.
    pub async fn leave(
        &self,
        actor: Actor,
        id: ConversationId,
        at: DateTime<Utc>,
    ) -> Result<i64, MessageError> {
        let mut tx = self.db.begin().await?;
        order_writes(&mut tx, &[id], &[actor.user_id]).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id, at).await? else {
            return refuse(tx, MessageError::ConversationNotFound).await;
        };
        if locked.kind == Kind::Direct {
            return refuse(tx, MessageError::NotAllowed).await;
        }
        if me.role == Role::Owner && locked.member_count > 1 {
            let other_owners: i64 = with_tx!(&mut tx, |c| {
                sqlx::query_scalar(
                    "SELECT count(*) FROM members WHERE conversation_id = $1 AND user_id <> $2 \
                       AND role = $3 AND left_at_seq IS NULL",
                )
                .bind(Id(id.into()))
                .bind(Id(actor.user_id.into()))
                .bind(Role::Owner.code())
                .fetch_one(c)
                .await
            })?;
            if other_owners == 0 {
                return refuse(tx, MessageError::LastOwner).await;
            }
        }
        let seq = locked.last_seq;
        leave_at(&mut tx, id, actor.user_id, seq, at).await?;
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

    /// Sets `user`'s role in `conversation` as `actor`: `ConversationNotFound` unless `actor`
    /// is a current member; `NotAllowed` in a DIRECT conversation, unless `actor` is the
    /// OWNER, or for `actor` themselves; `UserNotFound` unless `user` is a current member.
    /// The same role: no seq, no event. OWNER transfers ownership: `user` becomes OWNER (seq
    /// n) and `actor` ADMIN (seq n + 1), one MemberRoleChanged each in that order; other roles
    /// one MemberRoleChanged. Returns `user`'s row after.
    pub async fn set_role(
        &self,
        actor: Actor,
        id: ConversationId,
        user: UserId,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<Member, MessageError> {
        let mut tx = self.db.begin().await?;
        order_writes(&mut tx, &[id], &[]).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id, at).await? else {
            return refuse(tx, MessageError::ConversationNotFound).await;
        };
        if let Err(refusal) = may_set_role(locked.kind, me.role, actor.user_id, user) {
            return refuse(tx, refusal).await;
        }
        let Some(target) = current_member(&mut tx, id, user).await? else {
            return refuse(tx, MessageError::UserNotFound(None)).await;
        };
        if target.role == role {
            tx.rollback().await?;
            return Ok(target);
        }
        let seq = locked.last_seq;
        let changed = set(&mut tx, id, user, role).await?;
        let kind = member_role_changed(user, target.role, role);
        let mut events = vec![conversation_event(id, seq, at, actor, kind)];
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

    /// Current members of `conversation` by role (OWNER, ADMIN, MEMBER) then join seq, after
    /// `after`, at most `limit`; with `admins_and` Some(user), only OWNERs, ADMINs and that user.
    pub async fn members(
        &self,
        conversation: ConversationId,
        admins_and: Option<UserId>,
        after: Option<&MemberPosition>,
        limit: usize,
    ) -> Result<Vec<Member>, MessageError> {
        let rows: Vec<MemberRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                member_columns!(),
                " FROM members WHERE conversation_id = $1 AND left_at_seq IS NULL \
                   AND ($2 IS NULL OR role IN (1, 2) OR user_id = $2) \
                   AND ($3 IS NULL OR (role, joined_at_seq) > ($3, $4)) \
                 ORDER BY role, joined_at_seq LIMIT $5"
            ))
            .bind(Id(conversation.into()))
            .bind(admins_and.map(|user| Id(user.into())))
            .bind(after.map(|a| a.role))
            .bind(after.map(|a| a.joined_at_seq))
            .bind(sql_limit(limit))
            .fetch_all(c)
            .await
        })?;
        Ok(decode_all(rows)?)
    }

    /// Stores `new` as `actor`'s invite, under the conversation's lock: `ConversationNotFound`
    /// unless `actor` is a current member; `NotAllowed` per [`may_invite`];
    /// `LimitExceeded("invites")` when [`MAX_ACTIVE_INVITES`](super::rules::MAX_ACTIVE_INVITES) are active at `at`. No event.
    pub async fn create_invite(
        &self,
        actor: Actor,
        new: &NewInvite,
        at: DateTime<Utc>,
    ) -> Result<Invite, MessageError> {
        invites::create(self, actor, new, at).await
    }

    /// Revokes invite `id` of `conversation` (idempotent: the first revocation time stays):
    /// `ConversationNotFound` unless `actor` is a current member; `InviteInvalid` when the
    /// conversation has no such invite; `NotAllowed` unless `actor` is OWNER/ADMIN or created
    /// it. No event. Returns the invite after.
    pub async fn revoke_invite(
        &self,
        actor: Actor,
        conversation: ConversationId,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Invite, MessageError> {
        invites::revoke(self, actor, conversation, id, at).await
    }

    /// Invites of `conversation`, newest first (by id), with ids below `before`, at most
    /// `limit`; only those active at `at` unless `include_inactive`.
    pub async fn invites(
        &self,
        conversation: ConversationId,
        include_inactive: bool,
        before: Option<Uuid>,
        limit: usize,
        at: DateTime<Utc>,
    ) -> Result<Vec<Invite>, MessageError> {
        invites::list(self, conversation, include_inactive, before, limit, at).await
    }

    /// `actor` joins the conversation of invite `code` as MEMBER, under the conversation's
    /// lock (so uses never pass `max_uses`), checked in this order: `InviteInvalid` when no
    /// invite has this code; `actor` already a current member: (conversation, false), nothing
    /// written, whatever the invite's state (revoked, used up, expired); `InviteInvalid` when
    /// it is revoked or used up; `InviteExpired` past its expiry; `InviteInvalid` when its
    /// creator is no longer a current member or no longer allowed to invite under the current
    /// settings (see [`creator_may_still_invite`](super::rules::creator_may_still_invite)); `LimitExceeded("members")` past
    /// [`member_cap`](super::rules::member_cap). Otherwise the next seq (MemberJoined, method INVITE with the invite id,
    /// added by the invite's creator), the use count + 1, a user seq (ConversationJoined,
    /// actor's device); a former member's row is reused as in `add_members`. Returns the
    /// conversation and true.
    pub async fn join_by_invite(
        &self,
        actor: Actor,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<(ConversationId, bool), MessageError> {
        invites::join(self, actor, code, at).await
    }
}
