//! The MessageService gRPC server: [`MessageApi`], the one `delegate!` table that hands each
//! generated RPC to its feature's handler (`<feature>::api`: parse and validate → take the
//! caller → call the journey → map the result; no rules live there), and what those handlers
//! share (the caller, the conversation as its member sees it, id parsing).

use std::sync::Arc;

use echo_authn::Caller;
use echo_ids::{ConversationId, MessageId, UserId};
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::message_service_server::MessageService;
use echo_runtime::{Check, Failure, Page, PageSize};
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::conversations::{ConversationView, Conversations};
use crate::events::{conversation_snapshot, timestamp};
use crate::store::Actor;
use crate::{conversations, live, members, messages, moderation, reactions, read_state};

/// The MessageService handlers.
pub struct MessageApi {
    pub(crate) conversations: Arc<Conversations>,
}

impl MessageApi {
    pub(crate) fn new(conversations: Arc<Conversations>) -> Self {
        Self { conversations }
    }
}

pub(crate) type Reply<T> = Result<Response<T>, Status>;

pub(crate) fn actor<T>(request: &Request<T>) -> Result<Actor, Status> {
    Caller::of(request)
        .map(|caller| Actor {
            user_id: caller.user_id,
            device_id: caller.device_id,
        })
        .map_err(|e| Failure::from(e).into())
}

pub(crate) fn finish(check: Check) -> Result<(), Status> {
    check.finish().map_err(Status::from)
}

