//! Mentions of users who are not members (kept, counted for nobody) and the proto's limits in
//! UTF-8 bytes, end to end.

use echo_proto::echo::events::v1::ConversationEventRecorded;
use prost::Message as _;

use super::*;
use common::users::mask;

/// The latest event the message service recorded for `conversation` (read from its outbox).
async fn last_event(mesh: &TestMesh, conversation: &pb::Conversation) -> pb::ConversationEvent {
    let (_, db) = mesh
        .mesh
        .databases
        .iter()
        .find(|(t, _)| t.name() == "message")
        .expect("the message database");
    let sql = "SELECT payload FROM outbox WHERE subject = $1 ORDER BY id DESC LIMIT 1";
    let subject = format!(
        "echo.message.conversation_event.{}",
        conversation.conversation_id
    );
    let payload: Vec<u8> = match db {
        echo_store::Database::Postgres(pg) => {
            sqlx::query_scalar(sql)
                .bind(subject)
                .fetch_one(&pg.pool)
                .await
        }
        echo_store::Database::Sqlite(lite) => {
            sqlx::query_scalar(sql)
                .bind(subject)
                .fetch_one(&lite.reader)
                .await
        }
    }
    .expect("an event");
    let recorded = ConversationEventRecorded::decode(payload.as_slice()).expect("decode");
    recorded.event.expect("event")
}

fn mention(user: &SignedIn, offset: i32) -> pb::Mention {
    pb::Mention {
        user_id: user.tokens.user_id.clone(),
        offset,
        length: 2,
    }
}

#[tokio::test]
async fn mentions_of_non_members_are_kept_and_count_for_nobody() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cy = known_user(&mesh).await;
        let dan = known_user(&mesh).await;
        for other in [&bob, &cy, &dan] {
            direct(&mesh, &ada, other).await;
        }
        let room = group(&mesh, &ada, pb::ConversationType::Group, &[&bob, &cy]).await;
        mesh.message_as(&ada)
            .remove_member(pb::RemoveMemberRequest {
                conversation_id: room.conversation_id.clone(),
                user_id: cy.tokens.user_id.clone(),
            })
            .await
            .expect("remove cy");
        // Cy (a former member), Dan (never a member), Ada herself and Bob.
        let content = pb::MessageContent {
            text: "@c @d @a @b".into(),
            mentions: vec![
                mention(&cy, 0),
                mention(&dan, 3),
                mention(&ada, 6),
                mention(&bob, 9),
            ],
            ..Default::default()
        };
        let sent = send_content(&mesh, &ada, &room, content.clone()).await;
        assert_eq!(
            sent.content,
            Some(content),
            "{backend:?}: every mention kept"
        );
        let state = my_view(&mesh, &bob, &room).await.my_state.unwrap();
        assert_eq!((state.unread_count, state.mention_count), (1, 1));
        let mine = my_view(&mesh, &ada, &room).await.my_state.unwrap();
        assert_eq!((mine.unread_count, mine.mention_count), (0, 0));
        let event = last_event(&mesh, &room).await;
        let Some(pb::conversation_event::Kind::MessageCreated(created)) = event.kind else {
            panic!("{event:?}")
        };
        assert_eq!(created.message.unwrap().message_id, sent.message_id);
        assert_eq!(created.mentioned_user_ids, [bob.tokens.user_id.as_str()]);
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn limits_are_utf8_bytes_as_the_proto_states() {
    let Some(mesh) = TestMesh::start(Backend::Embedded).await else {
        return;
    };
    let ada = known_user(&mesh).await;
    let bob = known_user(&mesh).await;
    let chat = direct(&mesh, &ada, &bob).await;
    // Text: 4096 bytes, not characters ("€" is 3 bytes).
    let wide = send_request(&chat, "w-1", text(&"€".repeat(1366)));
    let refused = mesh.message_as(&ada).send_message(wide).await.unwrap_err();
    assert_eq!(common::violated_fields(&refused), ["content.text"]);
    send_content(&mesh, &ada, &chat, text(&"€".repeat(1365))).await;

    // Title: 1 to 256 bytes, not blank; description at most 2048 bytes; at most 256 members.
    let create = |title: &str, description: &str, members: usize| pb::CreateConversationRequest {
        r#type: pb::ConversationType::Group.into(),
        title: title.into(),
        description: description.into(),
        member_user_ids: (0..members)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect(),
        client_request_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let too_much = create(&"é".repeat(129), &"é".repeat(1025), 257);
    let refused = mesh
        .message_as(&ada)
        .create_conversation(too_much)
        .await
        .unwrap_err();
    assert_eq!(
        common::violated_fields(&refused),
        ["title", "description", "member_user_ids"]
    );
    let blank = create(" \t ", "", 0);
    let refused = mesh.message_as(&ada).create_conversation(blank).await;
    assert_eq!(common::violated_fields(&refused.unwrap_err()), ["title"]);
    let room = mesh
        .message_as(&ada)
        .create_conversation(create(&"é".repeat(128), &"é".repeat(1024), 0))
        .await
        .expect("at the limits")
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(room.title.len(), 256);

    let update = |title: String, description: String| pb::UpdateConversationRequest {
        conversation: Some(pb::Conversation {
            conversation_id: room.conversation_id.clone(),
            title,
            description,
            ..Default::default()
        }),
        update_mask: mask(&["title", "description"]),
    };
    let refused = mesh
        .message_as(&ada)
        .update_conversation(update("é".repeat(129), "é".repeat(1025)))
        .await
        .unwrap_err();
    assert_eq!(
        common::violated_fields(&refused),
        ["conversation.title", "conversation.description"]
    );
    mesh.message_as(&ada)
        .update_conversation(update("ü".repeat(128), "ü".repeat(1024)))
        .await
        .expect("at the limits");
    mesh.shutdown().await;
}
