//! Whom a mention added by an edit counts for, end to end: only members who can see the
//! message (joined before it, have not deleted it for themselves), never the sender.

use echo_proto::echo::events::v1::ConversationEventRecorded;
use prost::Message as _;

use super::*;

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

#[tokio::test]
async fn edit_mentions_count_only_members_who_see_the_message() {
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
        let sent = send(&mesh, &ada, &room, "hello").await;
        // Bob hides it; Dan joins after it.
        delete(&mesh, &bob, &sent, pb::DeleteScope::ForMe)
            .await
            .unwrap();
        mesh.message_as(&ada)
            .add_members(pb::AddMembersRequest {
                conversation_id: room.conversation_id.clone(),
                user_ids: vec![dan.tokens.user_id.clone()],
            })
            .await
            .expect("add dan");
        let (bob_before, dan_before) = (
            unread(&mesh, &bob, &room).await,
            unread(&mesh, &dan, &room).await,
        );

        let mention = |user: &SignedIn, offset| pb::Mention {
            user_id: user.tokens.user_id.clone(),
            offset,
            length: 2,
        };
        let content = pb::MessageContent {
            text: "@b @d @c @a".into(),
            mentions: vec![
                mention(&bob, 0),
                mention(&dan, 3),
                mention(&cy, 6),
                mention(&ada, 9),
            ],
            ..Default::default()
        };
        let request = edit_request(&sent, content.clone(), &["text", "mentions"]);
        let edited = edit(&mesh, &ada, request).await.unwrap();
        assert_eq!(edited.content, Some(content), "{backend:?}: all kept");
        assert_eq!(unread(&mesh, &cy, &room).await, (1, 1));
        assert_eq!(unread(&mesh, &bob, &room).await, bob_before, "hid it");
        assert_eq!(unread(&mesh, &dan, &room).await, dan_before, "joined after");
        assert_eq!(unread(&mesh, &ada, &room).await, (0, 0), "the sender");
        let event = last_event(&mesh, &room).await;
        let Some(pb::conversation_event::Kind::MessageEdited(change)) = event.kind else {
            panic!("{event:?}")
        };
        assert_eq!(
            change.newly_mentioned_user_ids,
            [cy.tokens.user_id.as_str()]
        );
        mesh.shutdown().await;
    }
}
