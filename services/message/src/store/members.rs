//! The membership part of the storage seam: changes to a conversation's shared fields, adding,
//! removing and leaving, roles, listing members, and invites.
//!
//! Every membership change takes the conversation's next seq under its row lock (one seq per
//! event: a MemberJoined per added user, two MemberRoleChanged for an ownership transfer) and
//! moves the conversation up in its members' lists. Membership and roles are read under that
//! lock, so the rules below hold at the moment of the write. Invites are not sequenced (no
//! member sees an event for them); a join by invite is (MemberJoined).
//!
//! Member rows of former members stay (`left_at_seq` set), so reads know where their view
//! ended; a former member who joins again gets the same row back with a new `joined_at_seq`
//! and everything private reset (read state, counters, settings).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_proto::echo::common::v1::Media;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Actor, Conversation, Kind, Member, Role, StoreError};

/// Most members of a GROUP (conversation.proto: "Up to 1024 members").
pub const MAX_GROUP_MEMBERS: i32 = 1024;
/// Most members of a CHANNEL (conversation.proto: "Up to 100000 members").
pub const MAX_CHANNEL_MEMBERS: i32 = 100_000;
/// Most active (not revoked, expired or used up) invites of one conversation.
pub const MAX_ACTIVE_INVITES: i64 = 100;

/// The member cap of a conversation of `kind` (a DIRECT one has its two users, no more).
pub fn member_cap(kind: Kind) -> i32 {
    match kind {
        Kind::Direct => 2,
        Kind::Group => MAX_GROUP_MEMBERS,
        Kind::Channel => MAX_CHANNEL_MEMBERS,
    }
}

/// New values for a conversation's shared fields; None leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConversationUpdate {
    /// A new title (not blank).
    pub title: Option<String>,
    /// A new description ('' clears it).
    pub description: Option<String>,
    /// A new avatar (Some(None) clears it).
    pub avatar: Option<Option<Media>>,
    /// A new `only_admins_edit_info`.
    pub only_admins_edit_info: Option<bool>,
    /// A new `only_admins_add_members`.
    pub only_admins_add_members: Option<bool>,
}

impl ConversationUpdate {
    /// Whether it names a setting (OWNER/ADMIN only).
    pub fn touches_settings(&self) -> bool {
        self.only_admins_edit_info.is_some() || self.only_admins_add_members.is_some()
    }

    /// Whether it names title, description or avatar.
    pub fn touches_info(&self) -> bool {
        self.title.is_some() || self.description.is_some() || self.avatar.is_some()
    }

    /// `conversation` with the update applied, and the paths of the fields that really
    /// changed (`title`, `description`, `avatar`, `settings`; empty: nothing to do).
    pub fn apply(&self, conversation: &Conversation) -> (Conversation, Vec<&'static str>) {
        let mut next = conversation.clone();
        let mut paths = Vec::new();
        if let Some(title) = &self.title
            && *title != next.title
        {
            next.title.clone_from(title);
            paths.push("title");
        }
        if let Some(description) = &self.description
            && *description != next.description
        {
            next.description.clone_from(description);
            paths.push("description");
        }
        if let Some(avatar) = &self.avatar
            && *avatar != next.avatar
        {
            next.avatar.clone_from(avatar);
            paths.push("avatar");
        }
        let before = (next.only_admins_edit_info, next.only_admins_add_members);
        if let Some(value) = self.only_admins_edit_info {
            next.only_admins_edit_info = value;
        }
        if let Some(value) = self.only_admins_add_members {
            next.only_admins_add_members = value;
        }
        if before != (next.only_admins_edit_info, next.only_admins_add_members) {
            paths.push("settings");
        }
        (next, paths)
    }
}

/// Whether a member with `role` may apply `update` to `conversation`: not in a DIRECT one;
/// settings OWNER/ADMIN only; info OWNER/ADMIN, or anyone when `only_admins_edit_info` is off.
pub fn may_update(
    conversation: &Conversation,
    role: Role,
    update: &ConversationUpdate,
) -> Result<(), StoreError> {
    let info_ok = role.is_admin() || !conversation.only_admins_edit_info;
    let settings_ok = role.is_admin();
    if conversation.kind == Kind::Direct
        || (update.touches_info() && !info_ok)
        || (update.touches_settings() && !settings_ok)
    {
        return Err(StoreError::NotAllowed);
    }
    Ok(())
}

/// Whether a member with `role` may add members to `conversation` or create invites to it:
/// not in a DIRECT one; OWNER/ADMIN, or anyone when `only_admins_add_members` is off.
pub fn may_invite(conversation: &Conversation, role: Role) -> Result<(), StoreError> {
    let admins_only = conversation.only_admins_add_members;
    if conversation.kind == Kind::Direct || (admins_only && !role.is_admin()) {
        return Err(StoreError::NotAllowed);
    }
    Ok(())
}

