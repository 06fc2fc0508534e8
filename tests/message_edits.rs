//! Editing and deleting messages end to end through the generated gRPC client, on both
//! backends: edits with their history and mentions, the edit cap, deletion for one user and
//! for everyone (what each member then sees, and their unread counts), who may do what, and
//! malformed requests.

use common::messages::*;
use common::users::{known_user, mask};
use common::{refusal, violated_fields};
use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tonic::Code;

mod common;

fn edit_request(
    message: &pb::Message,
    content: pb::MessageContent,
    paths: &[&str],
) -> pb::EditMessageRequest {
    pb::EditMessageRequest {
        conversation_id: message.conversation_id.clone(),
        message_id: message.message_id.clone(),
        content: Some(content),
        update_mask: mask(paths),
    }
}

async fn edit(
    mesh: &TestMesh,
    user: &SignedIn,
    request: pb::EditMessageRequest,
) -> Result<pb::Message, tonic::Status> {
    let response = mesh.message_as(user).edit_message(request).await?;
    Ok(response.into_inner().message.expect("message"))
}

async fn get(mesh: &TestMesh, user: &SignedIn, message: &pb::Message) -> pb::Message {
    let request = pb::GetMessageRequest {
        conversation_id: message.conversation_id.clone(),
        message_id: message.message_id.clone(),
    };
    let response = mesh.message_as(user).get_message(request).await;
    response.expect("get message").into_inner().message.unwrap()
}

async fn history(
    mesh: &TestMesh,
    user: &SignedIn,
    message: &pb::Message,
) -> Result<Vec<pb::MessageEdit>, tonic::Status> {
    let request = pb::GetEditHistoryRequest {
        conversation_id: message.conversation_id.clone(),
        message_id: message.message_id.clone(),
    };
    let response = mesh.message_as(user).get_edit_history(request).await?;
    Ok(response.into_inner().edits)
}

async fn delete(
    mesh: &TestMesh,
    user: &SignedIn,
    message: &pb::Message,
    scope: pb::DeleteScope,
) -> Result<pb::Message, tonic::Status> {
    let request = pb::DeleteMessageRequest {
        conversation_id: message.conversation_id.clone(),
        message_id: message.message_id.clone(),
        scope: scope.into(),
    };
    let response = mesh.message_as(user).delete_message(request).await?;
    Ok(response.into_inner().message.expect("message"))
}

/// `user`'s (unread_count, mention_count) in `conversation`, as ListConversations shows them.
async fn unread(mesh: &TestMesh, user: &SignedIn, conversation: &pb::Conversation) -> (i32, i32) {
    let listed = mesh
        .message_as(user)
        .list_conversations(pb::ListConversationsRequest::default())
        .await
        .expect("list conversations")
        .into_inner()
        .conversations;
    let found = listed
        .into_iter()
        .find(|c| c.conversation_id == conversation.conversation_id)
        .expect("listed");
    let state = found.my_state.expect("my state");
    (state.unread_count, state.mention_count)
}

