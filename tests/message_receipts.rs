//! MessageService read state end to end through the generated gRPC client, on both backends:
//! private settings (mute, pin, archive) as conversation lists show and filter them, the
//! pinned-conversations cap, the forward-only read watermark with the counters it resets,
//! per-device delivery receipts, "seen by" / "delivered to" lists, and every denial.
//!
//! One piece: one member's row seen through every read-state RPC, each write checked through
//! another RPC's read (settings through ListConversations, MarkRead through ListReceipts and
//! GetConversation, MarkDelivered through GetReadState); split by RPC, those cross-checks would
//! belong to neither half.

use common::messages::*;
use common::users::{known_user, mask};
use common::{assert_reason, violated_fields};
use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, PASSWORD, SignedIn, TestMesh};
use tonic::Code;

mod common;

fn settings_request(
    conversation: &pb::Conversation,
    settings: pb::MemberSettings,
    paths: &[&str],
) -> pb::UpdateMemberSettingsRequest {
    pb::UpdateMemberSettingsRequest {
        conversation_id: conversation.conversation_id.clone(),
        settings: Some(settings),
        update_mask: mask(paths),
    }
}

fn pinned() -> pb::MemberSettings {
    pb::MemberSettings {
        pinned: true,
        ..Default::default()
    }
}

/// The ids `user` lists with `filter` (and pinned only when `pinned_only`).
async fn listed(
    mesh: &TestMesh,
    user: &SignedIn,
    filter: pb::ArchiveFilter,
    pinned_only: bool,
) -> Vec<pb::Conversation> {
    let request = pb::ListConversationsRequest {
        archive_filter: filter.into(),
        pinned_only,
        ..Default::default()
    };
    mesh.message_as(user)
        .list_conversations(request)
        .await
        .expect("list conversations")
        .into_inner()
        .conversations
}

