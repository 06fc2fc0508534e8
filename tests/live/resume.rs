//! Resume: a stream opened with the last cursor received replays every durable event after
//! it, in order, then Ready{replayed_count}, then goes on live, with no seam in between.

use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, TestMesh};
use pb::subscribe_response::Item;
use pb::user_event::Kind as UserKind;

use crate::common::live::*;
use crate::common::messages::{send, send_request, text};
use crate::common::users::known_user;
use crate::common::violated_fields;

#[tokio::test]
async fn an_empty_cursor_starts_now() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        send(&mesh, &ada, &chat, "before Bob looked").await;
        let mut stream = subscribe(&mesh, &bob, "").await;
        let first = stream.item(WAIT).await;
        let Some(Item::Ready(ready)) = &first.item else {
            panic!("{backend:?}: the first item of an empty cursor is Ready: {first:?}");
        };
        assert_eq!(ready.replayed_count, 0);
        assert!(ready.server_time.is_some());
        assert!(!first.cursor.is_empty(), "Ready is a resume point");
        // What comes next is live. (An event committed just before the open may still come
        // after Ready: "now" is the commit-safe head, which can trail the latest commit.)
        let live = send(&mesh, &ada, &chat, "live").await;
        stream.event_at(&chat.conversation_id, live.seq, WAIT).await;
        let seqs = seqs_of(&stream.seen, &chat.conversation_id);
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{backend:?}: {seqs:?}"
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn resume_replays_what_was_missed_then_goes_live() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let bob_phone = other_device(&mesh, &bob).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let id = chat.conversation_id.clone();
        let mut first = subscribe_ready(&mesh, &bob).await;
        let seen = send(&mesh, &ada, &chat, "one").await;
        first.event_at(&id, seen.seq, WAIT).await;
        let cursor = first.cursor.clone();
        drop(first);

        // Missed while the laptop was away: messages, a reaction, an edit, and Bob's own read
        // marker moved from his phone.
        let two = send(&mesh, &ada, &chat, "two").await;
        let three = send(&mesh, &ada, &chat, "three").await;
        react(&mesh, &ada, &two, "👍").await.expect("react");
        edit_text(&mesh, &ada, &two, "two, edited").await;
        mark_read(&mesh, &bob_phone, &id, three.seq)
            .await
            .expect("read");
        let last = last_seq(&mesh, &ada, &id).await;

        let mut back = subscribe(&mesh, &bob, &cursor).await;
        let (replayed, ready) = back.until_ready(WAIT).await;
        assert!(
            replayed.iter().all(is_durable),
            "{backend:?}: only durable items are replayed: {}",
            describe_all(&replayed)
        );
        assert_eq!(usize::try_from(ready.replayed_count), Ok(replayed.len()));
        assert!(!back.cursor.is_empty());
        // (What committed just before the resume may come right after Ready instead.)
        back.through(&id, last, WAIT).await;
        assert_eq!(
            seqs_of(&back.seen, &id),
            ((seen.seq + 1)..=last).collect::<Vec<_>>(),
            "{backend:?}: every missed event once, in order: {}",
            describe_all(&back.seen)
        );
        let marker = back
            .user_event_where(WAIT, |kind| match kind {
                UserKind::ReadMarkerMoved(moved) => Some(moved.clone()),
                _ => None,
            })
            .await;
        assert_eq!(marker.last_read_seq, three.seq);

        // Then live, on the same stream.
        let four = send(&mesh, &ada, &chat, "four").await;
        back.event_at(&id, four.seq, WAIT).await;
        let seqs = seqs_of(&back.seen, &id);
        assert_eq!(seqs, ((seen.seq + 1)..=four.seq).collect::<Vec<_>>());

        // A cursor with nothing after it replays nothing.
        let up_to_date = back.cursor.clone();
        drop(back);
        let mut again = subscribe(&mesh, &bob, &up_to_date).await;
        let (replayed, ready) = again.until_ready(WAIT).await;
        assert!(replayed.is_empty(), "{}", describe_all(&replayed));
        assert_eq!(ready.replayed_count, 0);
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn no_seam_between_replay_and_live() {
    const SENT: usize = 40;
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

        // Ada keeps sending while Bob resumes: some events are replayed, some come live, and
        // the hand-over must neither lose nor repeat one.
        let mut client = mesh.message_as(&ada);
        let conversation = chat.clone();
        let sender = tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..SENT {
                let key = uuid::Uuid::now_v7().to_string();
                let request = send_request(&conversation, &key, text(&format!("m{n}")));
                let sent = client.send_message(request).await.expect("send");
                seqs.push(sent.into_inner().message.expect("message").seq);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            seqs
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let stream = subscribe(&mesh, &bob, &cursor).await;
        let collector = collect(stream);
        let sent = sender.await.expect("sender");
        let last = *sent.last().expect("sent");
        collector
            .wait_for(WAIT, |c| seqs_of(&c.items, &id).contains(&last))
            .await;
        let collected = collector.stop().await;
        let seqs = seqs_of(&collected.items, &id);
        assert_eq!(
            seqs,
            (sent[0]..=last).collect::<Vec<_>>(),
            "{backend:?}: every event once, in order: {}",
            describe_all(&collected.items)
        );
        let readies: Vec<usize> = collected
            .items
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.item, Some(Item::Ready(_))))
            .map(|(at, _)| at)
            .collect();
        assert_eq!(readies.len(), 1, "Ready exactly once");
        let Some(Item::Ready(ready)) = &collected.items[readies[0]].item else {
            unreachable!("found Ready")
        };
        assert_eq!(usize::try_from(ready.replayed_count), Ok(readies[0]));
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn malformed_cursors_are_invalid_arguments() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let real = subscribe_ready(&mesh, &ada).await.cursor;
        let malformed = [
            "garbage".to_owned(),
            "v1.".to_owned(),
            "v1.!!!!".to_owned(),
            real[..real.len() - 2].to_owned(),
            format!("{real}{}", "A".repeat(300)),
            "é".repeat(20),
        ];
        for cursor in malformed {
            let refused = subscribe_refused(&mesh, &ada, &cursor).await;
            assert_eq!(
                refused.code(),
                tonic::Code::InvalidArgument,
                "{backend:?} {cursor}: {refused:?}"
            );
            assert_eq!(violated_fields(&refused), ["cursor"], "{cursor}");
        }
        mesh.shutdown().await;
    }
}
