//! Cursors the server cannot serve: the first item says ResyncRequired (with its reason and a
//! fresh cursor), then Ready, then the stream goes on live. Never silent loss.

use std::time::Duration;

use echo_message::live::Cursor;
use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use pb::subscribe_response::Item;
use tonic::Code;

use crate::common::assert_reason;
use crate::common::live::*;
use crate::common::messages::send;
use crate::common::users::known_user;

/// Reads ResyncRequired (which must come first) and then Ready; the resync item's cursor.
async fn resync_then_ready(stream: &mut LiveStream, expected: pb::ResyncReason) -> String {
    let first = stream.item(WAIT).await;
    let Some(Item::ResyncRequired(resync)) = &first.item else {
        panic!("expected ResyncRequired first, got {}", describe(&first));
    };
    assert_eq!(resync.reason(), expected);
    assert!(
        !first.cursor.is_empty(),
        "ResyncRequired carries a fresh cursor"
    );
    let second = stream.item(WAIT).await;
    let Some(Item::Ready(ready)) = &second.item else {
        panic!("Ready follows ResyncRequired, got {}", describe(&second));
    };
    assert_eq!(
        ready.replayed_count, 0,
        "nothing is replayed after a resync"
    );
    first.cursor.clone()
}

/// The stream goes on live after the resync: a new message arrives, in order after anything
/// else. (Events committed just before the resync may still come live: the fresh cursor is
/// the commit-safe "now", which can trail the latest commits by a moment.)
async fn goes_on_live(
    mesh: &TestMesh,
    stream: &mut LiveStream,
    sender: &SignedIn,
    chat: &pb::Conversation,
) -> pb::Message {
    let id = &chat.conversation_id;
    let live = send(mesh, sender, chat, "after the resync").await;
    stream
        .collect_until(WAIT, |items| seqs_of(items, id).contains(&live.seq))
        .await;
    let seqs = seqs_of(&stream.seen, id);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]) && seqs.last() == Some(&live.seq),
        "in order, nothing twice: {seqs:?}"
    );
    live
}

#[tokio::test]
async fn an_unknown_epoch_needs_a_resync() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let real = caught_up(&mesh, &ada, &bob, &chat).await;
        let decoded = Cursor::decode(&real).expect("the server's cursors decode");
        let foreign = Cursor {
            epoch: uuid::Uuid::now_v7(),
            ..decoded
        }
        .encode();
        send(&mesh, &ada, &chat, "missed under the old epoch").await;

        let mut stream = subscribe(&mesh, &bob, &foreign).await;
        let fresh = resync_then_ready(&mut stream, pb::ResyncReason::EpochUnknown).await;
        let live = goes_on_live(&mesh, &mut stream, &ada, &chat).await;
        drop(stream);

        // The fresh cursor is a real resume point: from it, what came after is replayed.
        let later = send(&mesh, &ada, &chat, "while away again").await;
        let mut resumed = subscribe(&mesh, &bob, &fresh).await;
        resumed.until_ready(WAIT).await;
        let id = &chat.conversation_id;
        if !seqs_of(&resumed.seen, id).contains(&later.seq) {
            resumed
                .collect_until(WAIT, |items| seqs_of(items, id).contains(&later.seq))
                .await;
        }
        let seqs = seqs_of(&resumed.seen, id);
        assert!(
            seqs.ends_with(&[live.seq, later.seq]) && seqs.windows(2).all(|w| w[0] < w[1]),
            "{backend:?}: {}",
            describe_all(&resumed.seen)
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn a_cursor_past_retention_needs_a_resync() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start_with(backend, "all", |config| {
            config.bus_max_age = Duration::from_secs(1);
            config.bus_duplicate_window = Duration::from_secs(1);
            config.bus_prune_every = Duration::from_millis(200);
        })
        .await
        else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let old = caught_up(&mesh, &ada, &bob, &chat).await;
        let missed = send(&mesh, &ada, &chat, "pruned before Bob is back").await;

        // Until the missed event is pruned, a resume delivers it (replayed, or live just after
        // Ready); once it is gone, the first answer must say so. Never a silent skip. A prune
        // that overtakes a running replay ends the stream with RESUME: the client reconnects.
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut stream = loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend:?}: the cursor never expired"
            );
            let mut stream = subscribe(&mesh, &bob, &old).await;
            if resync_or_missed(&mut stream, &chat.conversation_id, missed.seq).await {
                break stream;
            }
            drop(stream);
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let first = stream.seen[0].clone();
        let Some(Item::ResyncRequired(resync)) = &first.item else {
            unreachable!("matched above")
        };
        assert_eq!(
            resync.reason(),
            pb::ResyncReason::CursorExpired,
            "{backend:?}"
        );
        assert!(!first.cursor.is_empty());
        let ready = stream.item(WAIT).await;
        assert!(matches!(ready.item, Some(Item::Ready(_))), "{ready:?}");
        goes_on_live(&mesh, &mut stream, &ada, &chat).await;
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn a_cursor_too_far_behind_needs_a_resync() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start_with(backend, "all", |config| {
            config.live.replay_limit = 5;
        })
        .await
        else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;

        // Within the limit, a resume replays.
        let near = caught_up(&mesh, &ada, &bob, &chat).await;
        let mut sent = Vec::new();
        for n in 0..3 {
            sent.push(send(&mesh, &ada, &chat, &format!("near {n}")).await.seq);
        }
        let mut stream = subscribe(&mesh, &bob, &near).await;
        let (replayed, ready) = stream.until_ready(WAIT).await;
        assert_eq!(usize::try_from(ready.replayed_count), Ok(replayed.len()));
        assert!(
            replayed.iter().all(is_durable),
            "{backend:?}: within the limit there is no resync: {}",
            describe_all(&replayed)
        );
        let id = &chat.conversation_id;
        if !seqs_of(&stream.seen, id).contains(&sent[2]) {
            stream
                .collect_until(WAIT, |items| seqs_of(items, id).contains(&sent[2]))
                .await;
        }
        assert_eq!(seqs_of(&stream.seen, id), sent, "{backend:?}");
        let far = stream.cursor.clone();
        drop(stream);

        // Beyond it, the first item says refetch.
        for n in 0..10 {
            send(&mesh, &ada, &chat, &format!("far {n}")).await;
        }
        let mut stream = subscribe(&mesh, &bob, &far).await;
        resync_then_ready(&mut stream, pb::ResyncReason::TooFarBehind).await;
        goes_on_live(&mesh, &mut stream, &ada, &chat).await;
        mesh.shutdown().await;
    }
}

/// Read a resumed stream until it answers ResyncRequired first (true), or delivers `seq`
/// (false), or ends with RESUME because a prune overtook its replay (false: reconnect).
async fn resync_or_missed(stream: &mut LiveStream, conversation_id: &str, seq: i64) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match stream.next(left).await {
            Next::Item(item) => {
                if stream.seen.len() == 1 && matches!(item.item, Some(Item::ResyncRequired(_))) {
                    return true;
                }
                if seqs_of(&stream.seen, conversation_id).contains(&seq) {
                    return false;
                }
            }
            Next::Ended(status) => {
                assert_reason(&status, Code::Unavailable, "RESUME");
                return false;
            }
            other => panic!(
                "neither a resync, the missed event nor RESUME: {other:?}; seen: {}",
                describe_all(&stream.seen)
            ),
        }
    }
}
