//! Deleting messages for one user and for everyone, end to end.

use super::*;

fn state(message: &pb::Message) -> pb::MessageState {
    pb::MessageState::try_from(message.state).expect("state")
}

#[tokio::test]
async fn deleting_for_me_and_for_everyone() {
    use pb::DeleteScope::{ForEveryone, ForMe};
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cy = known_user(&mesh).await;
        let dan = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        direct(&mesh, &ada, &cy).await;
        direct(&mesh, &ada, &dan).await;
        let room = group(&mesh, &ada, pb::ConversationType::Group, &[&bob, &cy]).await;
        let one = send_content(&mesh, &ada, &room, mentioning("@bob one", &bob, 0, 4)).await;
        let two = send(&mesh, &ada, &room, "two").await;
        assert_eq!(unread(&mesh, &bob, &room).await, (2, 1), "{backend:?}");
        assert_eq!(unread(&mesh, &cy, &room).await, (2, 0));

        // For me: a tombstone for Bob only, his counters corrected, idempotent.
        let hidden = delete(&mesh, &bob, &one, ForMe).await.unwrap();
        assert_eq!(state(&hidden), pb::MessageState::DeletedForMe);
        assert_eq!(hidden.content, None);
        assert!(hidden.deleted_at.is_some());
        assert_eq!(unread(&mesh, &bob, &room).await, (1, 0));
        assert_eq!(unread(&mesh, &cy, &room).await, (2, 0));
        let for_cy = get(&mesh, &cy, &one).await;
        assert_eq!(state(&for_cy), pb::MessageState::Active);
        assert_eq!(for_cy.content, one.content);
        assert_eq!(
            state(&get(&mesh, &bob, &one).await),
            pb::MessageState::DeletedForMe
        );
        let again = delete(&mesh, &bob, &one, ForMe).await.unwrap();
        assert_eq!(again, hidden);
        assert_eq!(unread(&mesh, &bob, &room).await, (1, 0));
        let no_history = history(&mesh, &bob, &one).await.unwrap_err();
        assert_eq!(
            refusal(&no_history),
            (Code::NotFound, "MESSAGE_NOT_FOUND".into())
        );

        // For everyone: not by another MEMBER; by the sender, for all to see.
        let by_cy = delete(&mesh, &cy, &two, ForEveryone).await.unwrap_err();
        assert_eq!(
            refusal(&by_cy),
            (Code::PermissionDenied, "NOT_ALLOWED".into())
        );
        let gone = delete(&mesh, &ada, &two, ForEveryone).await.unwrap();
        assert_eq!(state(&gone), pb::MessageState::DeletedForEveryone);
        assert_eq!((gone.content.as_ref(), gone.seq), (None, two.seq));
        assert!(gone.deleted_at.is_some());
        for user in [&ada, &bob, &cy] {
            let seen = get(&mesh, user, &two).await;
            assert_eq!(state(&seen), pb::MessageState::DeletedForEveryone);
            assert_eq!(seen.content, None);
        }
        let no_history = history(&mesh, &bob, &two).await.unwrap_err();
        assert_eq!(
            refusal(&no_history),
            (Code::FailedPrecondition, "MESSAGE_DELETED".into())
        );
        let no_edit = edit(&mesh, &ada, edit_request(&two, text("x"), &["text"])).await;
        assert_eq!(
            refusal(&no_edit.unwrap_err()),
            (Code::FailedPrecondition, "MESSAGE_DELETED".into())
        );
        assert_eq!(unread(&mesh, &bob, &room).await, (0, 0));
        assert_eq!(unread(&mesh, &cy, &room).await, (1, 0));
        assert_eq!(unread(&mesh, &ada, &room).await, (0, 0));
        let again = delete(&mesh, &ada, &two, ForEveryone).await.unwrap();
        assert_eq!(again, gone);
        assert_eq!(unread(&mesh, &cy, &room).await, (1, 0));

        // The OWNER deletes a MEMBER's message; the list's last message steps back.
        let three = send(&mesh, &bob, &room, "three").await;
        assert_eq!(unread(&mesh, &cy, &room).await, (2, 0));
        assert_eq!(unread(&mesh, &ada, &room).await, (1, 0));
        let moderated = delete(&mesh, &ada, &three, ForEveryone).await.unwrap();
        assert_eq!(state(&moderated), pb::MessageState::DeletedForEveryone);
        assert_eq!(unread(&mesh, &cy, &room).await, (1, 0));
        assert_eq!(unread(&mesh, &ada, &room).await, (0, 0));
        assert_eq!(unread(&mesh, &bob, &room).await, (0, 0));
        let listed = my_view(&mesh, &cy, &room).await;
        assert_eq!(listed.last_message.unwrap().message_id, one.message_id);
        // A MEMBER deletes their own.
        let four = send(&mesh, &cy, &room, "four").await;
        assert_eq!(unread(&mesh, &bob, &room).await, (1, 0));
        delete(&mesh, &cy, &four, ForEveryone).await.unwrap();
        assert_eq!(unread(&mesh, &bob, &room).await, (0, 0));
        // Cy still has Ada's first message unread: sending reads nothing.
        assert_eq!(unread(&mesh, &cy, &room).await, (1, 0));

        // DIRECT: only the sender deletes for everyone; the peer may hide it.
        let hello = send(&mesh, &ada, &chat, "hello").await;
        assert_eq!(unread(&mesh, &bob, &chat).await, (1, 0));
        let by_peer = delete(&mesh, &bob, &hello, ForEveryone).await.unwrap_err();
        assert_eq!(
            refusal(&by_peer),
            (Code::PermissionDenied, "NOT_ALLOWED".into())
        );
        delete(&mesh, &bob, &hello, ForMe).await.unwrap();
        assert_eq!(unread(&mesh, &bob, &chat).await, (0, 0));
        assert_eq!(
            state(&get(&mesh, &ada, &hello).await),
            pb::MessageState::Active
        );

        // Non-members and malformed requests.
        let by_dan = delete(&mesh, &dan, &one, ForMe).await.unwrap_err();
        assert_eq!(
            refusal(&by_dan),
            (Code::NotFound, "CONVERSATION_NOT_FOUND".into())
        );
        let unspecified = delete(&mesh, &ada, &one, pb::DeleteScope::Unspecified).await;
        let unspecified = unspecified.unwrap_err();
        assert_eq!(unspecified.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&unspecified), ["scope"]);
        let malformed = mesh
            .message_as(&ada)
            .delete_message(pb::DeleteMessageRequest {
                conversation_id: "x".into(),
                message_id: String::new(),
                scope: 7,
            })
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&malformed),
            ["conversation_id", "message_id", "scope"]
        );
        mesh.shutdown().await;
    }
}

