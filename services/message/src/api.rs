//! The MessageService gRPC handlers: parse and validate → take the caller → call
//! `conversations` → map the result. No rules live here. RPCs not listed here still answer
//! UNIMPLEMENTED through the generated stubs while their part of the issue is open.

use std::sync::Arc;

use echo_authn::Caller;
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::message_service_server::MessageService;
use echo_runtime::{Check, Failure};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::conversations::{Anchor, ConversationView, Conversations};
use crate::events::{conversation_snapshot, timestamp};
use crate::rules::{self, CONVERSATION_PAGE, MESSAGE_PAGE};
use crate::store::{Actor, Kind, ListFilter, NewConversation, NewMessage};

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
        last_message: view.last_message.as_ref().map(crate::convert::message),
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
        let actor = actor(&request)?;
        let mut check = Check::new();
        let peer = check.id("peer_user_id", &request.get_ref().peer_user_id);
        if peer == Some(actor.user_id) {
            check.push("peer_user_id", "must be another user, not yourself");
        }
        finish(check)?;
        let (view, created) = self
            .conversations
            .direct(actor, peer.expect("checked"))
            .await?;
        Ok(Response::new(pb::CreateDirectConversationResponse {
            conversation: Some(conversation(view)),
            created,
        }))
    }

    async fn create_conversation(
        &self,
        request: Request<pb::CreateConversationRequest>,
    ) -> Reply<pb::CreateConversationResponse> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        let kind = match pb::ConversationType::try_from(body.r#type) {
            Ok(pb::ConversationType::Group) => Kind::Group,
            Ok(pb::ConversationType::Channel) => Kind::Channel,
            _ => {
                check.push(
                    "type",
                    "must be GROUP or CHANNEL (use CreateDirectConversation)",
                );
                Kind::Group
            }
        };
        let title = check.text("title", &body.title, rules::MAX_TITLE, true);
        let description = check.text(
            "description",
            &body.description,
            rules::MAX_DESCRIPTION,
            false,
        );
        if let Some(avatar) = &body.avatar {
            rules::attachment(&mut check, "avatar", avatar);
        }
        if body.member_user_ids.len() > rules::MAX_INITIAL_MEMBERS {
            check.push(
                "member_user_ids",
                format!("at most {} (add more later)", rules::MAX_INITIAL_MEMBERS),
            );
        }
        let mut members = Vec::new();
        for (i, id) in body.member_user_ids.iter().enumerate() {
            if let Some(user) = check.id(&format!("member_user_ids[{i}]"), id)
                && user != actor.user_id
                && !members.contains(&user)
            {
                members.push(user);
            }
        }
        let client_request_id =
            rules::client_key(&mut check, "client_request_id", &body.client_request_id);
        finish(check)?;
        let settings = body.settings.unwrap_or(pb::ConversationSettings {
            only_admins_edit_info: true,
            only_admins_add_members: true,
        });
        let new = NewConversation {
            id: Uuid::now_v7(),
            kind,
            title,
            description,
            avatar: body.avatar,
            only_admins_edit_info: settings.only_admins_edit_info,
            only_admins_add_members: settings.only_admins_add_members,
            members,
            client_request_id,
        };
        let (view, created) = self.conversations.create(actor, new).await?;
        Ok(Response::new(pb::CreateConversationResponse {
            conversation: Some(conversation(view)),
            created,
        }))
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Reply<pb::GetConversationResponse> {
        let actor = actor(&request)?;
        let mut check = Check::new();
        let id = check.id("conversation_id", &request.get_ref().conversation_id);
        finish(check)?;
        let view = self
            .conversations
            .get(actor.user_id, id.expect("checked"))
            .await?;
        Ok(Response::new(pb::GetConversationResponse {
            conversation: Some(conversation(view)),
        }))
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Reply<pb::ListConversationsResponse> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        let archived = match pb::ArchiveFilter::try_from(body.archive_filter) {
            Ok(pb::ArchiveFilter::Unspecified | pb::ArchiveFilter::ExcludeArchived) => Some(false),
            Ok(pb::ArchiveFilter::OnlyArchived) => Some(true),
            Ok(pb::ArchiveFilter::All) => None,
            Err(_) => {
                check.push("archive_filter", "is not a known filter");
                None
            }
        };
        let page = check.page(body.page_size, &body.page_token, CONVERSATION_PAGE);
        finish(check)?;
        let filter = ListFilter {
            archived,
            pinned_only: body.pinned_only,
        };
        let (views, next_page_token) = self
            .conversations
            .list(actor.user_id, filter, &page)
            .await?;
        Ok(Response::new(pb::ListConversationsResponse {
            conversations: views.into_iter().map(conversation).collect(),
            next_page_token,
        }))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Reply<pb::SendMessageResponse> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        let conversation_id = check.id("conversation_id", &body.conversation_id);
        let client_message_id =
            rules::client_key(&mut check, "client_message_id", &body.client_message_id);
        let content = body.content.unwrap_or_default();
        let mentioned = rules::content(&mut check, "content", &content);
        let reply_to = optional_id(&mut check, "reply_to_message_id", &body.reply_to_message_id);
        let thread_root = optional_id(
            &mut check,
            "thread_root_message_id",
            &body.thread_root_message_id,
        );
        finish(check)?;
        let new = NewMessage {
            id: Uuid::now_v7(),
            conversation_id: conversation_id.expect("checked"),
            client_message_id,
            request_hash: request_hash(&content, reply_to, thread_root),
            content,
            mentioned,
            reply_to_message_id: reply_to,
            thread_root_message_id: thread_root,
        };
        let message = self.conversations.send(actor, new).await?;
        Ok(Response::new(pb::SendMessageResponse {
            message: Some(crate::convert::message(&message)),
        }))
    }

    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Reply<pb::GetMessageResponse> {
        let actor = actor(&request)?;
        let mut check = Check::new();
        let conversation_id = check.id("conversation_id", &request.get_ref().conversation_id);
        let message_id = check.id("message_id", &request.get_ref().message_id);
        finish(check)?;
        let message = self
            .conversations
            .message(
                actor.user_id,
                conversation_id.expect("checked"),
                message_id.expect("checked"),
            )
            .await?;
        Ok(Response::new(pb::GetMessageResponse {
            message: Some(crate::convert::message(&message)),
        }))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Reply<pb::ListMessagesResponse> {
        use pb::list_messages_request::Anchor as Wire;
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        let conversation_id = check.id("conversation_id", &body.conversation_id);
        let anchor = match body.anchor {
            None => Anchor::Latest,
            Some(Wire::BeforeSeq(seq)) if seq > 0 => Anchor::Before(seq),
            Some(Wire::AfterSeq(seq)) if seq >= 0 => Anchor::After(seq),
            Some(Wire::AroundMessageId(id)) => match check.id("around_message_id", &id) {
                Some(id) => Anchor::Around(id),
                None => Anchor::Latest,
            },
            Some(Wire::BeforeSeq(_)) => {
                check.push("before_seq", "must be above 0");
                Anchor::Latest
            }
            Some(Wire::AfterSeq(_)) => {
                check.push("after_seq", "must not be negative");
                Anchor::Latest
            }
        };
        let page = check.page(body.page_size, &body.page_token, MESSAGE_PAGE);
        finish(check)?;
        let history = self
            .conversations
            .history(
                actor.user_id,
                conversation_id.expect("checked"),
                anchor,
                &page,
                body.top_level_only,
            )
            .await?;
        Ok(Response::new(pb::ListMessagesResponse {
            messages: history
                .messages
                .iter()
                .map(crate::convert::message)
                .collect(),
            next_page_token: history.next_page_token,
            has_more_before: history.has_more_before,
            has_more_after: history.has_more_after,
        }))
    }
}

/// What a retry must repeat exactly: the content, the reply target and the thread.
fn request_hash(
    content: &pb::MessageContent,
    reply_to: Option<Uuid>,
    thread_root: Option<Uuid>,
) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(prost::Message::encode_to_vec(content));
    for id in [reply_to, thread_root] {
        hash.update(id.map_or([0; 16], |id| id.into_bytes()));
    }
    hash.finalize().into()
}