/// Whether an invite created by a member now holding `creator` (None: no longer a member) still
/// admits to `conversation`: its creator must still be a current member allowed to invite
/// under the current settings ([`may_invite`]); otherwise `InviteInvalid` (an invite speaks
/// for its creator, and stops when they could no longer add the joiner themselves).
pub(crate) fn creator_may_still_invite(
    conversation: &Conversation,
    creator: Option<&Member>,
) -> Result<(), StoreError> {
    match creator {
        Some(creator) if may_invite(conversation, creator.role).is_ok() => Ok(()),
        _ => Err(StoreError::InviteInvalid),
    }
}

/// Whether a member with role `actor` may remove one with role `target`: OWNER anyone, ADMIN
/// MEMBERs only, MEMBER no one.
pub fn may_remove(actor: Role, target: Role) -> Result<(), StoreError> {
    match (actor, target) {
        (Role::Owner, _) | (Role::Admin, Role::Member) => Ok(()),
        _ => Err(StoreError::NotAllowed),
    }
}

/// Whether `actor`, a member with `role` of a conversation of `kind`, may remove `user` at
/// all, before their row is read (which [`may_remove`] then checks): not in a DIRECT one, not
/// as a MEMBER, and not themself (that is leaving). Both implementations refuse the same way.
pub(crate) fn may_remove_someone(
    kind: Kind,
    role: Role,
    actor: Uuid,
    user: Uuid,
) -> Result<(), StoreError> {
    if kind == Kind::Direct || role == Role::Member || user == actor {
        return Err(StoreError::NotAllowed);
    }
    Ok(())
}

/// Whether `actor`, a member with `role` of a conversation of `kind`, may change `user`'s
/// role: only the OWNER, never their own, never in a DIRECT one.
pub(crate) fn may_set_role(
    kind: Kind,
    role: Role,
    actor: Uuid,
    user: Uuid,
) -> Result<(), StoreError> {
    if kind == Kind::Direct || role != Role::Owner || user == actor {
        return Err(StoreError::NotAllowed);
    }
    Ok(())
}

/// Whether adding `n` members would pass `conversation`'s [`member_cap`].
pub(crate) fn exceeds_cap(conversation: &Conversation, n: usize) -> bool {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    i64::from(conversation.member_count).saturating_add(n)
        > i64::from(member_cap(conversation.kind))
}

/// Where a member page starts: after this member (order: role, then join seq).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberPosition {
    /// The last member's role code.
    pub role: i16,
    /// The last member's join seq.
    pub joined_at_seq: i64,
}

/// An invite code to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewInvite {
    /// UUIDv7.
    pub id: Uuid,
    /// The GROUP or CHANNEL it admits to.
    pub conversation_id: Uuid,
    /// The secret (22 URL-safe base64 characters).
    pub code: String,
    /// None: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// 0: unlimited.
    pub max_uses: i32,
}

/// An invite as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Invite {
    /// UUIDv7.
    pub id: Uuid,
    /// The conversation it admits to.
    pub conversation_id: Uuid,
    /// The secret.
    pub code: String,
    /// Who created it.
    pub created_by: Uuid,
    /// When.
    pub created_at: DateTime<Utc>,
    /// None: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// 0: unlimited.
    pub max_uses: i32,
    /// Successful joins so far.
    pub use_count: i32,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Invite {
    /// Why joining with it at `at` is refused, if it is: revoked or used up (`InviteInvalid`),
    /// expired (`InviteExpired`).
    pub fn refusal(&self, at: DateTime<Utc>) -> Option<StoreError> {
        if self.revoked_at.is_some() || (self.max_uses > 0 && self.use_count >= self.max_uses) {
            Some(StoreError::InviteInvalid)
        } else if self.expires_at.is_some_and(|expires| expires <= at) {
            Some(StoreError::InviteExpired)
        } else {
            None
        }
    }
}

