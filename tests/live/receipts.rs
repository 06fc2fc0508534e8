//! Receipts and read markers go live to the other members of small DIRECT and GROUP
//! conversations (ephemeral, no cursor); the reader's own devices get the durable
//! read_marker_moved instead; channels and big groups get neither.

use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, TestMesh};
use pb::subscribe_response::Item;
use pb::user_event::Kind as UserKind;

use crate::common::live::*;
use crate::common::messages::{direct, send};
use crate::common::users::known_user;

fn receipt(response: &pb::SubscribeResponse) -> Option<&pb::ReceiptUpdate> {
    match &response.item {
        Some(Item::ReceiptUpdate(update)) => Some(update),
        _ => None,
    }
}

fn read_marker(response: &pb::SubscribeResponse) -> Option<&pb::ReadMarkerUpdate> {
    match &response.item {
        Some(Item::ReadMarkerUpdate(update)) => Some(update),
        _ => None,
    }
}

#[tokio::test]
async fn receipts_and_read_markers_reach_the_other_members() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let ada_phone = other_device(&mesh, &ada).await;
        let bob_phone = other_device(&mesh, &bob).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let id = chat.conversation_id.clone();
        let mut ada_streams = [
            subscribe_ready(&mesh, &ada).await,
            subscribe_ready(&mesh, &ada_phone).await,
        ];
        let mut bob_streams = [
            subscribe_ready(&mesh, &bob).await,
            subscribe_ready(&mesh, &bob_phone).await,
        ];
        let message = send(&mesh, &ada, &chat, "did you get this?").await;

        mark_delivered(&mesh, &bob_phone, &id, message.seq)
            .await
            .expect("delivered");
        for stream in &mut ada_streams {
            let item = stream.until(WAIT, |r| receipt(r).is_some()).await;
            assert!(item.cursor.is_empty(), "receipts are ephemeral");
            let update = receipt(&item).expect("receipt");
            assert_eq!(
                (
                    update.conversation_id.as_str(),
                    update.user_id.as_str(),
                    update.device_id.as_str(),
                    update.delivered_up_to_seq
                ),
                (
                    id.as_str(),
                    bob.tokens.user_id.as_str(),
                    bob_phone.tokens.device_id.as_str(),
                    message.seq
                ),
                "{backend:?}"
            );
            assert!(update.updated_at.is_some());
        }

        mark_read(&mesh, &bob, &id, message.seq)
            .await
            .expect("read");
        for stream in &mut ada_streams {
            let item = stream.until(WAIT, |r| read_marker(r).is_some()).await;
            assert!(
                item.cursor.is_empty(),
                "read markers of others are ephemeral"
            );
            let update = read_marker(&item).expect("read marker");
            assert_eq!(
                (update.user_id.as_str(), update.last_read_seq),
                (bob.tokens.user_id.as_str(), message.seq),
                "{backend:?}"
            );
        }
        // Bob's own devices get his watermark as a durable user event, not the ephemeral one.
        let sentinel = send(&mesh, &ada, &chat, "sentinel").await;
        for stream in &mut bob_streams {
            let item = stream
                .until(WAIT, |r| {
                    user_event(r)
                        .is_some_and(|e| matches!(e.kind, Some(UserKind::ReadMarkerMoved(_))))
                })
                .await;
            assert!(!item.cursor.is_empty());
            let Some(UserKind::ReadMarkerMoved(moved)) =
                user_event(&item).and_then(|e| e.kind.clone())
            else {
                unreachable!("matched")
            };
            assert_eq!(
                (moved.conversation_id.as_str(), moved.last_read_seq),
                (id.as_str(), message.seq)
            );
            stream.event_at(&id, sentinel.seq, WAIT).await;
            stream.during(Duration::from_millis(200)).await;
            let own = stream
                .seen
                .iter()
                .filter_map(read_marker)
                .find(|m| m.user_id == bob.tokens.user_id);
            assert_eq!(
                own, None,
                "{backend:?}: the reader's own marker came ephemeral"
            );
        }
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn channels_and_big_groups_get_no_receipts() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start_with(backend, "all", |config| {
            config.live.receipt_max_members = 3;
        })
        .await
        else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cat = known_user(&mesh).await;
        let dan = known_user(&mesh).await;
        let small = group_of(&mesh, &ada, &[&bob, &cat]).await;
        let big = group_of(&mesh, &ada, &[&bob, &cat, &dan]).await;
        let channel = conversation_of(&mesh, &ada, pb::ConversationType::Channel, &[&bob]).await;
        let pair = direct(&mesh, &ada, &bob).await;
        let mut ada_stream = subscribe_ready(&mesh, &ada).await;
        let mut last = Vec::new();
        for conversation in [&big, &channel, &small, &pair] {
            last.push(send(&mesh, &ada, conversation, "news").await.seq);
        }

        // In the big group and the channel, Bob's acknowledgements stay quiet...
        for (conversation, seq) in [(&big, last[0]), (&channel, last[1])] {
            let id = &conversation.conversation_id;
            // A channel may not keep receipts at all; what matters is that none go live.
            let _ = mark_delivered(&mesh, &bob, id, seq).await;
            let _ = mark_read(&mesh, &bob, id, seq).await;
        }
        // ...while in the small group (three members: at the limit) they go live, after them.
        let small_id = &small.conversation_id;
        mark_delivered(&mesh, &bob, small_id, last[2])
            .await
            .expect("delivered");
        mark_read(&mesh, &bob, small_id, last[2])
            .await
            .expect("read");
        ada_stream
            .until(WAIT, |r| {
                read_marker(r).is_some_and(|m| &m.conversation_id == small_id)
            })
            .await;
        // And in a DIRECT conversation (two members).
        let pair_id = &pair.conversation_id;
        mark_delivered(&mesh, &bob, pair_id, last[3])
            .await
            .expect("delivered");
        ada_stream
            .until(WAIT, |r| {
                receipt(r).is_some_and(|m| &m.conversation_id == pair_id)
            })
            .await;
        ada_stream.during(Duration::from_millis(300)).await;
        let ephemeral: Vec<String> = ada_stream
            .seen
            .iter()
            .filter_map(|r| match &r.item {
                Some(Item::ReceiptUpdate(u)) => Some(u.conversation_id.clone()),
                Some(Item::ReadMarkerUpdate(u)) => Some(u.conversation_id.clone()),
                _ => None,
            })
            .collect();
        assert!(
            ephemeral.contains(small_id) && ephemeral.iter().all(|c| c == small_id || c == pair_id),
            "{backend:?}: receipts only in the small group and the DIRECT one: {}",
            describe_all(&ada_stream.seen)
        );
        mesh.shutdown().await;
    }
}
