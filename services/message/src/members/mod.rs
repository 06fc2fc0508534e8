//! Membership: adding, removing, leaving, roles, listing members, invites. Who may do what at
//! the moment of a write is decided inside the write's transaction by the rules of `rules`;
//! this layer checks reads (members only), shapes pages, makes invite codes and rate-limits
//! joins.
//!
//! The feature's folder: `api` (member_api.proto but UpdateMemberSettings, which is read
//! state: proto ⇄ domain), this module (the journeys), `rules` (the caps, who may do what, and
//! the store-facing types), `store` with `store_invites` and `store_rows` (the transaction
//! scripts, written once for both backends) and `events`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use echo_cache::Rule;
use echo_ids::{ConversationId, UserId};
use echo_runtime::{Page, PageSize, Violation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub(crate) mod api;
pub(crate) mod events;
pub(crate) mod rules;
mod store;
pub(crate) mod store_rows;

use crate::conversations::{ConversationView, Conversations};
use crate::error::MessageError;
use crate::store::{Invite, Kind, Member, MemberPosition, NewInvite, Role, may_invite};

/// Member lists: 100 by default, at most 500 (member_api.proto).
pub const MEMBER_PAGE: PageSize = PageSize {
    default: 100,
    max: 500,
};
/// Invite lists: 50 by default, at most 200 (member_api.proto).
pub const INVITE_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};
/// Most users one AddMembers call names.
pub const MAX_ADD: usize = 100;
/// Most joins one invite may allow (0 is unlimited).
pub const MAX_INVITE_USES: i32 = 100_000;
/// Furthest an invite's expiry may lie ahead.
pub const MAX_INVITE_LIFETIME: chrono::Duration = chrono::Duration::days(365);
/// The length of an invite code: 128 random bits in URL-safe base64 without padding.
pub const INVITE_CODE_LEN: usize = 22;

/// JoinByInvite attempts per user: 10 a minute. A person opening links never comes near it;
/// guessing a 128-bit code is hopeless anyway, and this keeps a client from hammering the
/// code index (and from probing which codes exist).
pub const JOIN_BY_INVITE: Rule = Rule::per("message.join_by_invite", 10, Duration::from_secs(60));

/// A fresh invite code: 128 bits from the thread's CSPRNG (seeded by the OS), as 22 URL-safe
/// base64 characters.
pub fn new_code() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Whether `code` has the shape of an invite code.
pub fn is_code(code: &str) -> bool {
    code.len() == INVITE_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where a member list continues: its conversation and the last member served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberListPosition {
    /// The conversation listed.
    pub conversation_id: ConversationId,
    /// After this member.
    pub after: MemberPosition,
}

/// Where an invite list continues: its conversation, filter and the last invite served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteListPosition {
    /// The conversation listed.
    pub conversation_id: ConversationId,
    /// The filter of the list.
    pub include_inactive: bool,
    /// Before this invite (newest first).
    pub invite_id: Uuid,
}

fn foreign_token() -> MessageError {
    MessageError::Invalid(vec![Violation::new(
        "page_token",
        "belongs to another list or filter",
    )])
}

impl Conversations {
    /// Adds `users` as MEMBERs; those actually added, in order.
    pub async fn add_members(
        &self,
        actor: crate::store::Actor,
        id: ConversationId,
        users: &[UserId],
    ) -> Result<Vec<Member>, MessageError> {
        self.store.add_members(actor, id, users, Utc::now()).await
    }

    /// Removes `user`; the seq of MemberRemoved (0 when they were not a member).
    pub async fn remove_member(
        &self,
        actor: crate::store::Actor,
        id: ConversationId,
        user: UserId,
    ) -> Result<i64, MessageError> {
        self.store.remove_member(actor, id, user, Utc::now()).await
    }

    /// The caller leaves; the seq of MemberLeft.
    pub async fn leave(
        &self,
        actor: crate::store::Actor,
        id: ConversationId,
    ) -> Result<i64, MessageError> {
        self.store.leave(actor, id, Utc::now()).await
    }

