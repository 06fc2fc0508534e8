//! Membership edges end to end: the user a USER_NOT_FOUND / BLOCKED names, what a removed and
//! added-back member brings back (no false "seen by", a reaction they can still take back),
//! a member reopening a dead invite link, and invites that stop with their creator's right.

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::{add, denial, id_of, people, remove, update, wait_for_block};
use crate::common::messages::{group, send};
use crate::common::users::block;

/// Code, reason and the `user_id` metadata of a refusal.
fn named(status: &Status) -> (Code, String, Option<String>) {
    let info = status.get_error_details().error_info().cloned();
    let info = info.expect("error info");
    (
        status.code(),
        info.reason,
        info.metadata.get("user_id").cloned(),
    )
}

fn create(members: Vec<String>) -> pb::CreateConversationRequest {
    pb::CreateConversationRequest {
        r#type: pb::ConversationType::Group.into(),
        title: "Named".into(),
        member_user_ids: members,
        client_request_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    }
}

/// The receipts `reader` sees in `room` as (user, read, delivered).
async fn seen_by(
    mesh: &TestMesh,
    reader: &SignedIn,
    room: &pb::Conversation,
) -> Vec<(String, i64, i64)> {
    let request = pb::ListReceiptsRequest {
        conversation_id: room.conversation_id.clone(),
        ..Default::default()
    };
    let page = mesh
        .message_as(reader)
        .list_receipts(request)
        .await
        .unwrap();
    let receipts = page.into_inner().receipts;
    assert!(
        receipts
            .iter()
            .all(|r| (r.last_read_seq > 0) == r.read_at.is_some())
    );
    receipts
        .into_iter()
        .map(|r| (r.user_id, r.last_read_seq, r.delivered_up_to_seq))
        .collect()
}

fn admins_only(room: &pb::Conversation, value: bool) -> pb::UpdateConversationRequest {
    let change = pb::Conversation {
        settings: Some(pb::ConversationSettings {
            only_admins_edit_info: true,
            only_admins_add_members: value,
        }),
        ..Default::default()
    };
    update(room, &["settings.only_admins_add_members"], change)
}

async fn join(mesh: &TestMesh, user: &SignedIn, code: &str) -> Result<bool, Status> {
    let request = pb::JoinByInviteRequest { code: code.into() };
    let joined = mesh.message_as(user).join_by_invite(request).await?;
    Ok(joined.into_inner().joined)
}

async fn invite(mesh: &TestMesh, by: &SignedIn, room: &pb::Conversation) -> pb::Invite {
    let request = pb::CreateInviteRequest {
        conversation_id: room.conversation_id.clone(),
        expires_at: None,
        max_uses: 0,
    };
    let created = mesh.message_as(by).create_invite(request).await.unwrap();
    created.into_inner().invite.unwrap()
}

