//! Creating, reading, listing and updating conversations (conversation_api.proto): parse and
//! validate, take the caller, call the journey, map the result.

use echo_ids::ConversationId;
use echo_proto::echo::message::v1 as pb;
use tonic::{Request, Response};

use echo_runtime::Check;

use crate::api::{MessageApi, Reply, actor, conversation, finish};
use crate::rules::{self, CONVERSATION_PAGE};
use crate::store::{ConversationUpdate, Kind, ListFilter, NewConversation};

pub(crate) async fn create_direct_conversation(
    api: &MessageApi,
    request: Request<pb::CreateDirectConversationRequest>,
) -> Reply<pb::CreateDirectConversationResponse> {
    let actor = actor(&request)?;
    let mut check = Check::new();
    let peer = check.id_of("peer_user_id", &request.get_ref().peer_user_id);
    if peer == Some(actor.user_id) {
        check.push("peer_user_id", "must be another user, not yourself");
    }
    finish(check)?;
    let (view, created) = api
        .conversations
        .direct(actor, peer.expect("checked"))
        .await?;
    Ok(Response::new(pb::CreateDirectConversationResponse {
        conversation: Some(conversation(view)),
        created,
    }))
}

pub(crate) async fn create_conversation(
    api: &MessageApi,
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
    let title = rules::text_bytes(&mut check, "title", &body.title, rules::MAX_TITLE, true);
    let description = rules::text_bytes(
        &mut check,
        "description",
        &body.description,
        rules::MAX_DESCRIPTION,
        false,
    );
    if let Some(avatar) = &body.avatar {
        rules::attachment(&mut check, "avatar", avatar);
    }
    let mut members = Vec::new();
    if body.member_user_ids.len() > rules::MAX_INITIAL_MEMBERS {
        // One violation for the list: its elements are not looked at one by one.
        check.push(
            "member_user_ids",
            format!("at most {} (add more later)", rules::MAX_INITIAL_MEMBERS),
        );
    } else {
        for (i, id) in body.member_user_ids.iter().enumerate() {
            if let Some(user) = check.id_of(&format!("member_user_ids[{i}]"), id)
                && user != actor.user_id
                && !members.contains(&user)
            {
                members.push(user);
            }
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
        id: ConversationId::new_v7(),
        kind,
        title,
        description,
        avatar: body.avatar,
        only_admins_edit_info: settings.only_admins_edit_info,
        only_admins_add_members: settings.only_admins_add_members,
        members,
        client_request_id,
    };
    let (view, created) = api.conversations.create(actor, new).await?;
    Ok(Response::new(pb::CreateConversationResponse {
        conversation: Some(conversation(view)),
        created,
    }))
}

pub(crate) async fn get_conversation(
    api: &MessageApi,
    request: Request<pb::GetConversationRequest>,
) -> Reply<pb::GetConversationResponse> {
    let actor = actor(&request)?;
    let mut check = Check::new();
    let id = check.id_of("conversation_id", &request.get_ref().conversation_id);
    finish(check)?;
    let view = api
        .conversations
        .get(actor.user_id, id.expect("checked"))
        .await?;
    Ok(Response::new(pb::GetConversationResponse {
        conversation: Some(conversation(view)),
    }))
}

pub(crate) async fn list_conversations(
    api: &MessageApi,
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
    let (views, next_page_token) = api.conversations.list(actor.user_id, filter, &page).await?;
    Ok(Response::new(pb::ListConversationsResponse {
        conversations: views.into_iter().map(conversation).collect(),
        next_page_token,
    }))
}

/// The paths UpdateConversation accepts (conversation_api.proto).
const UPDATE_PATHS: [&str; 7] = [
    "title",
    "description",
    "avatar",
    "settings",
    "settings.only_admins_edit_info",
    "settings.only_admins_add_members",
    "message_ttl",
];

pub(crate) async fn update_conversation(
    api: &MessageApi,
    request: Request<pb::UpdateConversationRequest>,
) -> Reply<pb::UpdateConversationResponse> {
    let actor = actor(&request)?;
    let body = request.into_inner();
    let mut check = Check::new();
    let paths = check.mask(body.update_mask, &UPDATE_PATHS);
    let given = body.conversation.unwrap_or_default();
    let id = check.id_of("conversation.conversation_id", &given.conversation_id);
    let settings = given.settings.unwrap_or_default();
    let mut update = ConversationUpdate::default();
    for path in &paths {
        match path.as_str() {
            "title" => {
                let field = "conversation.title";
                let title =
                    rules::text_bytes(&mut check, field, &given.title, rules::MAX_TITLE, true);
                update.title = Some(title);
            }
            "description" => {
                let field = "conversation.description";
                let description = rules::text_bytes(
                    &mut check,
                    field,
                    &given.description,
                    rules::MAX_DESCRIPTION,
                    false,
                );
                update.description = Some(description);
            }
            "avatar" => {
                if let Some(avatar) = &given.avatar {
                    rules::attachment(&mut check, "conversation.avatar", avatar);
                }
                update.avatar = Some(given.avatar.clone());
            }
            // An unset `settings` reads as its defaults (both false), as the mask rule says.
            "settings" => {
                update.only_admins_edit_info = Some(settings.only_admins_edit_info);
                update.only_admins_add_members = Some(settings.only_admins_add_members);
            }
            "settings.only_admins_edit_info" => {
                update.only_admins_edit_info = Some(settings.only_admins_edit_info);
            }
            "message_ttl" => {
                update.message_ttl = Some(rules::message_ttl(
                    &mut check,
                    "conversation.message_ttl",
                    given.message_ttl.as_ref(),
                ));
            }
            _ => update.only_admins_add_members = Some(settings.only_admins_add_members),
        }
    }
    finish(check)?;
    let view = api
        .conversations
        .update_conversation(actor, id.expect("checked"), update)
        .await?;
    Ok(Response::new(pb::UpdateConversationResponse {
        conversation: Some(conversation(view)),
    }))
}
