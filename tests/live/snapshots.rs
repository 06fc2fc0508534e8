//! Snapshots as each reader may see them: the same MessageEdited event carries the content to
//! members who can read the message, a DELETED_FOR_ME tombstone to a member who deleted it for
//! themselves, and no content to a member who joined after it; message snapshots carry the
//! reactions and pin as they are at delivery.

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, TestMesh};
use pb::conversation_event::Kind;

use crate::common::live::*;
use crate::common::messages::send;
use crate::common::users::known_user;

/// The message snapshot of the MessageEdited event at `seq` on `stream`.
async fn edited_at(stream: &mut LiveStream, conversation: &str, seq: i64) -> pb::Message {
    let item = stream.event_at(conversation, seq, WAIT).await;
    let event = conversation_event(&item).expect("a conversation event");
    assert!(
        matches!(event.kind, Some(Kind::MessageEdited(_))),
        "{event:?}"
    );
    message_of(event).expect("a snapshot").clone()
}

#[tokio::test]
async fn an_edit_shows_each_reader_only_what_they_may_see() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cat = known_user(&mesh).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let id = chat.conversation_id.clone();
        let note = send(&mesh, &ada, &chat, "lunch at noon").await;
        delete(&mesh, &bob, &note, pb::DeleteScope::ForMe)
            .await
            .expect("Bob deletes it for himself");
        react(&mesh, &ada, &note, "👍").await.expect("react");
        mesh.message_as(&ada)
            .pin_message(pb::PinMessageRequest {
                conversation_id: id.clone(),
                message_id: note.message_id.clone(),
            })
            .await
            .expect("pin");
        add(&mesh, &ada, &id, &[&cat]).await;
        let mut ada_stream = subscribe_ready(&mesh, &ada).await;
        let mut bob_stream = subscribe_ready(&mesh, &bob).await;
        let mut cat_stream = subscribe_ready(&mesh, &cat).await;

        edit_text(&mesh, &ada, &note, "lunch at one").await;
        let seq = last_seq(&mesh, &ada, &id).await;

        let for_ada = edited_at(&mut ada_stream, &id, seq).await;
        assert_eq!(
            for_ada.content.as_ref().map(|c| c.text.as_str()),
            Some("lunch at one"),
            "{backend:?}: the sender reads the new text"
        );
        assert!(for_ada.pinned, "{backend:?}: the pin as it is now");
        assert_eq!(
            for_ada
                .reactions
                .iter()
                .map(|r| (r.emoji.as_str(), r.count))
                .collect::<Vec<_>>(),
            [("👍", 1)],
            "{backend:?}: the reactions as they are now"
        );
        assert!(
            for_ada.reactions.iter().all(|r| !r.reacted_by_me),
            "{backend:?}: reacted_by_me is unset in event snapshots"
        );

        let for_bob = edited_at(&mut bob_stream, &id, seq).await;
        assert_eq!(
            for_bob.state(),
            pb::MessageState::DeletedForMe,
            "{backend:?}: Bob deleted it for himself: {for_bob:?}"
        );
        assert!(for_bob.content.is_none(), "{backend:?}: {for_bob:?}");

        let for_cat = edited_at(&mut cat_stream, &id, seq).await;
        assert!(
            for_cat.content.is_none(),
            "{backend:?}: Cat joined after the message: {for_cat:?}"
        );
        mesh.shutdown().await;
    }
}
