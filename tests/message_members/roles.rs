//! Roles, ownership transfer, leaving and member lists end to end, with their denials.

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, TestMesh};
use tonic::Code;

use super::{
    denial, direct, group, id_of, leave, my_view, not_allowed, not_found, people, remove, role,
};
use crate::common::violated_fields;

#[tokio::test]
async fn roles_leaving_and_member_lists() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let users = people(&mesh, 5).await;
        let (ada, bob, cy, dan, eve) = (&users[0], &users[1], &users[2], &users[3], &users[4]);
        let channel = group(&mesh, ada, pb::ConversationType::Channel, &[bob, cy, dan]).await;
        // Roles: OWNER only.
        let promote = mesh
            .message_as(ada)
            .update_member_role(role(&channel, bob, pb::MemberRole::Admin))
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap();
        assert_eq!(promote.role, pb::MemberRole::Admin as i32, "{backend:?}");
        let by_admin = mesh
            .message_as(bob)
            .update_member_role(role(&channel, cy, pb::MemberRole::Admin))
            .await;
        assert_eq!(denial(by_admin.unwrap_err()), not_allowed());
        let outsider = mesh
            .message_as(ada)
            .update_member_role(role(&channel, eve, pb::MemberRole::Admin))
            .await;
        assert_eq!(
            denial(outsider.unwrap_err()),
            (Code::NotFound, "USER_NOT_FOUND".into())
        );
        let mut bad = role(&channel, ada, pb::MemberRole::Unspecified);
        let refused = mesh.message_as(ada).update_member_role(bad.clone()).await;
        assert_eq!(violated_fields(&refused.unwrap_err()), ["user_id", "role"]);
        bad.conversation_id = "x".into();
        let refused = mesh.message_as(eve).update_member_role(bad).await;
        assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
        // An ADMIN removes MEMBERs only.
        let admin_removes_owner = mesh
            .message_as(bob)
            .remove_member(remove(&channel, ada))
            .await;
        assert_eq!(denial(admin_removes_owner.unwrap_err()), not_allowed());

        // Member lists: role then join order; a channel MEMBER sees admins and themselves.
        let list = |size, token: String| pb::ListMembersRequest {
            conversation_id: channel.conversation_id.clone(),
            page_size: size,
            page_token: token,
        };
        let ids = |page: &pb::ListMembersResponse| {
            page.members
                .iter()
                .map(|m| m.user_id.clone())
                .collect::<Vec<_>>()
        };
        let first = mesh
            .message_as(bob)
            .list_members(list(2, String::new()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ids(&first), [id_of(ada), id_of(bob)]);
        let rest = mesh
            .message_as(bob)
            .list_members(list(2, first.next_page_token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ids(&rest), [id_of(cy), id_of(dan)]);
        assert!(rest.next_page_token.is_empty());
        let as_member = mesh
            .message_as(cy)
            .list_members(list(0, String::new()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ids(&as_member), [id_of(ada), id_of(bob), id_of(cy)]);
        let stranger = mesh
            .message_as(eve)
            .list_members(list(0, String::new()))
            .await;
        assert_eq!(denial(stranger.unwrap_err()), not_found());
        let bad_token = mesh.message_as(cy).list_members(list(0, "zz".into())).await;
        assert_eq!(violated_fields(&bad_token.unwrap_err()), ["page_token"]);

        // Leaving: not the last owner; members go; ownership passes on.
        let owner_leaves = mesh
            .message_as(ada)
            .leave_conversation(leave(&channel))
            .await;
        assert_eq!(
            denial(owner_leaves.unwrap_err()),
            (Code::FailedPrecondition, "LAST_OWNER".into())
        );
        let left = mesh
            .message_as(dan)
            .leave_conversation(leave(&channel))
            .await
            .unwrap()
            .into_inner()
            .seq;
        let after = my_view(&mesh, ada, &channel).await;
        assert_eq!((after.last_seq, after.member_count), (left, 3));
        let twice = mesh
            .message_as(dan)
            .leave_conversation(leave(&channel))
            .await;
        assert_eq!(denial(twice.unwrap_err()), not_found());
        let transfer = mesh
            .message_as(ada)
            .update_member_role(role(&channel, cy, pb::MemberRole::Owner))
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap();
        assert_eq!(transfer.role, pb::MemberRole::Owner as i32);
        let ada_now = my_view(&mesh, ada, &channel).await;
        assert_eq!(ada_now.my_state.unwrap().role, pb::MemberRole::Admin as i32);
        assert_eq!(ada_now.last_seq, left + 2, "a transfer is two events");
        mesh.message_as(ada)
            .leave_conversation(leave(&channel))
            .await
            .unwrap();
        let chat = direct(&mesh, bob, cy).await;
        let direct_leave = mesh.message_as(bob).leave_conversation(leave(&chat)).await;
        assert_eq!(denial(direct_leave.unwrap_err()), not_allowed());
        let direct_role = mesh
            .message_as(bob)
            .update_member_role(role(&chat, cy, pb::MemberRole::Admin))
            .await;
        assert_eq!(denial(direct_role.unwrap_err()), not_allowed());
        mesh.shutdown().await;
    }
}
