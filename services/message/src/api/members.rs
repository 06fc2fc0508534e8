//! Conversation updates, membership, roles and invites.

use echo_proto::echo::message::v1 as pb;
use tonic::{Request, Status};

use super::{MessageApi, Reply};

pub(super) async fn update_conversation(
    _api: &MessageApi,
    _request: Request<pb::UpdateConversationRequest>,
) -> Reply<pb::UpdateConversationResponse> {
    Err(Status::unimplemented("UpdateConversation is not built yet"))
}

pub(super) async fn add_members(
    _api: &MessageApi,
    _request: Request<pb::AddMembersRequest>,
) -> Reply<pb::AddMembersResponse> {
    Err(Status::unimplemented("AddMembers is not built yet"))
}

pub(super) async fn remove_member(
    _api: &MessageApi,
    _request: Request<pb::RemoveMemberRequest>,
) -> Reply<pb::RemoveMemberResponse> {
    Err(Status::unimplemented("RemoveMember is not built yet"))
}

pub(super) async fn leave_conversation(
    _api: &MessageApi,
    _request: Request<pb::LeaveConversationRequest>,
) -> Reply<pb::LeaveConversationResponse> {
    Err(Status::unimplemented("LeaveConversation is not built yet"))
}

pub(super) async fn update_member_role(
    _api: &MessageApi,
    _request: Request<pb::UpdateMemberRoleRequest>,
) -> Reply<pb::UpdateMemberRoleResponse> {
    Err(Status::unimplemented("UpdateMemberRole is not built yet"))
}

pub(super) async fn list_members(
    _api: &MessageApi,
    _request: Request<pb::ListMembersRequest>,
) -> Reply<pb::ListMembersResponse> {
    Err(Status::unimplemented("ListMembers is not built yet"))
}

pub(super) async fn create_invite(
    _api: &MessageApi,
    _request: Request<pb::CreateInviteRequest>,
) -> Reply<pb::CreateInviteResponse> {
    Err(Status::unimplemented("CreateInvite is not built yet"))
}

pub(super) async fn revoke_invite(
    _api: &MessageApi,
    _request: Request<pb::RevokeInviteRequest>,
) -> Reply<pb::RevokeInviteResponse> {
    Err(Status::unimplemented("RevokeInvite is not built yet"))
}

pub(super) async fn list_invites(
    _api: &MessageApi,
    _request: Request<pb::ListInvitesRequest>,
) -> Reply<pb::ListInvitesResponse> {
    Err(Status::unimplemented("ListInvites is not built yet"))
}

pub(super) async fn join_by_invite(
    _api: &MessageApi,
    _request: Request<pb::JoinByInviteRequest>,
) -> Reply<pb::JoinByInviteResponse> {
    Err(Status::unimplemented("JoinByInvite is not built yet"))
}
