//! The MessageService gRPC handlers: parse and validate → take the caller → call
//! `conversations` → map the result. No rules live here. One file per part of the API
//! (`api/*.rs`); this one holds what they share.

use std::sync::Arc;

use echo_authn::Caller;
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::message_service_server::MessageService;
use echo_runtime::{Check, Failure};
use tonic::{Request, Response, Status};
use uuid::Uuid;

mod conversations;
mod edits;
mod live;
mod members;
mod messages;
mod reactions;
mod receipts;
mod search;

use crate::conversations::{ConversationView, Conversations};
use crate::events::{conversation_snapshot, timestamp};
use crate::store::Actor;

/// The MessageService handlers.
pub struct MessageApi {
    conversations: Arc<Conversations>,
}

impl MessageApi {
    pub(crate) fn new(conversations: Arc<Conversations>) -> Self {
        Self { conversations }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn actor<T>(request: &Request<T>) -> Result<Actor, Status> {
    Caller::of(request)
        .map(|caller| Actor {
            user_id: caller.user_id,
            device_id: caller.device_id,
        })
        .map_err(|e| Failure::from(e).into())
}

fn finish(check: Check) -> Result<(), Status> {
    check.finish().map_err(Status::from)
}

fn conversation(view: ConversationView) -> pb::Conversation {
    let peer = view.peer();
    let member = &view.member;
    pb::Conversation {
        peer_user_id: peer.map(|p| p.to_string()).unwrap_or_default(),
        last_message: view.last_message,
        my_state: Some(pb::MyConversationState {
            role: i32::from(member.role.code()),
            settings: Some(pb::MemberSettings {
                mute_until: member.mute_until.map(timestamp),
                pinned: member.pinned_at.is_some(),
                archived: member.archived,
            }),
            last_read_seq: member.last_read_seq,
            unread_count: member.unread_count,
            mention_count: member.mention_count,
            joined_at_seq: member.joined_at_seq,
        }),
        ..conversation_snapshot(&view.conversation)
    }
}

/// The conversation and message ids a request names (`conversation_id`, `message_id`), both
/// checked; the nil id stands in for an invalid one, which [`finish`] refuses before use.
fn message_target(check: &mut Check, conversation_id: &str, message_id: &str) -> (Uuid, Uuid) {
    let conversation = check.id("conversation_id", conversation_id);
    let message = check.id("message_id", message_id);
    (
        conversation.unwrap_or_default(),
        message.unwrap_or_default(),
    )
}

/// An optional message id (empty means none).
fn optional_id(check: &mut Check, field: &str, input: &str) -> Option<Uuid> {
    (!input.is_empty())
        .then(|| check.id(field, input))
        .flatten()
}

#[tonic::async_trait]
impl MessageService for MessageApi {
    async fn create_direct_conversation(
        &self,
        request: Request<pb::CreateDirectConversationRequest>,
    ) -> Reply<pb::CreateDirectConversationResponse> {
        conversations::create_direct_conversation(self, request).await
    }

    async fn create_conversation(
        &self,
        request: Request<pb::CreateConversationRequest>,
    ) -> Reply<pb::CreateConversationResponse> {
        conversations::create_conversation(self, request).await
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Reply<pb::GetConversationResponse> {
        conversations::get_conversation(self, request).await
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Reply<pb::ListConversationsResponse> {
        conversations::list_conversations(self, request).await
    }

    async fn update_conversation(
        &self,
        request: Request<pb::UpdateConversationRequest>,
    ) -> Reply<pb::UpdateConversationResponse> {
        members::update_conversation(self, request).await
    }

    async fn add_members(
        &self,
        request: Request<pb::AddMembersRequest>,
    ) -> Reply<pb::AddMembersResponse> {
        members::add_members(self, request).await
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Reply<pb::RemoveMemberResponse> {
        members::remove_member(self, request).await
    }

    async fn leave_conversation(
        &self,
        request: Request<pb::LeaveConversationRequest>,
    ) -> Reply<pb::LeaveConversationResponse> {
        members::leave_conversation(self, request).await
    }

    async fn update_member_role(
        &self,
        request: Request<pb::UpdateMemberRoleRequest>,
    ) -> Reply<pb::UpdateMemberRoleResponse> {
        members::update_member_role(self, request).await
    }

    async fn update_member_settings(
        &self,
        request: Request<pb::UpdateMemberSettingsRequest>,
    ) -> Reply<pb::UpdateMemberSettingsResponse> {
        receipts::update_member_settings(self, request).await
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Reply<pb::ListMembersResponse> {
        members::list_members(self, request).await
    }

    async fn create_invite(
        &self,
        request: Request<pb::CreateInviteRequest>,
    ) -> Reply<pb::CreateInviteResponse> {
        members::create_invite(self, request).await
    }

    async fn revoke_invite(
        &self,
        request: Request<pb::RevokeInviteRequest>,
    ) -> Reply<pb::RevokeInviteResponse> {
        members::revoke_invite(self, request).await
    }

    async fn list_invites(
        &self,
        request: Request<pb::ListInvitesRequest>,
    ) -> Reply<pb::ListInvitesResponse> {
        members::list_invites(self, request).await
    }

    async fn join_by_invite(
        &self,
        request: Request<pb::JoinByInviteRequest>,
    ) -> Reply<pb::JoinByInviteResponse> {
        members::join_by_invite(self, request).await
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Reply<pb::SendMessageResponse> {
        messages::send_message(self, request).await
    }

    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Reply<pb::GetMessageResponse> {
        messages::get_message(self, request).await
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Reply<pb::ListMessagesResponse> {
        messages::list_messages(self, request).await
    }

    async fn list_thread(
        &self,
        request: Request<pb::ListThreadRequest>,
    ) -> Reply<pb::ListThreadResponse> {
        search::list_thread(self, request).await
    }

    async fn edit_message(
        &self,
        request: Request<pb::EditMessageRequest>,
    ) -> Reply<pb::EditMessageResponse> {
        edits::edit_message(self, request).await
    }

    async fn get_edit_history(
        &self,
        request: Request<pb::GetEditHistoryRequest>,
    ) -> Reply<pb::GetEditHistoryResponse> {
        edits::get_edit_history(self, request).await
    }

    async fn delete_message(
        &self,
        request: Request<pb::DeleteMessageRequest>,
    ) -> Reply<pb::DeleteMessageResponse> {
        edits::delete_message(self, request).await
    }

    async fn add_reaction(
        &self,
        request: Request<pb::AddReactionRequest>,
    ) -> Reply<pb::AddReactionResponse> {
        reactions::add_reaction(self, request).await
    }

    async fn remove_reaction(
        &self,
        request: Request<pb::RemoveReactionRequest>,
    ) -> Reply<pb::RemoveReactionResponse> {
        reactions::remove_reaction(self, request).await
    }

    async fn list_reactions(
        &self,
        request: Request<pb::ListReactionsRequest>,
    ) -> Reply<pb::ListReactionsResponse> {
        reactions::list_reactions(self, request).await
    }

    async fn pin_message(
        &self,
        request: Request<pb::PinMessageRequest>,
    ) -> Reply<pb::PinMessageResponse> {
        reactions::pin_message(self, request).await
    }

    async fn unpin_message(
        &self,
        request: Request<pb::UnpinMessageRequest>,
    ) -> Reply<pb::UnpinMessageResponse> {
        reactions::unpin_message(self, request).await
    }

    async fn list_pins(
        &self,
        request: Request<pb::ListPinsRequest>,
    ) -> Reply<pb::ListPinsResponse> {
        reactions::list_pins(self, request).await
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Reply<pb::MarkReadResponse> {
        receipts::mark_read(self, request).await
    }

    async fn mark_delivered(
        &self,
        request: Request<pb::MarkDeliveredRequest>,
    ) -> Reply<pb::MarkDeliveredResponse> {
        receipts::mark_delivered(self, request).await
    }

    async fn get_read_state(
        &self,
        request: Request<pb::GetReadStateRequest>,
    ) -> Reply<pb::GetReadStateResponse> {
        receipts::get_read_state(self, request).await
    }

    async fn list_receipts(
        &self,
        request: Request<pb::ListReceiptsRequest>,
    ) -> Reply<pb::ListReceiptsResponse> {
        receipts::list_receipts(self, request).await
    }

    async fn search_messages(
        &self,
        request: Request<pb::SearchMessagesRequest>,
    ) -> Reply<pb::SearchMessagesResponse> {
        search::search_messages(self, request).await
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Reply<crate::live::SubscribeStream> {
        live::subscribe(self, request).await
    }

    async fn set_typing(
        &self,
        request: Request<pb::SetTypingRequest>,
    ) -> Reply<pb::SetTypingResponse> {
        live::set_typing(self, request).await
    }
}
