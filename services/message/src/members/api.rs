//! Membership, roles and invites (member_api.proto): parse and validate, take the caller,
//! call the journey, map the result.

use chrono::{DateTime, Utc};
use echo_proto::echo::message::v1 as pb;
use echo_runtime::Check;
use tonic::{Request, Response};

use crate::api::{MessageApi, Reply, actor, conversation, conversation_page, finish};
use crate::events::{member_snapshot, timestamp};
use crate::members::{
    INVITE_CODE_LEN, INVITE_PAGE, MAX_ADD, MAX_INVITE_LIFETIME, MAX_INVITE_USES, MEMBER_PAGE,
    is_code,
};

use crate::store::{Invite, Role};

pub(crate) async fn add_members(
    api: &MessageApi,
    request: Request<pb::AddMembersRequest>,
) -> Reply<pb::AddMembersResponse> {
    let actor = actor(&request)?;
    let body = request.get_ref();
    let mut check = Check::new();
    let id = check.id_of("conversation_id", &body.conversation_id);
    let mut users = Vec::new();
    if body.user_ids.is_empty() || body.user_ids.len() > MAX_ADD {
        // One violation for the list: its elements are not looked at one by one.
        check.push("user_ids", format!("name 1 to {MAX_ADD} users"));
    } else {
        for (i, user) in body.user_ids.iter().enumerate() {
            if let Some(user) = check.id_of(&format!("user_ids[{i}]"), user)
                && !users.contains(&user)
            {
                users.push(user);
            }
        }
    }
    finish(check)?;
    let added = api
        .conversations
        .add_members(actor, id.expect("checked"), &users)
        .await?;
    Ok(Response::new(pb::AddMembersResponse {
        members: added.iter().map(member_snapshot).collect(),
    }))
}

pub(crate) async fn remove_member(
    api: &MessageApi,
    request: Request<pb::RemoveMemberRequest>,
) -> Reply<pb::RemoveMemberResponse> {
    let actor = actor(&request)?;
    let body = request.get_ref();
    let mut check = Check::new();
    let id = check.id_of("conversation_id", &body.conversation_id);
    let user = check.id_of("user_id", &body.user_id);
    if user == Some(actor.user_id) {
        check.push("user_id", "is you: use LeaveConversation to leave");
    }
    finish(check)?;
    let seq = api
        .conversations
        .remove_member(actor, id.expect("checked"), user.expect("checked"))
        .await?;
    Ok(Response::new(pb::RemoveMemberResponse { seq }))
}

pub(crate) async fn leave_conversation(
    api: &MessageApi,
    request: Request<pb::LeaveConversationRequest>,
) -> Reply<pb::LeaveConversationResponse> {
    let actor = actor(&request)?;
    let mut check = Check::new();
    let id = check.id_of("conversation_id", &request.get_ref().conversation_id);
    finish(check)?;
    let seq = api.conversations.leave(actor, id.expect("checked")).await?;
    Ok(Response::new(pb::LeaveConversationResponse { seq }))
}

pub(crate) async fn update_member_role(
    api: &MessageApi,
    request: Request<pb::UpdateMemberRoleRequest>,
) -> Reply<pb::UpdateMemberRoleResponse> {
    let actor = actor(&request)?;
    let body = request.get_ref();
    let mut check = Check::new();
    let id = check.id_of("conversation_id", &body.conversation_id);
    let user = check.id_of("user_id", &body.user_id);
    if user == Some(actor.user_id) {
        check.push(
            "user_id",
            "is you: your role changes only by transferring ownership",
        );
    }
    let role = Role::from_code(body.role.into());
    if role.is_none() {
        check.push("role", "must be OWNER, ADMIN or MEMBER");
    }
    finish(check)?;
    let member = api
        .conversations
        .set_role(
            actor,
            id.expect("checked"),
            user.expect("checked"),
            role.expect("checked"),
        )
        .await?;
    Ok(Response::new(pb::UpdateMemberRoleResponse {
        member: Some(member_snapshot(&member)),
    }))
}

