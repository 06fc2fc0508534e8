//! The membership rules and the store-facing types of members: the caps, who may add, remove,
//! change roles and invite ([`may_invite`], …), member pages, and invites.
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

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::MessageError;
use crate::store::{Conversation, Kind, Member, Role};

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

/// Whether a member with `role` may add members to `conversation` or create invites to it:
/// not in a DIRECT one; OWNER/ADMIN, or anyone when `only_admins_add_members` is off.
pub fn may_invite(conversation: &Conversation, role: Role) -> Result<(), MessageError> {
    let admins_only = conversation.only_admins_add_members;
    if conversation.kind == Kind::Direct || (admins_only && !role.is_admin()) {
        return Err(MessageError::NotAllowed);
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
) -> Result<(), MessageError> {
    match creator {
        Some(creator) if may_invite(conversation, creator.role).is_ok() => Ok(()),
        _ => Err(MessageError::InviteInvalid),
    }
}

/// Whether a member with role `actor` may remove one with role `target`: OWNER anyone, ADMIN
/// MEMBERs only, MEMBER no one.
pub fn may_remove(actor: Role, target: Role) -> Result<(), MessageError> {
    match (actor, target) {
        (Role::Owner, _) | (Role::Admin, Role::Member) => Ok(()),
        _ => Err(MessageError::NotAllowed),
    }
}

/// Whether `actor`, a member with `role` of a conversation of `kind`, may remove `user` at
/// all, before their row is read (which [`may_remove`] then checks): not in a DIRECT one, not
/// as a MEMBER, and not themself (that is leaving). Both implementations refuse the same way.
pub(crate) fn may_remove_someone(
    kind: Kind,
    role: Role,
    actor: UserId,
    user: UserId,
) -> Result<(), MessageError> {
    if kind == Kind::Direct || role == Role::Member || user == actor {
        return Err(MessageError::NotAllowed);
    }
    Ok(())
}

/// Whether `actor`, a member with `role` of a conversation of `kind`, may change `user`'s
/// role: only the OWNER, never their own, never in a DIRECT one.
pub(crate) fn may_set_role(
    kind: Kind,
    role: Role,
    actor: UserId,
    user: UserId,
) -> Result<(), MessageError> {
    if kind == Kind::Direct || role != Role::Owner || user == actor {
        return Err(MessageError::NotAllowed);
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
    pub conversation_id: ConversationId,
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
    pub conversation_id: ConversationId,
    /// The secret.
    pub code: String,
    /// Who created it.
    pub created_by: UserId,
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
    pub fn refusal(&self, at: DateTime<Utc>) -> Option<MessageError> {
        if self.revoked_at.is_some() || (self.max_uses > 0 && self.use_count >= self.max_uses) {
            Some(MessageError::InviteInvalid)
        } else if self.expires_at.is_some_and(|expires| expires <= at) {
            Some(MessageError::InviteExpired)
        } else {
            None
        }
    }
}
