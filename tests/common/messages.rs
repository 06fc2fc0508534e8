//! Helpers for the MessageService integration tests.

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{SignedIn, TestMesh};

use super::reason;

/// Until the message service has applied `peer`'s registration, creating a direct
/// conversation says USER_NOT_FOUND; retry briefly.
pub async fn direct(mesh: &TestMesh, from: &SignedIn, peer: &SignedIn) -> pb::Conversation {
    let request = || pb::CreateDirectConversationRequest {
        peer_user_id: peer.tokens.user_id.clone(),
    };
    for _ in 0..250 {
        match mesh
            .message_as(from)
            .create_direct_conversation(request())
            .await
        {
            Ok(created) => return created.into_inner().conversation.unwrap(),
            Err(status) if reason(&status) == "USER_NOT_FOUND" => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(status) => panic!("create direct: {status:?}"),
        }
    }
    panic!(
        "the message service never learnt of {}",
        peer.tokens.user_id
    );
}

pub fn text(body: &str) -> pb::MessageContent {
    pb::MessageContent {
        text: body.into(),
        ..Default::default()
    }
}

pub fn send_request(
    conversation: &pb::Conversation,
    key: &str,
    content: pb::MessageContent,
) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        conversation_id: conversation.conversation_id.clone(),
        client_message_id: key.into(),
        content: Some(content),
        ..Default::default()
    }
}

/// Sends the text `body` as `from` (a fresh idempotency key each time).
pub async fn send(
    mesh: &TestMesh,
    from: &SignedIn,
    conversation: &pb::Conversation,
    body: &str,
) -> pb::Message {
    send_content(mesh, from, conversation, text(body)).await
}

/// Sends `content` as `from` (a fresh idempotency key each time).
pub async fn send_content(
    mesh: &TestMesh,
    from: &SignedIn,
    conversation: &pb::Conversation,
    content: pb::MessageContent,
) -> pb::Message {
    let key = uuid::Uuid::now_v7().to_string();
    let request = send_request(conversation, &key, content);
    let sent = mesh.message_as(from).send_message(request).await;
    sent.expect("send").into_inner().message.unwrap()
}

/// A conversation of `kind` that `owner` creates with `members`. Until the message service has
/// applied every member's registration, creating says USER_NOT_FOUND: retry briefly (with the
/// same key, so a retry never creates twice).
pub async fn group(
    mesh: &TestMesh,
    owner: &SignedIn,
    kind: pb::ConversationType,
    members: &[&SignedIn],
) -> pb::Conversation {
    let request = pb::CreateConversationRequest {
        r#type: kind.into(),
        title: "Analytical Engine".into(),
        member_user_ids: members.iter().map(|m| m.tokens.user_id.clone()).collect(),
        client_request_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    for _ in 0..250 {
        match mesh
            .message_as(owner)
            .create_conversation(request.clone())
            .await
        {
            Ok(created) => return created.into_inner().conversation.expect("conversation"),
            Err(status) if reason(&status) == "USER_NOT_FOUND" => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(status) => panic!("create conversation: {status:?}"),
        }
    }
    panic!("the message service never learnt of the members");
}

/// Add `users` to `conversation` as `by`, retried while the message service has not yet
/// applied a user's registration (USER_NOT_FOUND); the members added.
pub async fn add_members(
    mesh: &TestMesh,
    by: &SignedIn,
    conversation: &str,
    users: &[&SignedIn],
) -> Vec<pb::Member> {
    let request = pb::AddMembersRequest {
        conversation_id: conversation.into(),
        user_ids: users.iter().map(|u| u.tokens.user_id.clone()).collect(),
    };
    for _ in 0..250 {
        match mesh.message_as(by).add_members(request.clone()).await {
            Ok(added) => return added.into_inner().members,
            Err(status) if reason(&status) == "USER_NOT_FOUND" => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(status) => panic!("add members: {status:?}"),
        }
    }
    panic!("the message service never learnt of the users added");
}

/// Waits until the message service has applied `blocker`'s block of `blocked` (a direct
/// conversation between them is then refused as BLOCKED).
pub async fn wait_for_block(mesh: &TestMesh, blocked: &SignedIn, blocker: &SignedIn) {
    for _ in 0..250 {
        let request = pb::CreateDirectConversationRequest {
            peer_user_id: blocker.tokens.user_id.clone(),
        };
        match mesh
            .message_as(blocked)
            .create_direct_conversation(request)
            .await
        {
            Err(status) if reason(&status) == "BLOCKED" => return,
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    panic!("the block never reached the message service");
}

/// Every message of `conversation` that `reader` sees, oldest first.
pub async fn history(mesh: &TestMesh, reader: &SignedIn, conversation: &str) -> Vec<pb::Message> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = mesh
            .message_as(reader)
            .list_messages(pb::ListMessagesRequest {
                conversation_id: conversation.to_owned(),
                anchor: Some(pb::list_messages_request::Anchor::AfterSeq(after)),
                page_size: 200,
                ..Default::default()
            })
            .await
            .expect("list messages")
            .into_inner();
        let Some(last) = page.messages.last() else {
            return all;
        };
        after = last.seq;
        all.extend(page.messages);
    }
}

pub async fn my_view(
    mesh: &TestMesh,
    user: &SignedIn,
    conversation: &pb::Conversation,
) -> pb::Conversation {
    mesh.message_as(user)
        .get_conversation(pb::GetConversationRequest {
            conversation_id: conversation.conversation_id.clone(),
        })
        .await
        .expect("get conversation")
        .into_inner()
        .conversation
        .unwrap()
}