/// Membership storage (see the module doc).
#[async_trait]
pub trait MemberStore: Send + Sync {
    /// Applies `update` to conversation `id` as `actor`: `ConversationNotFound` unless `actor`
    /// is a current member; `NotAllowed` in a DIRECT conversation or when the actor's role
    /// does not allow a named field (see [`may_update`]). When some field really changes: the
    /// next seq, the row updated, one ConversationUpdated (the paths that changed, settings as
    /// `settings`); returns the conversation after it. Nothing changes: no seq, no event, None.
    async fn update_conversation(
        &self,
        actor: Actor,
        id: Uuid,
        update: &ConversationUpdate,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, StoreError>;

    /// Adds `users` (distinct) to `conversation` as MEMBERs, added by `actor`, all or nothing:
    /// `ConversationNotFound` unless `actor` is a current member; `NotAllowed` per
    /// [`may_invite`]; users already members are skipped; of the others, `UserNotFound` when
    /// one is unknown or deleted, `Blocked` when a block stands between one and the actor
    /// (either way), `LimitExceeded("members")` past [`member_cap`]. Each added user takes the
    /// next seq in order (a MemberJoined, method ADDED) and a user seq (ConversationJoined, no
    /// device); a former member's row is reused: new join seq, read watermark at it, counters
    /// and private settings reset, the delivery receipts of the earlier membership deleted.
    /// The refusals name the first offending user in `users` order (`UserNotFound(Some(u))`,
    /// `Blocked(Some(u))`). Returns the added members in order (none: no seq, no event).
    async fn add_members(
        &self,
        actor: Actor,
        conversation: Uuid,
        users: &[Uuid],
        at: DateTime<Utc>,
    ) -> Result<Vec<Member>, StoreError>;

    /// Removes `user` (not `actor`: `NotAllowed`) from `conversation`: `ConversationNotFound`
    /// unless `actor` is a current member; `NotAllowed` in a DIRECT conversation, for a MEMBER,
    /// or per [`may_remove`]; `user` not a current member: 0 (no seq, no event). Otherwise the
    /// next seq (MemberRemoved) is their `left_at_seq`, the member count drops, and they get
    /// ConversationLeft (reason REMOVED, no device). Returns the seq.
    async fn remove_member(
        &self,
        actor: Actor,
        conversation: Uuid,
        user: Uuid,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError>;

    /// `actor` leaves `conversation`: `ConversationNotFound` unless a current member;
    /// `NotAllowed` in a DIRECT conversation; `LastOwner` for the only OWNER while others
    /// remain (the last member may leave). The next seq (MemberLeft) is their `left_at_seq`;
    /// they get ConversationLeft (reason LEFT, their device). Returns the seq.
    async fn leave(
        &self,
        actor: Actor,
        conversation: Uuid,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError>;

    /// Sets `user`'s role in `conversation` as `actor`: `ConversationNotFound` unless `actor`
    /// is a current member; `NotAllowed` in a DIRECT conversation, unless `actor` is the
    /// OWNER, or for `actor` themselves; `UserNotFound` unless `user` is a current member.
    /// The same role: no seq, no event. OWNER transfers ownership: `user` becomes OWNER (seq
    /// n) and `actor` ADMIN (seq n + 1), one MemberRoleChanged each in that order; other roles
    /// one MemberRoleChanged. Returns `user`'s row after.
    async fn set_role(
        &self,
        actor: Actor,
        conversation: Uuid,
        user: Uuid,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<Member, StoreError>;

    /// Current members of `conversation` by role (OWNER, ADMIN, MEMBER) then join seq, after
    /// `after`, at most `limit`; with `admins_and` Some(user), only OWNERs, ADMINs and that user.
    async fn members(
        &self,
        conversation: Uuid,
        admins_and: Option<Uuid>,
        after: Option<&MemberPosition>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError>;

    /// Stores `new` as `actor`'s invite, under the conversation's lock: `ConversationNotFound`
    /// unless `actor` is a current member; `NotAllowed` per [`may_invite`];
    /// `LimitExceeded("invites")` when [`MAX_ACTIVE_INVITES`] are active at `at`. No event.
    async fn create_invite(
        &self,
        actor: Actor,
        new: &NewInvite,
        at: DateTime<Utc>,
    ) -> Result<Invite, StoreError>;

    /// Revokes invite `id` of `conversation` (idempotent: the first revocation time stays):
    /// `ConversationNotFound` unless `actor` is a current member; `InviteInvalid` when the
    /// conversation has no such invite; `NotAllowed` unless `actor` is OWNER/ADMIN or created
    /// it. No event. Returns the invite after.
    async fn revoke_invite(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Invite, StoreError>;

    /// Invites of `conversation`, newest first (by id), with ids below `before`, at most
    /// `limit`; only those active at `at` unless `include_inactive`.
    async fn invites(
        &self,
        conversation: Uuid,
        include_inactive: bool,
        before: Option<Uuid>,
        limit: usize,
        at: DateTime<Utc>,
    ) -> Result<Vec<Invite>, StoreError>;

    /// `actor` joins the conversation of invite `code` as MEMBER, under the conversation's
    /// lock (so uses never pass `max_uses`), checked in this order: `InviteInvalid` when no
    /// invite has this code; `actor` already a current member: (conversation, false), nothing
    /// written, whatever the invite's state (revoked, used up, expired); `InviteInvalid` when
    /// it is revoked or used up; `InviteExpired` past its expiry; `InviteInvalid` when its
    /// creator is no longer a current member or no longer allowed to invite under the current
    /// settings (see [`creator_may_still_invite`]); `LimitExceeded("members")` past
    /// [`member_cap`]. Otherwise the next seq (MemberJoined, method INVITE with the invite id,
    /// added by the invite's creator), the use count + 1, a user seq (ConversationJoined,
    /// actor's device); a former member's row is reused as in `add_members`. Returns the
    /// conversation and true.
    async fn join_by_invite(
        &self,
        actor: Actor,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<(Uuid, bool), StoreError>;
}
