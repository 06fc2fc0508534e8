//! MessageService membership end to end through the generated gRPC client, on both backends:
//! updating a conversation, adding, removing (and adding back), leaving, roles and ownership
//! transfer, member lists, and every denial a member, an admin, a non-member and a blocked
//! user meet. Roles, leaving and member lists are in `message_members/roles.rs`, invites in
//! `message_members/invites.rs`.

use common::messages::*;
use common::users::{avatar, block, known_user, mask};
use common::{reason, violated_fields};
use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use pb::list_messages_request::Anchor;
use tonic::{Code, Status};

mod common;
#[path = "message_members/invites.rs"]
mod invites;
#[path = "message_members/rejoin.rs"]
mod rejoin;
#[path = "message_members/roles.rs"]
mod roles;

/// The code and reason of a refusal.
fn denial(status: Status) -> (Code, String) {
    (status.code(), reason(&status))
}

fn not_found() -> (Code, String) {
    (Code::NotFound, "CONVERSATION_NOT_FOUND".into())
}

fn not_allowed() -> (Code, String) {
    (Code::PermissionDenied, "NOT_ALLOWED".into())
}

fn id_of(user: &SignedIn) -> String {
    user.tokens.user_id.clone()
}

/// `count` users the message service knows (each has a direct conversation with the first).
async fn people(mesh: &TestMesh, count: usize) -> Vec<SignedIn> {
    let mut users = Vec::new();
    for _ in 0..count {
        users.push(known_user(mesh).await);
    }
    for other in &users[1..] {
        direct(mesh, &users[0], other).await;
    }
    users
}

fn update(
    conversation: &pb::Conversation,
    paths: &[&str],
    change: pb::Conversation,
) -> pb::UpdateConversationRequest {
    pb::UpdateConversationRequest {
        conversation: Some(pb::Conversation {
            conversation_id: conversation.conversation_id.clone(),
            ..change
        }),
        update_mask: mask(paths),
    }
}

fn titled(title: &str) -> pb::Conversation {
    pb::Conversation {
        title: title.into(),
        ..Default::default()
    }
}

fn add(conversation: &pb::Conversation, users: &[&SignedIn]) -> pb::AddMembersRequest {
    pb::AddMembersRequest {
        conversation_id: conversation.conversation_id.clone(),
        user_ids: users.iter().map(|u| id_of(u)).collect(),
    }
}

fn remove(conversation: &pb::Conversation, user: &SignedIn) -> pb::RemoveMemberRequest {
    pb::RemoveMemberRequest {
        conversation_id: conversation.conversation_id.clone(),
        user_id: id_of(user),
    }
}

fn leave(conversation: &pb::Conversation) -> pb::LeaveConversationRequest {
    pb::LeaveConversationRequest {
        conversation_id: conversation.conversation_id.clone(),
    }
}

fn role(
    conversation: &pb::Conversation,
    user: &SignedIn,
    role: pb::MemberRole,
) -> pb::UpdateMemberRoleRequest {
    pb::UpdateMemberRoleRequest {
        conversation_id: conversation.conversation_id.clone(),
        user_id: id_of(user),
        role: role.into(),
    }
}

/// The seqs of the messages `user` may read in `conversation`.
async fn readable(
    mesh: &TestMesh,
    user: &SignedIn,
    conversation: &pb::Conversation,
) -> Result<Vec<i64>, Status> {
    let page = mesh
        .message_as(user)
        .list_messages(pb::ListMessagesRequest {
            conversation_id: conversation.conversation_id.clone(),
            anchor: Some(Anchor::AfterSeq(0)),
            page_size: 200,
            ..Default::default()
        })
        .await?;
    Ok(page.into_inner().messages.iter().map(|m| m.seq).collect())
}

