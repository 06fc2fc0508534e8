//! Channel fan-out has its own queue (spec §B5): a channel post is queued by the event and its
//! members are notified in chunks (these meshes use chunks of 2, so five members take three),
//! each member once, with the same entry and alert a group member gets. Membership changes
//! apply in order with the messages.

use crate::helpers::*;

#[tokio::test]
async fn a_channel_post_reaches_every_member_once_through_the_fan_out_queue() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let Some((mesh, _files)) = start(backend, &fake).await else {
            continue;
        };
        let owner = mesh.sign_up().await;
        let mut members = Vec::new();
        for _ in 0..5 {
            let member = mesh.sign_up().await;
            let token = register_fcm(&mesh, &member).await;
            members.push((member, token));
        }
        let listed: Vec<&SignedIn> = members.iter().map(|(m, _)| m).collect();
        let channel =
            common::messages::group(&mesh, &owner, msg::ConversationType::Channel, &listed).await;
        let (mentioned, _) = &members[2];
        let content = msg::MessageContent {
            text: "@you launch at noon".into(),
            mentions: vec![msg::Mention {
                user_id: mentioned.tokens.user_id.clone(),
                offset: 0,
                length: 4,
            }],
            ..Default::default()
        };
        let post = common::messages::send_content(&mesh, &owner, &channel, content).await;

        for (i, (member, token)) in members.iter().enumerate() {
            let alert = eventually(ARRIVES, "the member's alert", || async {
                to(&fake, token)
                    .into_iter()
                    .find(|r| data(r, "message_id") == post.message_id)
            })
            .await;
            let want = if i == 2 { "mention" } else { "message" };
            assert_eq!(data(&alert, "kind"), want, "{backend:?}: member {i}");
            let entries = inbox(&mesh, member).await;
            assert_eq!(entries.len(), 1, "{backend:?}: member {i}: {entries:?}");
            assert_eq!(entries[0].message_id, post.message_id);
            // Every chunk's entries carry the preview (asked between the chunk's transactions).
            assert_eq!(
                entries[0].preview, "@you launch at noon",
                "{backend:?}: member {i}"
            );
            assert_eq!(badge(&mesh, member).await, 1, "{backend:?}: member {i}");
        }
        // Nothing twice, and nothing for the owner, who posted.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (i, (_, token)) in members.iter().enumerate() {
            let alerts = to(&fake, token)
                .into_iter()
                .filter(|r| data(r, "message_id") == post.message_id)
                .count();
            assert_eq!(alerts, 1, "{backend:?}: member {i} alerted once");
        }
        assert!(
            inbox(&mesh, &owner).await.is_empty(),
            "{backend:?}: the sender"
        );
        mesh.shutdown().await;
    }
}

/// Membership is applied in order with the messages (the conversation's own MemberJoined and
/// MemberRemoved events, besides the members' user events): a member added right before a
/// message is pushed it, one removed right before is not, with no wait in between.
#[tokio::test]
async fn members_added_or_removed_right_before_a_message_are_pushed_accordingly() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let Some((mesh, _files)) = start(backend, &fake).await else {
            continue;
        };
        let (ada, bob, cy) = (
            mesh.sign_up().await,
            mesh.sign_up().await,
            mesh.sign_up().await,
        );
        let bob_token = register_fcm(&mesh, &bob).await;
        let cy_token = register_fcm(&mesh, &cy).await;
        let group =
            common::messages::group(&mesh, &ada, msg::ConversationType::Group, &[&bob]).await;
        let id = group.conversation_id.clone();
        common::messages::add_members(&mesh, &ada, &id, &[&cy]).await;
        let welcome = send(&mesh, &ada, &group, "welcome, Cy").await;
        mesh.message_as(&ada)
            .remove_member(msg::RemoveMemberRequest {
                conversation_id: id.clone(),
                user_id: bob.tokens.user_id.clone(),
            })
            .await
            .expect("remove Bob");
        let after = send(&mesh, &ada, &group, "Bob is gone").await;

        eventually(ARRIVES, "Cy's alert of the welcome", || async {
            to(&fake, &cy_token)
                .into_iter()
                .find(|r| data(r, "message_id") == welcome.message_id)
        })
        .await;
        eventually(ARRIVES, "Cy's alert after Bob left", || async {
            to(&fake, &cy_token)
                .into_iter()
                .find(|r| data(r, "message_id") == after.message_id)
        })
        .await;
        assert!(
            to(&fake, &bob_token)
                .iter()
                .all(|r| data(r, "message_id") != after.message_id),
            "{backend:?}: Bob was removed before it was sent: {:?}",
            to(&fake, &bob_token)
        );
        mesh.shutdown().await;
    }
}