fn ids(conversations: &[pb::Conversation]) -> Vec<String> {
    let mut ids: Vec<_> = conversations
        .iter()
        .map(|c| c.conversation_id.clone())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn settings_show_in_lists_and_pins_are_capped() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let eve = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        let room = group(&mesh, &ada, pb::ConversationType::Group, &[&bob]).await;
        let channel = group(&mesh, &ada, pb::ConversationType::Channel, &[&bob]).await;

        let until = prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() + 3600,
            nanos: 0,
        };
        let all = pb::MemberSettings {
            mute_until: Some(until),
            pinned: true,
            archived: true,
        };
        let paths = ["mute_until", "pinned", "archived"];
        let set = mesh
            .message_as(&bob)
            .update_member_settings(settings_request(&room, all, &paths))
            .await
            .unwrap()
            .into_inner()
            .settings;
        assert_eq!(set, Some(all), "{backend:?}");
        let state = my_view(&mesh, &bob, &room).await.my_state.unwrap();
        assert_eq!(state.settings, Some(all));
        // Idempotent: the same request answers the same settings.
        let again = mesh
            .message_as(&bob)
            .update_member_settings(settings_request(&room, all, &paths))
            .await
            .unwrap();
        assert_eq!(again.into_inner().settings, Some(all));
        // Ada's own view is untouched.
        let adas = my_view(&mesh, &ada, &room).await.my_state.unwrap();
        assert_eq!(adas.settings, Some(pb::MemberSettings::default()));

        use pb::ArchiveFilter::*;
        let (c, r, h) = (
            &chat.conversation_id,
            &room.conversation_id,
            &channel.conversation_id,
        );
        let mut rest = vec![c.clone(), h.clone()];
        rest.sort();
        assert_eq!(ids(&listed(&mesh, &bob, Unspecified, false).await), rest);
        assert_eq!(
            ids(&listed(&mesh, &bob, OnlyArchived, false).await),
            [r.as_str()]
        );
        assert_eq!(ids(&listed(&mesh, &bob, All, true).await), [r.as_str()]);
        assert_eq!(listed(&mesh, &bob, All, false).await.len(), 3);
        assert!(listed(&mesh, &bob, ExcludeArchived, true).await.is_empty());

        // A mute_until in the past (or unset) unmutes; unarchive brings it back to the list.
        let past = pb::MemberSettings {
            mute_until: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        };
        let unmuted = mesh
            .message_as(&bob)
            .update_member_settings(settings_request(&room, past, &["mute_until", "archived"]))
            .await
            .unwrap()
            .into_inner()
            .settings
            .unwrap();
        assert_eq!(
            (unmuted.mute_until, unmuted.pinned, unmuted.archived),
            (None, true, false)
        );
        assert_eq!(listed(&mesh, &bob, Unspecified, false).await.len(), 3);

        // Bad input: every malformed field at once.
        let bad = pb::UpdateMemberSettingsRequest {
            conversation_id: "nope".into(),
            settings: Some(pb::MemberSettings {
                mute_until: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                ..Default::default()
            }),
            update_mask: mask(&["mute_until", "title"]),
        };
        let refused = mesh
            .message_as(&bob)
            .update_member_settings(bad)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(
            violated_fields(&refused),
            [
                "conversation_id",
                "update_mask.paths[1]",
                "settings.mute_until"
            ]
        );
        let refused = mesh
            .message_as(&bob)
            .update_member_settings(settings_request(&room, pinned(), &[]))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), ["update_mask"]);
        let stranger = mesh
            .message_as(&eve)
            .update_member_settings(settings_request(&room, pinned(), &["pinned"]))
            .await
            .unwrap_err();
        assert_reason(&stranger, Code::NotFound, "CONVERSATION_NOT_FOUND");

        // Ten pinned conversations at most: the room is pinned; nine more fill the cap.
        let mut more = vec![chat.clone(), channel.clone()];
        for _ in 0..7 {
            more.push(group(&mesh, &ada, pb::ConversationType::Group, &[&bob]).await);
        }
        let eleventh = group(&mesh, &ada, pb::ConversationType::Group, &[&bob]).await;
        for conversation in &more {
            mesh.message_as(&bob)
                .update_member_settings(settings_request(conversation, pinned(), &["pinned"]))
                .await
                .unwrap();
        }
        assert_eq!(listed(&mesh, &bob, All, true).await.len(), 10);
        let full = mesh
            .message_as(&bob)
            .update_member_settings(settings_request(&eleventh, pinned(), &["pinned"]))
            .await
            .unwrap_err();
        assert_reason(&full, Code::ResourceExhausted, "LIMIT_EXCEEDED");
        let state = my_view(&mesh, &bob, &eleventh).await.my_state.unwrap();
        assert!(!state.settings.unwrap().pinned);
        mesh.shutdown().await;
    }
}

async fn mark_read(
    mesh: &TestMesh,
    user: &SignedIn,
    conversation: &pb::Conversation,
    seq: i64,
) -> Result<(i64, i32, i32), tonic::Status> {
    let request = pb::MarkReadRequest {
        conversation_id: conversation.conversation_id.clone(),
        last_read_seq: seq,
    };
    let read = mesh.message_as(user).mark_read(request).await?.into_inner();
    Ok((read.last_read_seq, read.unread_count, read.mention_count))
}

async fn read_state(
    mesh: &TestMesh,
    user: &SignedIn,
    conversation: &pb::Conversation,
) -> Result<pb::GetReadStateResponse, tonic::Status> {
    let request = pb::GetReadStateRequest {
        conversation_id: conversation.conversation_id.clone(),
    };
    Ok(mesh
        .message_as(user)
        .get_read_state(request)
        .await?
        .into_inner())
}

const USER_EVENT: &str = "echo.events.v1.UserEventRecorded";