pub(crate) async fn list_members(
    api: &MessageApi,
    request: Request<pb::ListMembersRequest>,
) -> Reply<pb::ListMembersResponse> {
    let actor = actor(&request)?;
    let body = request.get_ref();
    let (id, page) = conversation_page(
        &body.conversation_id,
        body.page_size,
        &body.page_token,
        MEMBER_PAGE,
    )?;
    let (members, next_page_token) = api.conversations.members(actor.user_id, id, &page).await?;
    Ok(Response::new(pb::ListMembersResponse {
        members: members.iter().map(member_snapshot).collect(),
        next_page_token,
    }))
}

pub(crate) async fn create_invite(
    api: &MessageApi,
    request: Request<pb::CreateInviteRequest>,
) -> Reply<pb::CreateInviteResponse> {
    let actor = actor(&request)?;
    let body = request.get_ref();
    let mut check = Check::new();
    let id = check.id_of("conversation_id", &body.conversation_id);
    let now = Utc::now();
    let expires_at = body.expires_at.and_then(|at| {
        let at = DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0))
            .filter(|at| *at > now && *at <= now + MAX_INVITE_LIFETIME);
        if at.is_none() {
            check.push(
                "expires_at",
                "must be in the future and at most a year away",
            );
        }
        at
    });
    if !(0..=MAX_INVITE_USES).contains(&body.max_uses) {
        check.push(
            "max_uses",
            format!("must be 0 (unlimited) to {MAX_INVITE_USES}"),
        );
    }
    finish(check)?;
    let invite = api
        .conversations
        .create_invite(actor, id.expect("checked"), expires_at, body.max_uses)
        .await?;
    Ok(Response::new(pb::CreateInviteResponse {
        invite: Some(invite_message(&invite)),
    }))
}

pub(crate) async fn revoke_invite(
    api: &MessageApi,
    request: Request<pb::RevokeInviteRequest>,
) -> Reply<pb::RevokeInviteResponse> {
    let actor = actor(&request)?;
    let body = request.get_ref();
    let mut check = Check::new();
    let id = check.id_of("conversation_id", &body.conversation_id);
    let invite = check.id("invite_id", &body.invite_id);
    finish(check)?;
    let revoked = api
        .conversations
        .revoke_invite(actor, id.expect("checked"), invite.expect("checked"))
        .await?;
    Ok(Response::new(pb::RevokeInviteResponse {
        invite: Some(invite_message(&revoked)),
    }))
}

pub(crate) async fn list_invites(
    api: &MessageApi,
    request: Request<pb::ListInvitesRequest>,
) -> Reply<pb::ListInvitesResponse> {
    let actor = actor(&request)?;
    let body = request.get_ref();
    let (id, page) = conversation_page(
        &body.conversation_id,
        body.page_size,
        &body.page_token,
        INVITE_PAGE,
    )?;
    let (invites, next_page_token) = api
        .conversations
        .invites(actor.user_id, id, body.include_inactive, &page)
        .await?;
    Ok(Response::new(pb::ListInvitesResponse {
        invites: invites.iter().map(invite_message).collect(),
        next_page_token,
    }))
}

pub(crate) async fn join_by_invite(
    api: &MessageApi,
    request: Request<pb::JoinByInviteRequest>,
) -> Reply<pb::JoinByInviteResponse> {
    let actor = actor(&request)?;
    let code = request.get_ref().code.trim();
    let mut check = Check::new();
    if check.required("code", code) && !is_code(code) {
        check.push(
            "code",
            format!("must be the {INVITE_CODE_LEN} characters of an invite code"),
        );
    }
    finish(check)?;
    let (view, joined) = api.conversations.join_by_invite(actor, code).await?;
    Ok(Response::new(pb::JoinByInviteResponse {
        conversation: Some(conversation(view)),
        joined,
    }))
}

/// An invite as its managers see it (code included: only members allowed to manage invites
/// reach the RPCs that answer with one).
fn invite_message(invite: &Invite) -> pb::Invite {
    pb::Invite {
        invite_id: invite.id.to_string(),
        conversation_id: invite.conversation_id.to_string(),
        code: invite.code.clone(),
        created_by_user_id: invite.created_by.to_string(),
        created_at: Some(timestamp(invite.created_at)),
        expires_at: invite.expires_at.map(timestamp),
        max_uses: invite.max_uses,
        use_count: invite.use_count,
        revoked_at: invite.revoked_at.map(timestamp),
    }
}
