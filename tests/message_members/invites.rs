//! Invites end to end: creating, listing and revoking them, joining with a code, and the
//! denials (roles, strangers, direct conversations, bad fields, revoked, used-up and expired
//! codes, the rate limit against guessing).

use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tonic::Code;
use tonic_types::StatusExt;

use super::{denial, group, not_allowed, not_found, people};
use crate::common::messages::{direct, my_view};
use crate::common::violated_fields;

fn create(conversation: &pb::Conversation, max_uses: i32) -> pb::CreateInviteRequest {
    pb::CreateInviteRequest {
        conversation_id: conversation.conversation_id.clone(),
        expires_at: None,
        max_uses,
    }
}

async fn new_invite(
    mesh: &TestMesh,
    by: &SignedIn,
    request: pb::CreateInviteRequest,
) -> pb::Invite {
    mesh.message_as(by)
        .create_invite(request)
        .await
        .expect("create invite")
        .into_inner()
        .invite
        .unwrap()
}

async fn join(
    mesh: &TestMesh,
    user: &SignedIn,
    code: &str,
) -> Result<pb::JoinByInviteResponse, tonic::Status> {
    let request = pb::JoinByInviteRequest { code: code.into() };
    Ok(mesh
        .message_as(user)
        .join_by_invite(request)
        .await?
        .into_inner())
}

fn invalid() -> (Code, String) {
    (Code::NotFound, "INVITE_INVALID".into())
}

fn in_future(after: Duration) -> prost_types::Timestamp {
    (std::time::SystemTime::now() + after).into()
}