#[tokio::test]
async fn mark_read_moves_forward_and_resets_counters() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let eve = known_user(&mesh).await;
        direct(&mesh, &ada, &bob).await;
        let room = group(&mesh, &ada, pb::ConversationType::Group, &[&bob]).await; // 1-3
        let content = pb::MessageContent {
            text: "@bob look".into(),
            mentions: vec![pb::Mention {
                user_id: bob.tokens.user_id.clone(),
                offset: 0,
                length: 4,
            }],
            ..Default::default()
        };
        let key = uuid::Uuid::now_v7().to_string();
        mesh.message_as(&ada)
            .send_message(send_request(&room, &key, content))
            .await
            .unwrap(); // 4
        send(&mesh, &ada, &room, "two").await; // 5
        send(&mesh, &ada, &room, "three").await; // 6

        let listed_state = |list: Vec<pb::Conversation>| {
            let it = list
                .into_iter()
                .find(|c| c.conversation_id == room.conversation_id)
                .unwrap();
            let state = it.my_state.unwrap();
            (state.last_read_seq, state.unread_count, state.mention_count)
        };
        let all = pb::ArchiveFilter::All;
        assert_eq!(
            listed_state(listed(&mesh, &bob, all, false).await),
            (0, 3, 1),
            "{backend:?}"
        );
        let state = read_state(&mesh, &bob, &room).await.unwrap();
        assert_eq!(
            (
                state.last_read_seq,
                state.unread_count,
                state.mention_count,
                state.last_seq
            ),
            (0, 3, 1, 6)
        );
        assert!(state.devices.is_empty());

        let events = common::outbox_events(&mesh, "message", USER_EVENT).await;
        assert_eq!(mark_read(&mesh, &bob, &room, 4).await.unwrap(), (4, 2, 0));
        assert_eq!(
            common::outbox_events(&mesh, "message", USER_EVENT).await,
            events + 1
        );
        // Backwards or equal: nothing moves, the current state answers, no event.
        assert_eq!(mark_read(&mesh, &bob, &room, 2).await.unwrap(), (4, 2, 0));
        assert_eq!(mark_read(&mesh, &bob, &room, 4).await.unwrap(), (4, 2, 0));
        assert_eq!(
            common::outbox_events(&mesh, "message", USER_EVENT).await,
            events + 1
        );
        // Past the end: lowered to last_seq.
        assert_eq!(
            mark_read(&mesh, &bob, &room, 1 << 40).await.unwrap(),
            (6, 0, 0)
        );
        assert_eq!(
            listed_state(listed(&mesh, &bob, all, false).await),
            (6, 0, 0)
        );
        let view = my_view(&mesh, &bob, &room).await.my_state.unwrap();
        assert_eq!((view.unread_count, view.mention_count), (0, 0));
        send(&mesh, &ada, &room, "four").await; // 7
        assert_eq!(
            listed_state(listed(&mesh, &bob, all, false).await),
            (6, 1, 0)
        );

        let negative = mark_read(&mesh, &bob, &room, -1).await.unwrap_err();
        assert_eq!(negative.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&negative), ["last_read_seq"]);
        let stranger = mark_read(&mesh, &eve, &room, 1).await.unwrap_err();
        assert_reason(&stranger, Code::NotFound, "CONVERSATION_NOT_FOUND");
        let stranger = read_state(&mesh, &eve, &room).await.unwrap_err();
        assert_reason(&stranger, Code::NotFound, "CONVERSATION_NOT_FOUND");
        mesh.shutdown().await;
    }
}

async fn delivered(
    mesh: &TestMesh,
    user: &SignedIn,
    conversation: &pb::Conversation,
    seq: i64,
) -> Result<i64, tonic::Status> {
    let request = pb::MarkDeliveredRequest {
        conversation_id: conversation.conversation_id.clone(),
        up_to_seq: seq,
    };
    let done = mesh.message_as(user).mark_delivered(request).await?;
    Ok(done.into_inner().delivered_up_to_seq)
}

async fn receipts(
    mesh: &TestMesh,
    user: &SignedIn,
    conversation: &pb::Conversation,
    min_seq: i64,
    page_size: i32,
    page_token: String,
) -> Result<pb::ListReceiptsResponse, tonic::Status> {
    let request = pb::ListReceiptsRequest {
        conversation_id: conversation.conversation_id.clone(),
        min_seq,
        page_size,
        page_token,
    };
    Ok(mesh
        .message_as(user)
        .list_receipts(request)
        .await?
        .into_inner())
}

