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
    mesh.message_as(owner)
        .create_conversation(request)
        .await
        .expect("create conversation")
        .into_inner()
        .conversation
        .unwrap()
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