#[tokio::test]
async fn refusals_name_the_offending_user() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let users = people(&mesh, 3).await;
        let (ada, bob, dan) = (&users[0], &users[1], &users[2]);
        let room = group(&mesh, ada, pb::ConversationType::Group, &[bob]).await;
        let unknown = uuid::Uuid::now_v7().to_string();
        let not_found = (
            Code::NotFound,
            "USER_NOT_FOUND".into(),
            Some(unknown.clone()),
        );
        let mut adding = add(&room, &[dan]);
        adding.user_ids.push(unknown.clone());
        let refused = mesh.message_as(ada).add_members(adding).await.unwrap_err();
        assert_eq!(named(&refused), not_found, "{backend:?}");
        let creating = create(vec![id_of(bob), unknown.clone()]);
        let refused = mesh.message_as(ada).create_conversation(creating).await;
        assert_eq!(named(&refused.unwrap_err()), not_found);

        block(&mesh, dan, ada).await;
        wait_for_block(&mesh, ada, dan).await;
        let blocked = (Code::PermissionDenied, "BLOCKED".into(), Some(id_of(dan)));
        let refused = mesh
            .message_as(ada)
            .add_members(add(&room, &[bob, dan]))
            .await;
        assert_eq!(named(&refused.unwrap_err()), blocked);
        let creating = create(vec![id_of(bob), id_of(dan)]);
        let refused = mesh.message_as(ada).create_conversation(creating).await;
        assert_eq!(named(&refused.unwrap_err()), blocked);
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn added_back_members_bring_back_no_receipts_and_can_unreact() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let users = people(&mesh, 3).await;
        let (ada, bob, cy) = (&users[0], &users[1], &users[2]);
        let room = group(&mesh, ada, pb::ConversationType::Group, &[bob]).await;
        let early = send(&mesh, ada, &room, "before").await;
        let reacted = pb::AddReactionRequest {
            conversation_id: room.conversation_id.clone(),
            message_id: early.message_id.clone(),
            emoji: "👍".into(),
        };
        mesh.message_as(bob).add_reaction(reacted).await.unwrap();
        // Added: joining is not reading.
        mesh.message_as(ada)
            .add_members(add(&room, &[cy]))
            .await
            .unwrap();
        assert!(seen_by(&mesh, ada, &room).await.is_empty(), "{backend:?}");
        let later = send(&mesh, ada, &room, "after").await;
        let read = pb::MarkReadRequest {
            conversation_id: room.conversation_id.clone(),
            last_read_seq: later.seq,
        };
        mesh.message_as(cy).mark_read(read).await.unwrap();
        let delivered = pb::MarkDeliveredRequest {
            conversation_id: room.conversation_id.clone(),
            up_to_seq: later.seq,
        };
        mesh.message_as(bob)
            .mark_delivered(delivered)
            .await
            .unwrap();
        let mut expected = vec![(id_of(bob), 0, later.seq), (id_of(cy), later.seq, 0)];
        expected.sort();
        assert_eq!(seen_by(&mesh, ada, &room).await, expected);
        // Removed and added back: neither comes back.
        for user in [bob, cy] {
            mesh.message_as(ada)
                .remove_member(remove(&room, user))
                .await
                .unwrap();
            mesh.message_as(ada)
                .add_members(add(&room, &[user]))
                .await
                .unwrap();
        }
        assert!(seen_by(&mesh, ada, &room).await.is_empty());

        // Bob's reaction from before: still there, and his to take back.
        let unreact = pb::RemoveReactionRequest {
            conversation_id: room.conversation_id.clone(),
            message_id: early.message_id.clone(),
            emoji: "👍".into(),
        };
        let left = mesh.message_as(bob).remove_reaction(unreact.clone()).await;
        assert!(left.unwrap().into_inner().reactions.is_empty());
        let listed = pb::ListReactionsRequest {
            conversation_id: room.conversation_id.clone(),
            message_id: early.message_id.clone(),
            ..Default::default()
        };
        let listed = mesh.message_as(ada).list_reactions(listed).await.unwrap();
        assert!(listed.into_inner().reactions.is_empty());
        let again = mesh.message_as(bob).remove_reaction(unreact).await;
        assert_eq!(
            denial(again.unwrap_err()),
            (Code::NotFound, "MESSAGE_NOT_FOUND".into())
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn dead_links_for_members_and_invites_of_creators_without_the_right() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let users = people(&mesh, 4).await;
        let (ada, bob, cy, dan) = (&users[0], &users[1], &users[2], &users[3]);
        let room = group(&mesh, ada, pb::ConversationType::Group, &[bob]).await;
        let invalid = (Code::NotFound, "INVITE_INVALID".into());
        // A member reopening a revoked link: OK, nothing changes; an unknown code still fails.
        let revoked = invite(&mesh, ada, &room).await;
        let revoke = pb::RevokeInviteRequest {
            conversation_id: room.conversation_id.clone(),
            invite_id: revoked.invite_id.clone(),
        };
        mesh.message_as(ada).revoke_invite(revoke).await.unwrap();
        assert!(
            !join(&mesh, bob, &revoked.code).await.unwrap(),
            "{backend:?}"
        );
        let unknown = join(&mesh, bob, "AAAAAAAAAAAAAAAAAAAAAA").await;
        assert_eq!(denial(unknown.unwrap_err()), invalid);
        assert_eq!(
            denial(join(&mesh, cy, &revoked.code).await.unwrap_err()),
            invalid
        );

        // A MEMBER's invite works while MEMBERs may add, and stops when they may not.
        let open = admins_only(&room, false);
        mesh.message_as(ada)
            .update_conversation(open)
            .await
            .unwrap();
        let by_bob = invite(&mesh, bob, &room).await;
        let closed = admins_only(&room, true);
        mesh.message_as(ada)
            .update_conversation(closed)
            .await
            .unwrap();
        assert_eq!(
            denial(join(&mesh, cy, &by_bob.code).await.unwrap_err()),
            invalid
        );
        let open = admins_only(&room, false);
        mesh.message_as(ada)
            .update_conversation(open)
            .await
            .unwrap();
        assert!(join(&mesh, cy, &by_bob.code).await.unwrap());
        // Its creator removed: it stops.
        mesh.message_as(ada)
            .remove_member(remove(&room, bob))
            .await
            .unwrap();
        assert_eq!(
            denial(join(&mesh, dan, &by_bob.code).await.unwrap_err()),
            invalid
        );
        mesh.shutdown().await;
    }
}