#[tokio::test]
async fn delivery_receipts_per_device_and_seen_by() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cy = known_user(&mesh).await;
        let eve = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        direct(&mesh, &ada, &cy).await;
        // Bob's second device: another sign-in.
        let tokens = common::login(&mesh, &bob.phone, PASSWORD).await.unwrap();
        let bob_phone = SignedIn {
            phone: bob.phone.clone(),
            tokens,
        };
        let room = group(&mesh, &ada, pb::ConversationType::Group, &[&bob, &cy]).await; // 1-4
        send(&mesh, &ada, &room, "one").await; // 5
        send(&mesh, &ada, &room, "two").await; // 6

        assert_eq!(
            delivered(&mesh, &bob, &room, 5).await.unwrap(),
            5,
            "{backend:?}"
        );
        assert_eq!(
            delivered(&mesh, &bob_phone, &room, 1 << 40).await.unwrap(),
            6
        );
        assert_eq!(
            delivered(&mesh, &bob, &room, 3).await.unwrap(),
            5,
            "never back"
        );
        let state = read_state(&mesh, &bob, &room).await.unwrap();
        let mut devices: Vec<_> = state
            .devices
            .iter()
            .map(|d| (d.delivered_up_to_seq, d.delivered_at.is_some()))
            .collect();
        devices.sort();
        assert_eq!(devices, [(5, true), (6, true)]);
        mark_read(&mesh, &cy, &room, 6).await.unwrap();

        // Ada sees Bob (delivered to his furthest device) and Cy (read); never herself.
        let seen = receipts(&mesh, &ada, &room, 0, 0, String::new())
            .await
            .unwrap();
        let mut rows: Vec<_> = seen
            .receipts
            .iter()
            .map(|r| (r.user_id.clone(), r.last_read_seq, r.delivered_up_to_seq))
            .collect();
        rows.sort();
        let mut expected = vec![
            (bob.tokens.user_id.clone(), 0, 6),
            (cy.tokens.user_id.clone(), 6, 0),
        ];
        expected.sort();
        assert_eq!(rows, expected);
        assert!(seen.next_page_token.is_empty());
        let got_six = receipts(&mesh, &ada, &room, 6, 0, String::new())
            .await
            .unwrap();
        assert_eq!(got_six.receipts.len(), 1);
        assert_eq!(got_six.receipts[0].user_id, bob.tokens.user_id);
        // Pages of one join up; a token is bound to its min_seq.
        let first = receipts(&mesh, &ada, &room, 0, 1, String::new())
            .await
            .unwrap();
        assert_eq!(first.receipts.len(), 1);
        let token = first.next_page_token.clone();
        let second = receipts(&mesh, &ada, &room, 0, 1, token.clone())
            .await
            .unwrap();
        let paged = [&first.receipts[0].user_id, &second.receipts[0].user_id];
        assert_eq!(paged, [&expected[0].0, &expected[1].0]);
        let foreign = receipts(&mesh, &ada, &room, 6, 1, token).await.unwrap_err();
        assert_eq!(violated_fields(&foreign), ["page_token"]);

        // Any member of a direct conversation; only owners and admins of a channel.
        delivered(&mesh, &bob, &chat, 3).await.unwrap();
        let peer = receipts(&mesh, &ada, &chat, 0, 0, String::new())
            .await
            .unwrap();
        assert_eq!(peer.receipts[0].delivered_up_to_seq, 3);
        let channel = group(&mesh, &ada, pb::ConversationType::Channel, &[&bob, &cy]).await;
        delivered(&mesh, &cy, &channel, 4).await.unwrap();
        let member = receipts(&mesh, &bob, &channel, 0, 0, String::new())
            .await
            .unwrap_err();
        assert_reason(&member, Code::PermissionDenied, "NOT_ALLOWED");
        let owner = receipts(&mesh, &ada, &channel, 0, 0, String::new())
            .await
            .unwrap();
        assert_eq!(owner.receipts.len(), 1);

        // Denials.
        let negative = delivered(&mesh, &bob, &room, -5).await.unwrap_err();
        assert_eq!(violated_fields(&negative), ["up_to_seq"]);
        let negative = receipts(&mesh, &ada, &room, -1, -1, String::new())
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&negative), ["min_seq", "page_size"]);
        let stranger = delivered(&mesh, &eve, &room, 1).await.unwrap_err();
        assert_reason(&stranger, Code::NotFound, "CONVERSATION_NOT_FOUND");
        let stranger = receipts(&mesh, &eve, &room, 0, 0, String::new())
            .await
            .unwrap_err();
        assert_reason(&stranger, Code::NotFound, "CONVERSATION_NOT_FOUND");
        mesh.shutdown().await;
    }
}