#[tokio::test]
async fn invites_create_list_revoke_and_join() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let users = people(&mesh, 6).await;
        let (ada, bob, cy, dan, eve, fay) = (
            &users[0], &users[1], &users[2], &users[3], &users[4], &users[5],
        );
        let room = group(&mesh, ada, pb::ConversationType::Group, &[bob]).await;
        // Admins only (by default), members only, groups and channels only.
        let by_member = mesh.message_as(bob).create_invite(create(&room, 0)).await;
        assert_eq!(denial(by_member.unwrap_err()), not_allowed(), "{backend:?}");
        let by_stranger = mesh.message_as(cy).create_invite(create(&room, 0)).await;
        assert_eq!(denial(by_stranger.unwrap_err()), not_found());
        let chat = direct(&mesh, ada, bob).await;
        let on_direct = mesh.message_as(ada).create_invite(create(&chat, 0)).await;
        assert_eq!(denial(on_direct.unwrap_err()), not_allowed());
        let mut bad = create(&room, -1);
        bad.expires_at = Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        });
        let refused = mesh.message_as(ada).create_invite(bad).await.unwrap_err();
        assert_eq!(violated_fields(&refused), ["expires_at", "max_uses"]);

        let once = new_invite(&mesh, ada, create(&room, 1)).await;
        assert_eq!(once.code.len(), 22);
        assert_eq!((once.max_uses, once.use_count), (1, 0));
        let open = new_invite(&mesh, ada, create(&room, 0)).await;
        assert_ne!(once.code, open.code);

        // Joining: once counts, a member again changes nothing.
        let joined = join(&mesh, cy, &once.code).await.unwrap();
        assert!(joined.joined);
        let conversation = joined.conversation.unwrap();
        assert_eq!(conversation.member_count, 3);
        let state = conversation.my_state.unwrap();
        assert_eq!(
            (state.role, state.joined_at_seq),
            (pb::MemberRole::Member as i32, conversation.last_seq)
        );
        let again = join(&mesh, cy, &open.code).await.unwrap();
        assert!(!again.joined);
        let used_up = join(&mesh, dan, &once.code).await.unwrap_err();
        assert_eq!(denial(used_up), invalid());

        // Listing: managers only, newest first, inactive on request.
        let list = |include_inactive| pb::ListInvitesRequest {
            conversation_id: room.conversation_id.clone(),
            include_inactive,
            ..Default::default()
        };
        let listed = mesh
            .message_as(ada)
            .list_invites(list(true))
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<&str> = listed
            .invites
            .iter()
            .map(|i| i.invite_id.as_str())
            .collect();
        assert_eq!(ids, [open.invite_id.as_str(), once.invite_id.as_str()]);
        assert_eq!(listed.invites[1].use_count, 1);
        let active = mesh
            .message_as(ada)
            .list_invites(list(false))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(active.invites.len(), 1);
        let by_member = mesh.message_as(bob).list_invites(list(false)).await;
        assert_eq!(denial(by_member.unwrap_err()), not_allowed());
        let by_stranger = mesh.message_as(dan).list_invites(list(false)).await;
        assert_eq!(denial(by_stranger.unwrap_err()), not_found());

        // Revoking: managers or the creator; twice is fine; unknown ids are refused.
        let revoke = |invite_id: &str| pb::RevokeInviteRequest {
            conversation_id: room.conversation_id.clone(),
            invite_id: invite_id.into(),
        };
        let by_member = mesh
            .message_as(bob)
            .revoke_invite(revoke(&open.invite_id))
            .await;
        assert_eq!(denial(by_member.unwrap_err()), not_allowed());
        let revoked = mesh
            .message_as(ada)
            .revoke_invite(revoke(&open.invite_id))
            .await;
        let revoked = revoked.unwrap().into_inner().invite.unwrap();
        assert!(revoked.revoked_at.is_some());
        let twice = mesh
            .message_as(ada)
            .revoke_invite(revoke(&open.invite_id))
            .await;
        assert_eq!(
            twice.unwrap().into_inner().invite.unwrap().revoked_at,
            revoked.revoked_at
        );
        let unknown = uuid::Uuid::now_v7().to_string();
        let refused = mesh.message_as(ada).revoke_invite(revoke(&unknown)).await;
        assert_eq!(denial(refused.unwrap_err()), invalid());
        let refused = join(&mesh, dan, &open.code).await.unwrap_err();
        assert_eq!(denial(refused), invalid());

        // Expired codes.
        let mut soon = create(&room, 0);
        soon.expires_at = Some(in_future(Duration::from_secs(1)));
        let soon = new_invite(&mesh, ada, soon).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let expired = join(&mesh, dan, &soon.code).await.unwrap_err();
        assert_eq!(
            denial(expired),
            (Code::FailedPrecondition, "INVITE_EXPIRED".into())
        );

        // A malformed code is a bad field; guessing is rate-limited.
        let malformed = join(&mesh, eve, "not a code").await.unwrap_err();
        assert_eq!(violated_fields(&malformed), ["code"]);
        let guess = "A".repeat(22);
        for _ in 0..10 {
            let wrong = join(&mesh, eve, &guess).await.unwrap_err();
            assert_eq!(denial(wrong), invalid());
        }
        let limited = join(&mesh, eve, &guess).await.unwrap_err();
        assert_eq!(limited.code(), Code::ResourceExhausted);
        assert_eq!(crate::common::reason(&limited), "RATE_LIMITED");
        assert!(limited.get_error_details().retry_info().is_some());

        // With adding open to everyone, a member invites too, and revokes their own.
        let open_adding = pb::UpdateConversationRequest {
            conversation: Some(pb::Conversation {
                conversation_id: room.conversation_id.clone(),
                settings: Some(pb::ConversationSettings {
                    only_admins_edit_info: true,
                    only_admins_add_members: false,
                }),
                ..Default::default()
            }),
            update_mask: crate::common::users::mask(&["settings"]),
        };
        mesh.message_as(ada)
            .update_conversation(open_adding)
            .await
            .unwrap();
        let bobs = new_invite(&mesh, bob, create(&room, 0)).await;
        let joined = join(&mesh, fay, &bobs.code).await.unwrap();
        assert!(joined.joined);
        assert_eq!(my_view(&mesh, fay, &room).await.member_count, 4);
        mesh.message_as(bob)
            .revoke_invite(revoke(&bobs.invite_id))
            .await
            .unwrap();

        // At most 100 active invites (none is active now: used up, revoked or expired).
        for _ in 0..100 {
            new_invite(&mesh, ada, create(&room, 0)).await;
        }
        let full = mesh
            .message_as(ada)
            .create_invite(create(&room, 0))
            .await
            .unwrap_err();
        let info = full
            .get_error_details()
            .error_info()
            .cloned()
            .expect("error info");
        assert_eq!(
            (full.code(), info.reason.as_str()),
            (Code::ResourceExhausted, "LIMIT_EXCEEDED")
        );
        assert_eq!(
            info.metadata.get("limit").map(String::as_str),
            Some("invites")
        );
        mesh.shutdown().await;
    }
}