/// The conversation as `user` sees it in ListConversations.
async fn listed(mesh: &TestMesh, user: &SignedIn, room: &pb::Conversation) -> pb::Conversation {
    let listed = mesh
        .message_as(user)
        .list_conversations(pb::ListConversationsRequest::default())
        .await
        .expect("list conversations")
        .into_inner()
        .conversations;
    listed
        .into_iter()
        .find(|c| c.conversation_id == room.conversation_id)
        .expect("listed")
}

#[tokio::test]
async fn previews_respect_deletion_for_me_and_retries_answer_tombstones() {
    use pb::DeleteScope::{ForEveryone, ForMe};
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;

        // Bob's message, deleted by Ada for herself: her preview is a tombstone, his is not.
        let secret = send(&mesh, &bob, &chat, "secret").await;
        delete(&mesh, &ada, &secret, ForMe).await.unwrap();
        for preview in [
            my_view(&mesh, &ada, &chat).await.last_message,
            listed(&mesh, &ada, &chat).await.last_message,
        ] {
            let preview = preview.expect("a preview");
            assert_eq!(preview.message_id, secret.message_id, "{backend:?}");
            assert_eq!(state(&preview), pb::MessageState::DeletedForMe);
            assert_eq!(preview.content, None);
        }
        for preview in [
            my_view(&mesh, &bob, &chat).await.last_message,
            listed(&mesh, &bob, &chat).await.last_message,
        ] {
            let preview = preview.expect("a preview");
            assert_eq!(state(&preview), pb::MessageState::Active);
            assert_eq!(preview.content, secret.content);
        }

        // A retry of a send deleted for everyone answers the tombstone, whatever it carries.
        let request = send_request(&chat, "regret-1", text("regret"));
        let sent = mesh.message_as(&ada).send_message(request.clone()).await;
        let sent = sent.unwrap().into_inner().message.unwrap();
        let gone = delete(&mesh, &ada, &sent, ForEveryone).await.unwrap();
        let retried = mesh.message_as(&ada).send_message(request).await;
        let retried = retried.unwrap().into_inner().message.unwrap();
        assert_eq!(retried, gone);
        assert_eq!(state(&retried), pb::MessageState::DeletedForEveryone);
        let other = send_request(&chat, "regret-1", text("something else"));
        let retried = mesh.message_as(&ada).send_message(other).await;
        assert_eq!(retried.unwrap().into_inner().message.unwrap(), gone);
        let after = my_view(&mesh, &ada, &chat).await;
        assert_eq!(
            after.last_seq,
            gone.seq + 1,
            "only the deletion's seq since"
        );
        mesh.shutdown().await;
    }
}