#[tokio::test]
async fn update_conversation_journey_and_denials() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let users = people(&mesh, 3).await;
        let (ada, bob, eve) = (&users[0], &users[1], &users[2]);
        let room = group(&mesh, ada, pb::ConversationType::Group, &[bob]).await;
        let change = pb::Conversation {
            title: "Difference Engine".into(),
            description: "Notes".into(),
            avatar: Some(avatar()),
            ..Default::default()
        };
        let paths = ["title", "description", "avatar"];
        let updated = mesh
            .message_as(ada)
            .update_conversation(update(&room, &paths, change))
            .await
            .unwrap()
            .into_inner()
            .conversation
            .unwrap();
        assert_eq!(updated.title, "Difference Engine", "{backend:?}");
        assert_eq!(updated.avatar, Some(avatar()));
        assert_eq!(updated.last_seq, room.last_seq + 1);
        assert!(updated.my_state.is_some());
        // Nothing changes: no new seq.
        let same = mesh
            .message_as(ada)
            .update_conversation(update(&room, &["title"], titled("Difference Engine")))
            .await
            .unwrap()
            .into_inner()
            .conversation
            .unwrap();
        assert_eq!(same.last_seq, updated.last_seq);
        // A MEMBER edits nothing while info is admins-only, and never settings.
        let by_member = mesh
            .message_as(bob)
            .update_conversation(update(&room, &["title"], titled("Mine")))
            .await
            .unwrap_err();
        assert_eq!(denial(by_member), not_allowed());
        let settings = mesh
            .message_as(bob)
            .update_conversation(update(&room, &["settings"], pb::Conversation::default()))
            .await
            .unwrap_err();
        assert_eq!(denial(settings), not_allowed());
        // Opened by the owner, then the member may rename it.
        let open = pb::Conversation {
            settings: Some(pb::ConversationSettings {
                only_admins_edit_info: false,
                only_admins_add_members: true,
            }),
            ..Default::default()
        };
        let path = ["settings.only_admins_edit_info"];
        mesh.message_as(ada)
            .update_conversation(update(&room, &path, open))
            .await
            .unwrap();
        let renamed = mesh
            .message_as(bob)
            .update_conversation(update(&room, &["title"], titled("Ours")))
            .await
            .unwrap()
            .into_inner()
            .conversation
            .unwrap();
        assert_eq!(renamed.title, "Ours");
        // Strangers, direct conversations, bad fields.
        let stranger = mesh
            .message_as(eve)
            .update_conversation(update(&room, &["title"], titled("x")))
            .await
            .unwrap_err();
        assert_eq!(denial(stranger), not_found());
        let chat = direct(&mesh, ada, bob).await;
        let on_direct = mesh
            .message_as(ada)
            .update_conversation(update(&chat, &["title"], titled("x")))
            .await
            .unwrap_err();
        assert_eq!(denial(on_direct), not_allowed());
        let mut bad_avatar = avatar();
        bad_avatar.url = "ftp://nope".into();
        let bad = pb::Conversation {
            title: "  ".into(),
            avatar: Some(bad_avatar),
            ..Default::default()
        };
        let refused = mesh
            .message_as(ada)
            .update_conversation(update(&room, &["title", "members", "avatar"], bad))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(
            violated_fields(&refused),
            [
                "update_mask.paths[1]",
                "conversation.title",
                "conversation.avatar.url"
            ]
        );
        let no_mask = mesh
            .message_as(ada)
            .update_conversation(update(&room, &[], titled("x")))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&no_mask), ["update_mask"]);
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn adding_removing_and_adding_back() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let users = people(&mesh, 4).await;
        let (ada, bob, cy, dan) = (&users[0], &users[1], &users[2], &users[3]);
        let room = group(&mesh, ada, pb::ConversationType::Group, &[bob]).await;
        let before_cy = send(&mesh, ada, &room, "before cy").await;
        // Admins add (a MEMBER may not by default); current members are skipped.
        let by_member = mesh.message_as(bob).add_members(add(&room, &[cy])).await;
        assert_eq!(denial(by_member.unwrap_err()), not_allowed(), "{backend:?}");
        let added = mesh
            .message_as(ada)
            .add_members(add(&room, &[cy, bob]))
            .await
            .unwrap()
            .into_inner()
            .members;
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].user_id, id_of(cy));
        assert_eq!(added[0].added_by_user_id, id_of(ada));
        assert_eq!(added[0].joined_at_seq, before_cy.seq + 1);
        let cy_view = my_view(&mesh, cy, &room).await;
        assert_eq!(cy_view.member_count, 3);
        assert_eq!(readable(&mesh, cy, &room).await.unwrap(), Vec::<i64>::new());
        // Unknown users, blocks, bad fields.
        let mut unknown = add(&room, &[dan]);
        unknown.user_ids.push(uuid::Uuid::now_v7().to_string());
        let refused = mesh.message_as(ada).add_members(unknown).await.unwrap_err();
        assert_eq!(denial(refused), (Code::NotFound, "USER_NOT_FOUND".into()));
        let mut bad = add(&room, &[]);
        let refused = mesh
            .message_as(ada)
            .add_members(bad.clone())
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), ["user_ids"]);
        bad.user_ids.push("not-a-user".into());
        let refused = mesh.message_as(ada).add_members(bad).await.unwrap_err();
        assert_eq!(violated_fields(&refused), ["user_ids[0]"]);
        block(&mesh, dan, ada).await;
        wait_for_block(&mesh, ada, dan).await;
        let refused = mesh.message_as(ada).add_members(add(&room, &[dan])).await;
        assert_eq!(
            denial(refused.unwrap_err()),
            (Code::PermissionDenied, "BLOCKED".into())
        );
        let chat = direct(&mesh, ada, bob).await;
        let on_direct = mesh.message_as(ada).add_members(add(&chat, &[cy])).await;
        assert_eq!(denial(on_direct.unwrap_err()), not_allowed());
        let stranger = mesh.message_as(dan).add_members(add(&room, &[cy])).await;
        assert_eq!(denial(stranger.unwrap_err()), not_found());

        // Removing: the removed member reads nothing any more.
        let seen_by_bob = send(&mesh, ada, &room, "bob saw this").await;
        assert!(
            readable(&mesh, bob, &room)
                .await
                .unwrap()
                .contains(&seen_by_bob.seq)
        );
        let removed = mesh
            .message_as(ada)
            .remove_member(remove(&room, bob))
            .await
            .unwrap()
            .into_inner()
            .seq;
        assert_eq!(removed, seen_by_bob.seq + 1);
        let gone = readable(&mesh, bob, &room).await.unwrap_err();
        assert_eq!(denial(gone), not_found());
        let again = mesh.message_as(ada).remove_member(remove(&room, bob)).await;
        assert_eq!(
            again.unwrap().into_inner().seq,
            0,
            "not a member: OK, seq 0"
        );
        let itself = mesh.message_as(ada).remove_member(remove(&room, ada)).await;
        assert_eq!(violated_fields(&itself.unwrap_err()), ["user_id"]);
        let by_stranger = mesh.message_as(bob).remove_member(remove(&room, cy)).await;
        assert_eq!(denial(by_stranger.unwrap_err()), not_found());
        let by_member = mesh.message_as(cy).remove_member(remove(&room, ada)).await;
        assert_eq!(denial(by_member.unwrap_err()), not_allowed());

        // Added back: history only from the new join.
        send(&mesh, ada, &room, "while bob was away").await;
        let back = mesh
            .message_as(ada)
            .add_members(add(&room, &[bob]))
            .await
            .unwrap()
            .into_inner()
            .members;
        let joined_at = back[0].joined_at_seq;
        assert!(joined_at > removed);
        assert_eq!(
            readable(&mesh, bob, &room).await.unwrap(),
            Vec::<i64>::new()
        );
        let welcome = send(&mesh, ada, &room, "welcome back").await;
        assert_eq!(readable(&mesh, bob, &room).await.unwrap(), [welcome.seq]);
        let state = my_view(&mesh, bob, &room).await.my_state.unwrap();
        assert_eq!((state.joined_at_seq, state.unread_count), (joined_at, 1));
        let old = mesh
            .message_as(bob)
            .get_message(pb::GetMessageRequest {
                conversation_id: room.conversation_id.clone(),
                message_id: seen_by_bob.message_id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(denial(old), (Code::NotFound, "MESSAGE_NOT_FOUND".into()));
        mesh.shutdown().await;
    }
}
