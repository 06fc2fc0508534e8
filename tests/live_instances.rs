//! Scale-out (DESIGN §7.5): two message instances on one Postgres + NATS + Redis. An event
//! written through one reaches subscribers on the other; a stream on an instance that goes
//! away mid-stream resumes on the other with nothing lost and nothing doubled. Real backends
//! only: the embedded ones belong to one process.

use std::collections::BTreeSet;
use std::time::Duration;

use common::live::*;
use common::messages::{send, send_request, text};
use common::users::known_user;
use echo_testkit::{Backend, TestMesh};
use tonic::Code;

mod common;

#[tokio::test]
async fn events_written_on_one_instance_reach_the_other() {
    let Some(first) = TestMesh::start(Backend::Real).await else {
        return;
    };
    let second = first.start_sibling().await;
    let ada = known_user(&first).await;
    let bob = known_user(&first).await;
    let chat = group_of(&first, &ada, &[&bob]).await;
    let id = chat.conversation_id.clone();
    let mut bob_on_second = subscribe_ready(&second, &bob).await;
    let mut ada_on_first = subscribe_ready(&first, &ada).await;

    let hello = send(&first, &ada, &chat, "written on the first").await;
    bob_on_second.event_at(&id, hello.seq, WAIT).await;
    let reply = send(&second, &bob, &chat, "written on the second").await;
    ada_on_first.event_at(&id, reply.seq, WAIT).await;
    bob_on_second.event_at(&id, reply.seq, WAIT).await;

    // Typing travels between instances too.
    set_typing(&second, &bob, &id, true).await.expect("typing");
    let item = ada_on_first.until(WAIT, |r| typing(r).is_some()).await;
    let update = typing(&item).expect("typing");
    assert_eq!(
        (update.user_id.as_str(), update.typing),
        (bob.tokens.user_id.as_str(), true)
    );

    // Each stream saw its conversation in order, once.
    for stream in [&bob_on_second, &ada_on_first] {
        let seqs = seqs_of(&stream.seen, &id);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test]
async fn a_stream_resumes_on_the_other_instance_after_one_goes_away() {
    const SENT: usize = 60;
    let Some(first) = TestMesh::start(Backend::Real).await else {
        return;
    };
    let second = first.start_sibling().await;
    let ada = known_user(&first).await;
    let bob = known_user(&first).await;
    let chat = group_of(&first, &ada, &[&bob]).await;
    let id = chat.conversation_id.clone();
    let cursor = caught_up(&first, &ada, &bob, &chat).await;
    let mut on_second = subscribe(&second, &bob, &cursor).await;
    on_second.until_ready(WAIT).await;

    // Ada keeps writing through the first instance while the second goes away under Bob.
    let mut client = first.message_as(&ada);
    let conversation = chat.clone();
    let sender = tokio::spawn(async move {
        let mut seqs = Vec::new();
        for n in 0..SENT {
            let key = uuid::Uuid::now_v7().to_string();
            let request = send_request(&conversation, &key, text(&format!("m{n}")));
            let sent = client.send_message(request).await.expect("send");
            seqs.push(sent.into_inner().message.expect("message").seq);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seqs
    });
    on_second
        .collect_until(WAIT, |items| seqs_of(items, &id).len() >= 15)
        .await;
    let stopping = tokio::spawn(second.shutdown());
    let status = on_second.ended(WAIT).await;
    assert_eq!(
        status.code(),
        Code::Unavailable,
        "a resumable ending: {status:?}"
    );
    stopping.await.expect("the second instance stops");

    let mut on_first = subscribe(&first, &bob, &on_second.cursor).await;
    let sent = sender.await.expect("sender");
    let last = *sent.last().expect("sent");
    on_first
        .collect_until(WAIT, |items| seqs_of(items, &id).contains(&last))
        .await;

    let before = seqs_of(&on_second.seen, &id);
    let after = seqs_of(&on_first.seen, &id);
    for segment in [&before, &after] {
        assert!(
            segment.windows(2).all(|w| w[1] == w[0] + 1),
            "each stream in order without gaps: {segment:?}"
        );
    }
    let all: Vec<i64> = before.iter().chain(&after).copied().collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        distinct.len(),
        "nothing doubled: {before:?} then {after:?}"
    );
    assert_eq!(
        all,
        (sent[0]..=last).collect::<Vec<_>>(),
        "nothing lost across the instances"
    );
    first.shutdown().await;
}