    /// Sets `user`'s role (OWNER transfers ownership); their member row after.
    pub async fn set_role(
        &self,
        actor: crate::store::Actor,
        id: ConversationId,
        user: UserId,
        role: Role,
    ) -> Result<Member, MessageError> {
        self.store.set_role(actor, id, user, role, Utc::now()).await
    }

    /// A page of current members as the caller may see them: everyone, except that a plain
    /// MEMBER of a CHANNEL sees only its OWNER and ADMINs, and themselves.
    pub async fn members(
        &self,
        caller: UserId,
        id: ConversationId,
        page: &Page<MemberListPosition>,
    ) -> Result<(Vec<Member>, String), MessageError> {
        let me = self.current_member(id, caller).await?;
        if page.after.as_ref().is_some_and(|p| p.conversation_id != id) {
            return Err(foreign_token());
        }
        let conversation = self
            .store
            .conversation(id)
            .await?
            .ok_or(MessageError::ConversationNotFound)?;
        let admins_and =
            (conversation.kind == Kind::Channel && !me.role.is_admin()).then_some(caller);
        let after = page.after.as_ref().map(|p| &p.after);
        let rows = self
            .store
            .members(id, admins_and, after, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, |m| MemberListPosition {
            conversation_id: id,
            after: MemberPosition {
                role: m.role.code(),
                joined_at_seq: m.joined_at_seq,
            },
        }))
    }

    /// A new invite code to `id`.
    pub async fn create_invite(
        &self,
        actor: crate::store::Actor,
        id: ConversationId,
        expires_at: Option<DateTime<Utc>>,
        max_uses: i32,
    ) -> Result<Invite, MessageError> {
        let new = NewInvite {
            id: Uuid::now_v7(),
            conversation_id: id,
            code: new_code(),
            expires_at,
            max_uses,
        };
        self.store.create_invite(actor, &new, Utc::now()).await
    }

    /// Revokes `invite` of `id` (again is fine).
    pub async fn revoke_invite(
        &self,
        actor: crate::store::Actor,
        id: ConversationId,
        invite: Uuid,
    ) -> Result<Invite, MessageError> {
        self.store
            .revoke_invite(actor, id, invite, Utc::now())
            .await
    }

    /// A page of `id`'s invites, newest first, for members allowed to create them.
    pub async fn invites(
        &self,
        caller: UserId,
        id: ConversationId,
        include_inactive: bool,
        page: &Page<InviteListPosition>,
    ) -> Result<(Vec<Invite>, String), MessageError> {
        let me = self.current_member(id, caller).await?;
        if page
            .after
            .as_ref()
            .is_some_and(|p| p.conversation_id != id || p.include_inactive != include_inactive)
        {
            return Err(foreign_token());
        }
        let conversation = self
            .store
            .conversation(id)
            .await?
            .ok_or(MessageError::ConversationNotFound)?;
        may_invite(&conversation, me.role)?;
        let before = page.after.as_ref().map(|p| p.invite_id);
        let rows = self
            .store
            .invites(id, include_inactive, before, page.fetch_limit(), Utc::now())
            .await?;
        Ok(page.finish(rows, |invite| InviteListPosition {
            conversation_id: id,
            include_inactive,
            invite_id: invite.id,
        }))
    }

    /// Joins the conversation of `code` (rate-limited per user against guessing); the
    /// conversation as the caller now sees it, and whether they joined now.
    pub async fn join_by_invite(
        &self,
        actor: crate::store::Actor,
        code: &str,
    ) -> Result<(ConversationView, bool), MessageError> {
        self.limits
            .take(&[(JOIN_BY_INVITE, &actor.user_id.to_string())])
            .await
            .map_err(MessageError::RateLimited)?;
        let (id, joined) = self.store.join_by_invite(actor, code, Utc::now()).await?;
        Ok((self.get(actor.user_id, id).await?, joined))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_22_url_safe_characters_and_differ() {
        let (a, b) = (new_code(), new_code());
        assert!(is_code(&a) && is_code(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(!is_code("short"));
        assert!(!is_code("aaaaaaaaaaaaaaaaaaaaa+"));
    }
}