pub(crate) fn conversation(view: ConversationView) -> pb::Conversation {
    let peer = view.peer();
    let member = &view.member;
    pb::Conversation {
        peer_user_id: peer.map(|p| p.to_string()).unwrap_or_default(),
        last_message: view.last_message.map(crate::convert::seen),
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
pub(crate) fn message_target(
    check: &mut Check,
    conversation_id: &str,
    message_id: &str,
) -> (ConversationId, MessageId) {
    let conversation = check.id_of("conversation_id", conversation_id);
    let message = check.id_of("message_id", message_id);
    (
        conversation.unwrap_or(ConversationId::nil()),
        message.unwrap_or(MessageId::nil()),
    )
}

/// `messages` as `reader` sees them, as their protobuf messages, in the same order.
pub(crate) async fn presented(
    api: &MessageApi,
    reader: UserId,
    messages: &[crate::store::Message],
) -> Result<Vec<pb::Message>, crate::error::MessageError> {
    let seen = api.conversations.present(reader, messages).await?;
    Ok(seen.into_iter().map(crate::convert::seen).collect())
}

/// The ids of a request that names one message and has nothing else to check.
pub(crate) fn only_target(
    conversation_id: &str,
    message_id: &str,
) -> Result<(ConversationId, MessageId), Status> {
    let mut check = Check::new();
    let target = message_target(&mut check, conversation_id, message_id);
    finish(check)?;
    Ok(target)
}

/// The conversation and page of a request listing one conversation's items and nothing else
/// to check (`conversation_id`, `page_size`, `page_token`).
pub(crate) fn conversation_page<P: DeserializeOwned>(
    conversation_id: &str,
    size: i32,
    token: &str,
    rule: PageSize,
) -> Result<(ConversationId, Page<P>), Status> {
    let mut check = Check::new();
    let conversation = check.id_of("conversation_id", conversation_id);
    let page = check.page(size, token, rule);
    finish(check)?;
    Ok((conversation.expect("checked"), page))
}

/// An optional id of kind `T` (empty means none).
pub(crate) fn optional_id<T: From<Uuid>>(check: &mut Check, field: &str, input: &str) -> Option<T> {
    (!input.is_empty())
        .then(|| check.id_of(field, input))
        .flatten()
}

/// Implements the generated [`MessageService`] by handing each RPC to its feature's handler
/// (`<feature>::api`): one row per RPC, `method(request) -> response => handler;`. The
/// generated trait gives every method a default (UNIMPLEMENTED), so a missing row compiles:
/// the table must list all 36 RPCs of `message_service.proto` (the e2e suites call each).
macro_rules! delegate {
    ($($method:ident($request:ty) -> $response:ty => $handler:path;)*) => {
        #[tonic::async_trait]
        impl MessageService for MessageApi {
            $(
                async fn $method(&self, request: Request<$request>) -> Reply<$response> {
                    $handler(self, request).await
                }
            )*
        }
    };
}

delegate! {
    // conversation_api.proto
    create_direct_conversation(pb::CreateDirectConversationRequest)
        -> pb::CreateDirectConversationResponse => conversations::api::create_direct_conversation;
    create_conversation(pb::CreateConversationRequest)
        -> pb::CreateConversationResponse => conversations::api::create_conversation;
    get_conversation(pb::GetConversationRequest)
        -> pb::GetConversationResponse => conversations::api::get_conversation;
    list_conversations(pb::ListConversationsRequest)
        -> pb::ListConversationsResponse => conversations::api::list_conversations;
    update_conversation(pb::UpdateConversationRequest)
        -> pb::UpdateConversationResponse => conversations::api::update_conversation;

    // member_api.proto
    add_members(pb::AddMembersRequest)
        -> pb::AddMembersResponse => members::api::add_members;
    remove_member(pb::RemoveMemberRequest)
        -> pb::RemoveMemberResponse => members::api::remove_member;
    leave_conversation(pb::LeaveConversationRequest)
        -> pb::LeaveConversationResponse => members::api::leave_conversation;
    update_member_role(pb::UpdateMemberRoleRequest)
        -> pb::UpdateMemberRoleResponse => members::api::update_member_role;
    list_members(pb::ListMembersRequest)
        -> pb::ListMembersResponse => members::api::list_members;
    create_invite(pb::CreateInviteRequest)
        -> pb::CreateInviteResponse => members::api::create_invite;
    revoke_invite(pb::RevokeInviteRequest)
        -> pb::RevokeInviteResponse => members::api::revoke_invite;
    list_invites(pb::ListInvitesRequest)
        -> pb::ListInvitesResponse => members::api::list_invites;
    join_by_invite(pb::JoinByInviteRequest)
        -> pb::JoinByInviteResponse => members::api::join_by_invite;

    // read_state_api.proto, and UpdateMemberSettings of member_api.proto
    update_member_settings(pb::UpdateMemberSettingsRequest)
        -> pb::UpdateMemberSettingsResponse => read_state::api::update_member_settings;
    mark_read(pb::MarkReadRequest)
        -> pb::MarkReadResponse => read_state::api::mark_read;
    mark_delivered(pb::MarkDeliveredRequest)
        -> pb::MarkDeliveredResponse => read_state::api::mark_delivered;
    get_read_state(pb::GetReadStateRequest)
        -> pb::GetReadStateResponse => read_state::api::get_read_state;
    list_receipts(pb::ListReceiptsRequest)
        -> pb::ListReceiptsResponse => read_state::api::list_receipts;

    // message_api.proto
    send_message(pb::SendMessageRequest)
        -> pb::SendMessageResponse => messages::api::send_message;
    get_message(pb::GetMessageRequest)
        -> pb::GetMessageResponse => messages::api::get_message;
    list_messages(pb::ListMessagesRequest)
        -> pb::ListMessagesResponse => messages::api::list_messages;
    list_thread(pb::ListThreadRequest)
        -> pb::ListThreadResponse => messages::api::list_thread;
    edit_message(pb::EditMessageRequest)
        -> pb::EditMessageResponse => messages::api::edit_message;
    get_edit_history(pb::GetEditHistoryRequest)
        -> pb::GetEditHistoryResponse => messages::api::get_edit_history;
    delete_message(pb::DeleteMessageRequest)
        -> pb::DeleteMessageResponse => messages::api::delete_message;
    search_messages(pb::SearchMessagesRequest)
        -> pb::SearchMessagesResponse => messages::api::search_messages;

    // reaction_api.proto
    add_reaction(pb::AddReactionRequest)
        -> pb::AddReactionResponse => reactions::api::add_reaction;
    remove_reaction(pb::RemoveReactionRequest)
        -> pb::RemoveReactionResponse => reactions::api::remove_reaction;
    list_reactions(pb::ListReactionsRequest)
        -> pb::ListReactionsResponse => reactions::api::list_reactions;
    pin_message(pb::PinMessageRequest)
        -> pb::PinMessageResponse => reactions::api::pin_message;
    unpin_message(pb::UnpinMessageRequest)
        -> pb::UnpinMessageResponse => reactions::api::unpin_message;
    list_pins(pb::ListPinsRequest)
        -> pb::ListPinsResponse => reactions::api::list_pins;

    // report_api.proto
    report_message(pb::ReportMessageRequest)
        -> pb::ReportMessageResponse => moderation::api::report_message;

    // live.proto
    subscribe(pb::SubscribeRequest)
        -> live::SubscribeStream => live::api::subscribe;
    set_typing(pb::SetTypingRequest)
        -> pb::SetTypingResponse => live::api::set_typing;
}
