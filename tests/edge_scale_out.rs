//! Scale-out behind the edge (issue 16): two message instances (one Postgres, NATS, Redis)
//! behind one `--target edge` that balances over both. Under a load of sends and Subscribe
//! streams through the edge both instances carry traffic; then one goes away, and every
//! stream on it resumes (with its cursor, through the same edge) on the other: each reader
//! gets every message exactly once, in order. Real backends only.

use std::time::Duration;

use common::live::*;
use common::messages::{send_request, text};
use common::users::known_user;
use echo_proto::service_names;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tokio::sync::watch;
use tonic::Code;

mod common;

/// Messages Ada sends through the edge; the second instance goes away after a third.
const SENT: usize = 90;

/// The `echo_edge_forwarded_total` of `service` to `instance`, read from `/metrics`.
fn forwarded(metrics: &str, service: &str, instance: std::net::SocketAddr) -> u64 {
    let service = format!("service=\"{service}\"");
    let instance = format!("instance=\"{instance}\"");
    metrics
        .lines()
        .filter(|line| line.starts_with("echo_edge_forwarded_total{"))
        .filter(|line| line.contains(&service) && line.contains(&instance))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|count| count as u64)
        .sum()
}

/// An edge in front of `first` (every service) and `second` (MessageService too).
async fn edge_before(first: &TestMesh, second: &TestMesh) -> TestMesh {
    let shared = first.config.clone();
    let one = format!("http://{}", first.addr());
    let both = format!("http://{},http://{}", first.addr(), second.addr());
    TestMesh::start_with(Backend::Real, "edge", move |config| {
        config.database_url = shared.database_url;
        config.database_schema_prefix = shared.database_schema_prefix;
        config.bus_subject_prefix = shared.bus_subject_prefix;
        config.cache_key_prefix = shared.cache_key_prefix;
        config.upstreams.auth = Some(one.clone());
        config.upstreams.user = Some(one.clone());
        config.upstreams.presence = Some(one.clone());
        config.upstreams.notification = Some(one);
        config.upstreams.message = Some(both);
    })
    .await
    .expect("the edge starts")
}

/// Open `reader`'s stream through `edge` from `cursor`, retrying while the edge answers
/// UNAVAILABLE (an instance going away under the call).
async fn resubscribe(edge: &TestMesh, reader: &SignedIn, cursor: &str) -> LiveStream {
    eventually(WAIT, "a stream through the edge", || async {
        match try_subscribe(edge, reader, cursor).await {
            Ok(stream) => Some(stream),
            Err(status) if status.code() == Code::Unavailable => None,
            Err(status) => panic!("subscribe: {status:?}"),
        }
    })
    .await
}

/// Every seq of `conversation` `reader` receives through `edge` from `cursor` until the last
/// one Ada sent (once `last` says which), resuming on each resumable ending; and how many
/// times it resumed.
async fn read_all(
    edge: &TestMesh,
    reader: &SignedIn,
    conversation: &str,
    cursor: String,
    mut last: watch::Receiver<Option<i64>>,
) -> (Vec<i64>, usize) {
    let mut stream = resubscribe(edge, reader, &cursor).await;
    let mut seqs = Vec::new();
    let mut resumes = 0;
    let mut watching = true;
    loop {
        let done = *last.borrow_and_update();
        if done.is_some_and(|last| seqs.last().is_some_and(|seen| *seen >= last)) {
            return (seqs, resumes);
        }
        // Wake for the next item, or when the sender names the last seq (which may already
        // have arrived).
        let next = tokio::select! {
            next = stream.next(WAIT) => Some(next),
            changed = last.changed(), if watching => {
                watching = changed.is_ok();
                None
            }
        };
        match next {
            None => {}
            Some(Next::Item(item)) => seqs.extend(seqs_of(&[*item], conversation)),
            Some(Next::Ended(status)) if status.code() == Code::Unavailable => {
                resumes += 1;
                let cursor = stream.cursor.clone();
                stream = resubscribe(edge, reader, &cursor).await;
            }
            Some(other) => panic!("reader stream: {other:?}; seen {seqs:?}"),
        }
    }
}

#[tokio::test]
async fn two_message_instances_share_the_load_and_one_going_away_loses_nothing() {
    let Some(first) = TestMesh::start(Backend::Real).await else {
        return;
    };
    let second = first.start_sibling().await;
    let edge = edge_before(&first, &second).await;
    let (first_addr, second_addr) = (first.addr(), second.addr());

    let ada = known_user(&first).await;
    let mut readers = Vec::new();
    for _ in 0..4 {
        readers.push(known_user(&first).await);
    }
    let members: Vec<&SignedIn> = readers.iter().collect();
    let chat = group_of(&first, &ada, &members).await;
    let id = chat.conversation_id.clone();
    let mut cursors = Vec::new();
    for reader in &readers {
        cursors.push(caught_up(&first, &ada, reader, &chat).await);
    }

    let (last_tx, last_rx) = watch::channel(None);
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let reading = futures::future::join_all(
        readers
            .iter()
            .zip(cursors)
            .map(|(reader, cursor)| read_all(&edge, reader, &id, cursor, last_rx.clone())),
    );
    let sending = async {
        let client = edge.message_as(&ada);
        let mut kill = Some(kill_tx);
        let mut seqs = Vec::new();
        for n in 0..SENT {
            if n == SENT / 3
                && let Some(kill) = kill.take()
            {
                let _ = kill.send(());
            }
            // The same idempotency key on every attempt: a send the going instance may or
            // may not have stored is stored once.
            let key = uuid::Uuid::now_v7().to_string();
            let sent = eventually(WAIT, "a send through the edge", || {
                let request = send_request(&chat, &key, text(&format!("m{n}")));
                let mut client = client.clone();
                async move {
                    match client.send_message(request).await {
                        Ok(sent) => Some(sent.into_inner()),
                        Err(status) if status.code() == Code::Unavailable => None,
                        Err(status) => panic!("send: {status:?}"),
                    }
                }
            })
            .await;
            seqs.push(sent.message.expect("message").seq);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        last_tx.send(seqs.last().copied()).expect("readers listen");
        seqs
    };
    let going = async {
        kill_rx.await.expect("the sender says when");
        let metrics = reqwest::get(format!("{}/metrics", edge.admin_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let on = |addr| forwarded(&metrics, service_names::MESSAGE, addr);
        let counts = (on(first_addr), on(second_addr));
        second.shutdown().await;
        counts
    };
    let (read, sent, (on_first, on_second)) = tokio::join!(reading, sending, going);

    assert!(
        on_first >= 3 && on_second >= 3,
        "both instances carried calls and streams before one went: {on_first} and {on_second}"
    );
    let first_sent = sent[0];
    let last = *sent.last().unwrap();
    let resumes: usize = read.iter().map(|(_, resumes)| resumes).sum();
    assert!(
        resumes >= 1,
        "the streams on the instance that went resumed"
    );
    for (seqs, _) in &read {
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "in order, nothing doubled, nothing skipped: {seqs:?}"
        );
        let ours: Vec<i64> = seqs.iter().copied().filter(|s| *s >= first_sent).collect();
        assert_eq!(
            ours,
            (first_sent..=last).collect::<Vec<_>>(),
            "every message once"
        );
    }
    edge.shutdown().await;
    first.shutdown().await;
}