fn mentioning(body: &str, user: &SignedIn, offset: i32, length: i32) -> pb::MessageContent {
    pb::MessageContent {
        text: body.into(),
        mentions: vec![pb::Mention {
            user_id: user.tokens.user_id.clone(),
            offset,
            length,
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn edits_replace_content_keep_history_and_move_mentions() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cy = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        direct(&mesh, &ada, &cy).await;
        let sent = send_content(&mesh, &ada, &chat, mentioning("helo @bob", &bob, 5, 4)).await;
        assert_eq!(unread(&mesh, &bob, &chat).await, (1, 1), "{backend:?}");

        // New text without new mentions keeps the mention that still fits...
        let fixed = edit(
            &mesh,
            &ada,
            edit_request(&sent, text("hello @bob"), &["text"]),
        )
        .await;
        let fixed = fixed.unwrap();
        let expected = mentioning("hello @bob", &bob, 5, 4);
        assert_eq!(fixed.content.as_ref(), Some(&expected));
        assert_eq!((fixed.edit_count, fixed.seq), (1, sent.seq));
        assert!(fixed.edited_at.is_some());
        let seen = get(&mesh, &bob, &sent).await;
        assert_eq!(seen.content, fixed.content);
        assert_eq!(seen.edit_count, 1);
        assert_eq!(seen.state, pb::MessageState::Active as i32);
        // ...and drops the one that no longer does (Bob's mention count follows).
        let short = edit(&mesh, &ada, edit_request(&fixed, text("hi"), &["text"])).await;
        let short = short.unwrap();
        assert_eq!(short.content, Some(text("hi")));
        assert_eq!(unread(&mesh, &bob, &chat).await, (1, 0));
        // Mentions alone, then attachments and a location.
        let with_mention = mentioning("ignored", &bob, 0, 2);
        let again = edit(
            &mesh,
            &ada,
            edit_request(&short, with_mention, &["mentions"]),
        );
        let again = again.await.unwrap();
        assert_eq!(again.content.as_ref().unwrap().text, "hi");
        assert_eq!(again.content.as_ref().unwrap().mentions.len(), 1);
        assert_eq!(unread(&mesh, &bob, &chat).await, (1, 1));
        let place = pb::MessageContent {
            location: Some(pb::Location {
                latitude: 51.5,
                longitude: -0.12,
                name: "Somerset House".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let located = edit(&mesh, &ada, edit_request(&again, place, &["location"]));
        let located = located.await.unwrap();
        assert_eq!(located.edit_count, 4);
        assert_eq!(located.content.as_ref().unwrap().text, "hi");
        assert!(located.content.as_ref().unwrap().location.is_some());

        // The history, oldest first, as any member sees it.
        let versions = history(&mesh, &bob, &sent).await.unwrap();
        let numbers: Vec<i32> = versions.iter().map(|v| v.version).collect();
        assert_eq!(numbers, [0, 1, 2, 3]);
        assert_eq!(versions[0].content, sent.content);
        assert_eq!(versions[0].created_at, sent.created_at);
        assert_eq!(versions[1].content, fixed.content);
        assert_eq!(versions[1].created_at, fixed.edited_at);
        assert_eq!(versions[3].content, again.content);
        assert_eq!(history(&mesh, &ada, &located).await.unwrap().len(), 4);

        // The same content again: nothing changes.
        let same = edit(&mesh, &ada, edit_request(&located, text("hi"), &["text"])).await;
        assert_eq!(same.unwrap().edit_count, 4);

        // Denials.
        let by_bob = edit(
            &mesh,
            &bob,
            edit_request(&sent, text("mine now"), &["text"]),
        );
        let by_bob = by_bob.await.unwrap_err();
        assert_eq!(
            refusal(&by_bob),
            (Code::PermissionDenied, "NOT_ALLOWED".into())
        );
        let by_cy = edit(&mesh, &cy, edit_request(&sent, text("x"), &["text"])).await;
        let by_cy = by_cy.unwrap_err();
        assert_eq!(
            refusal(&by_cy),
            (Code::NotFound, "CONVERSATION_NOT_FOUND".into())
        );
        // Mentioning a non-member is no refusal: kept in the content, counted for nobody.
        let outsider = mentioning("@cy", &cy, 0, 3);
        let kept = edit(
            &mesh,
            &ada,
            edit_request(&sent, outsider.clone(), &["text", "mentions"]),
        );
        let kept = kept.await.unwrap().content.unwrap();
        assert_eq!(
            (kept.text, kept.mentions),
            (outsider.text, outsider.mentions)
        );
        assert_eq!(unread(&mesh, &bob, &chat).await, (1, 0));
        let mut unknown = edit_request(&sent, text("x"), &["text"]);
        unknown.message_id = uuid::Uuid::now_v7().to_string();
        let unknown = edit(&mesh, &ada, unknown).await.unwrap_err();
        assert_eq!(
            refusal(&unknown),
            (Code::NotFound, "MESSAGE_NOT_FOUND".into())
        );
        let fresh = send(&mesh, &ada, &chat, "never edited").await;
        assert!(history(&mesh, &bob, &fresh).await.unwrap().is_empty());
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn an_edit_cap_and_malformed_edits() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        let sent = send(&mesh, &ada, &chat, "version 0").await;
        for version in 1..=100 {
            let body = format!("version {version}");
            let edited = edit(&mesh, &ada, edit_request(&sent, text(&body), &["text"])).await;
            assert_eq!(edited.unwrap().edit_count, version, "{backend:?}");
        }
        let over = edit(&mesh, &ada, edit_request(&sent, text("101"), &["text"])).await;
        let over = over.unwrap_err();
        assert_eq!(
            refusal(&over),
            (Code::ResourceExhausted, "LIMIT_EXCEEDED".into())
        );
        assert_eq!(history(&mesh, &bob, &sent).await.unwrap().len(), 100);

        let empty_mask = edit(&mesh, &ada, edit_request(&sent, text("x"), &[])).await;
        assert_eq!(violated_fields(&empty_mask.unwrap_err()), ["update_mask"]);
        let other_path = edit_request(&sent, text("x"), &["text", "sender_user_id"]);
        let other_path = edit(&mesh, &ada, other_path).await.unwrap_err();
        assert_eq!(other_path.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&other_path), ["update_mask.paths[1]"]);
        let bad_ids = pb::EditMessageRequest {
            conversation_id: "nope".into(),
            update_mask: mask(&["text"]),
            ..Default::default()
        };
        let bad_ids = edit(&mesh, &ada, bad_ids).await.unwrap_err();
        assert_eq!(violated_fields(&bad_ids), ["conversation_id", "message_id"]);
        // The resulting content must be a valid message (checked once the caller may edit).
        let sent = send(&mesh, &ada, &chat, "fresh").await;
        let blank = edit(&mesh, &ada, edit_request(&sent, text("   "), &["text"])).await;
        assert_eq!(violated_fields(&blank.unwrap_err()), ["content"]);
        let long = text(&"x".repeat(echo_message::rules::MAX_TEXT + 1));
        let long = edit(&mesh, &ada, edit_request(&sent, long, &["text"])).await;
        assert_eq!(violated_fields(&long.unwrap_err()), ["content.text"]);
        let bad_history = mesh
            .message_as(&ada)
            .get_edit_history(pb::GetEditHistoryRequest::default())
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&bad_history),
            ["conversation_id", "message_id"]
        );
        mesh.shutdown().await;
    }
}

#[path = "message_edits/deletes.rs"]
mod deletes;
#[path = "message_edits/mentions.rs"]
mod mentions;
