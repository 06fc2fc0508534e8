//! Fan-out: every device of every member receives each conversation event, the sending
//! device and the sender's other devices included; per-user events reach that user only; the
//! snapshots inside events are read at delivery.

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use pb::conversation_event::Kind;
use pb::user_event::Kind as UserKind;

use crate::common::live::*;
use crate::common::messages::{send, send_request, text};
use crate::common::users::known_user;

/// Whether `items` hold the subscriber's ConversationJoined for `conversation`.
fn joined(items: &[pb::SubscribeResponse], conversation: &str) -> bool {
    items.iter().filter_map(user_event).any(|e| {
        matches!(&e.kind, Some(UserKind::ConversationJoined(j))
            if j.conversation.as_ref().is_some_and(|c| c.conversation_id == conversation))
    })
}

/// Sends `body` from `device` with the idempotency key `key`.
async fn send_keyed(
    mesh: &TestMesh,
    device: &SignedIn,
    conversation: &pb::Conversation,
    key: &str,
    body: &str,
) -> pb::Message {
    let request = send_request(conversation, key, text(body));
    let sent = mesh.message_as(device).send_message(request).await;
    sent.expect("send").into_inner().message.expect("message")
}

/// Every stream gets the message at `sent.seq`, with the client_message_id only on the
/// sender's own user's streams.
async fn everyone_gets(
    streams: &mut [LiveStream],
    devices: &[&SignedIn],
    sender: &SignedIn,
    sent: &pb::Message,
    key: &str,
) {
    for (stream, device) in streams.iter_mut().zip(devices) {
        let item = stream.event_at(&sent.conversation_id, sent.seq, WAIT).await;
        assert!(!item.cursor.is_empty(), "a durable item carries a cursor");
        let event = conversation_event(&item).expect("event");
        assert_eq!(event.actor_user_id, sender.tokens.user_id);
        assert_eq!(event.actor_device_id, sender.tokens.device_id);
        assert!(
            matches!(event.kind, Some(Kind::MessageCreated(_))),
            "{event:?}"
        );
        let message = message_of(event).expect("the message");
        assert_eq!(message.message_id, sent.message_id);
        assert_eq!(message.content, sent.content, "content read at delivery");
        let own = device.tokens.user_id == sender.tokens.user_id;
        let expected_key = if own { key } else { "" };
        assert_eq!(
            message.client_message_id, expected_key,
            "client_message_id only on the sender's own streams (device {})",
            device.tokens.device_id
        );
    }
}

#[tokio::test]
async fn every_device_of_every_member_receives() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let ada_phone = other_device(&mesh, &ada).await;
        let bob_phone = other_device(&mesh, &bob).await;
        let devices = [&ada, &ada_phone, &bob, &bob_phone];
        let mut streams = Vec::new();
        for device in devices {
            streams.push(subscribe_ready(&mesh, device).await);
        }

        // Creation reaches both initial members, from ConversationCreated (seq 1) on.
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let id = chat.conversation_id.clone();
        let all: Vec<i64> = (1..=chat.last_seq).collect();
        for stream in &mut streams {
            let got = stream
                .collect_until(WAIT, |items| {
                    seqs_of(items, &id).len() == all.len() && joined(items, &id)
                })
                .await;
            assert_eq!(
                seqs_of(&got, &id),
                all,
                "{backend:?}: {}",
                describe_all(&got)
            );
            let first = got.iter().find_map(conversation_event).expect("events");
            assert!(
                matches!(first.kind, Some(Kind::ConversationCreated(_))),
                "{first:?}"
            );
            assert!(
                got.iter()
                    .filter(|r| is_durable(r))
                    .all(|r| !r.cursor.is_empty()),
                "every durable item carries a cursor"
            );
        }

        // A message from Ada's laptop reaches that laptop, her phone, and both of Bob's.
        let sent = send_keyed(&mesh, &ada, &chat, "k-live-1", "hello, all of you").await;
        everyone_gets(&mut streams, &devices, &ada, &sent, "k-live-1").await;
        // And one from Bob's phone reaches that phone too.
        let reply = send_keyed(&mesh, &bob_phone, &chat, "k-live-2", "hi Ada").await;
        everyone_gets(&mut streams, &devices, &bob_phone, &reply, "k-live-2").await;

        // Ada's private settings change reaches both her devices (the acting one too)...
        pin_conversation(&mesh, &ada_phone, &id, true)
            .await
            .expect("pin");
        for stream in &mut streams[..2] {
            let item = stream
                .until(WAIT, |r| {
                    user_event(r)
                        .is_some_and(|e| matches!(e.kind, Some(UserKind::MemberSettingsChanged(_))))
                })
                .await;
            assert!(!item.cursor.is_empty());
            let event = user_event(&item).expect("user event");
            assert_eq!(event.user_id, ada.tokens.user_id);
            assert_eq!(event.actor_device_id, ada_phone.tokens.device_id);
        }
        // So does her deleting Bob's reply for herself...
        delete(&mesh, &ada, &reply, pb::DeleteScope::ForMe)
            .await
            .expect("delete for me");
        for stream in &mut streams[..2] {
            let item = stream
                .until(WAIT, |r| {
                    user_event(r).is_some_and(|e| {
                        matches!(&e.kind, Some(UserKind::MessageDeletedForMe(d))
                            if d.message_id == reply.message_id)
                    })
                })
                .await;
            assert!(!item.cursor.is_empty());
        }
        // ...and none of it reaches Bob: by the time a later message does, nothing of Ada's has.
        let sentinel = send(&mesh, &ada, &chat, "sentinel").await;
        for stream in &mut streams {
            stream.event_at(&id, sentinel.seq, WAIT).await;
            stream.during(std::time::Duration::from_millis(200)).await;
        }
        for (stream, device) in streams.iter().zip(devices) {
            for event in stream.seen.iter().filter_map(user_event) {
                assert_eq!(
                    event.user_id, device.tokens.user_id,
                    "{backend:?}: a user event reached another user: {event:?}"
                );
            }
            // One stream never delivers an event twice, and delivers a conversation in order.
            let seqs = seqs_of(&stream.seen, &id);
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        }
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn snapshots_are_read_at_delivery() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let id = chat.conversation_id.clone();
        let cursor = caught_up(&mesh, &ada, &bob, &chat).await;

        // While Bob is away: a message edited after sending, and one deleted for everyone.
        let edited = send(&mesh, &ada, &chat, "first draft").await;
        edit_text(&mesh, &ada, &edited, "final words").await;
        let deleted = send(&mesh, &ada, &chat, "oops, wrong chat").await;
        delete(&mesh, &ada, &deleted, pb::DeleteScope::ForEveryone)
            .await
            .expect("delete for everyone");

        let mut back = subscribe(&mesh, &bob, &cursor).await;
        let (replayed, ready) = back.until_ready(WAIT).await;
        assert_eq!(usize::try_from(ready.replayed_count), Ok(replayed.len()));
        back.through(&id, edited.seq + 3, WAIT).await;
        assert_eq!(
            seqs_of(&back.seen, &id),
            (edited.seq..=edited.seq + 3).collect::<Vec<_>>(),
            "{backend:?}: {}",
            describe_all(&back.seen)
        );
        let events: Vec<&pb::ConversationEvent> =
            back.seen.iter().filter_map(conversation_event).collect();
        // The creation arrives with the content as it is now, edited.
        let created = message_of(events[0]).expect("message");
        assert!(matches!(events[0].kind, Some(Kind::MessageCreated(_))));
        assert_eq!(
            created.content.as_ref().map(|c| c.text.as_str()),
            Some("final words")
        );
        assert_eq!(created.edit_count, 1);
        assert!(matches!(events[1].kind, Some(Kind::MessageEdited(_))));
        // The deleted one arrives as a tombstone: no content left to deliver.
        assert!(matches!(events[2].kind, Some(Kind::MessageCreated(_))));
        let tombstone = message_of(events[2]).expect("message");
        assert_eq!(tombstone.message_id, deleted.message_id);
        assert_eq!(tombstone.state(), pb::MessageState::DeletedForEveryone);
        assert_eq!(
            tombstone
                .content
                .as_ref()
                .map(|c| c.text.as_str())
                .unwrap_or(""),
            "",
            "a tombstone carries no content"
        );
        assert!(
            matches!(&events[3].kind, Some(Kind::MessageDeleted(d)) if d.message_id == deleted.message_id),
            "{:?}",
            events[3]
        );
        mesh.shutdown().await;
    }
}
