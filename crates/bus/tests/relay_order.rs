//! Two relays (two `NatsBus` instances, as in two processes) on ONE PostgreSQL outbox: only the
//! lease holder publishes, the other takes over when the holder dies, and the stream ends up
//! with every event exactly once, each writer's events in outbox id order (DESIGN §8).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use echo_bus::{EventBus, NatsBus, Outbox};
use echo_store::Database;
use echo_testenv::Server;

const WRITERS: usize = 6;
const PER_WRITER: usize = 50;

/// How many sessions hold the outbox relay lease (the advisory lock on `<schema>.outbox_relay`).
async fn lease_holders(db: &Database) -> i64 {
    let Database::Postgres(db) = db else {
        unreachable!()
    };
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND ((classid::bigint << 32) | objid::bigint) = hashtext($1)::bigint",
    )
    .bind(format!("{}.outbox_relay", db.schema))
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_one_outbox_keep_order_across_a_takeover() {
    init_logging();
    let Some(pg_url) = echo_testenv::url(Server::Postgres) else {
        return;
    };
    let Some(nats_url) = echo_testenv::url(Server::Nats) else {
        return;
    };
    let prefix = unique_prefix();
    let settings = nats_settings();
    let stream_name = echo_bus::subject::stream_name(&settings.subject_prefix, "auth");

    // "Process" A: its own pool and bus; it relays first.
    let db_a = open_db(&pg_url, "auth", &prefix).await;
    let outbox_a = Outbox::new("auth", db_a.clone());
    let bus_a = NatsBus::connect(&nats_url, settings.clone()).await.unwrap();
    bus_a.attach_outbox(outbox_a.clone()).await.unwrap();
    let warmup = event("user_registered", "warmup", -1);
    commit(&outbox_a, &warmup).await;
    wait_until("A publishes the warm-up event", || async {
        outbox_a.unpublished_count().await.unwrap() == 0
    })
    .await;

    // "Process" B: same schema, its own pool and bus; it stands by.
    let db_b = open_db(&pg_url, "auth", &prefix).await;
    let outbox_b = Outbox::new("auth", db_b.clone());
    let bus_b = NatsBus::connect(&nats_url, settings.clone()).await.unwrap();
    bus_b.attach_outbox(outbox_b.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await; // B has tried the lease
    assert_eq!(
        lease_holders(&db_b).await,
        1,
        "exactly one relay holds the lease"
    );

    // Writers commit concurrently through both processes' outboxes; half-way they wait for
    // the gate, so the second half is committed after A is gone and only B can publish it.
    let committed = Arc::new(AtomicUsize::new(0));
    let (gate, gate_rx) = tokio::sync::watch::channel(false);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let outbox = if w % 2 == 0 {
            outbox_a.clone()
        } else {
            outbox_b.clone()
        };
        let committed = committed.clone();
        let mut gate = gate_rx.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..PER_WRITER {
                if n == PER_WRITER / 2 {
                    gate.wait_for(|open| *open).await.unwrap();
                }
                commit(
                    &outbox,
                    &event("user_registered", &format!("w{w}"), n as i64),
                )
                .await;
                committed.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // Kill A (the lease holder) half-way, likely mid-batch: B must take over, in order.
    wait_until("half the events committed", || async {
        committed.load(Ordering::SeqCst) == WRITERS * PER_WRITER / 2
    })
    .await;
    bus_a.shutdown();
    drop(bus_a);
    gate.send_replace(true);
    for writer in writers {
        tokio::time::timeout(WAIT, writer)
            .await
            .expect("writers finish")
            .unwrap();
    }
    wait_until("every event is published", || async {
        outbox_b.unpublished_count().await.unwrap() == 0
    })
    .await;
    assert_eq!(
        lease_holders(&db_b).await,
        1,
        "B holds the lease alone after the takeover"
    );

    // The stream, against the outbox.
    let Database::Postgres(pg) = &db_b else {
        unreachable!()
    };
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, event_id::text, subject FROM outbox ORDER BY id")
            .fetch_all(&pg.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), WRITERS * PER_WRITER + 1);
    let outbox_id: HashMap<uuid::Uuid, (i64, String)> = rows
        .iter()
        .map(|(id, event_id, subject)| (event_id.parse().unwrap(), (*id, subject.clone())))
        .collect();
    let js = async_nats::jetstream::new(async_nats::connect(&nats_url).await.unwrap());
    let messages = read_stream(&js, &stream_name).await;
    let stream_ids: Vec<uuid::Uuid> = messages.iter().map(msg_id).collect();
    let distinct: HashSet<_> = stream_ids.iter().collect();
    assert_eq!(
        distinct.len(),
        stream_ids.len(),
        "a duplicate in the stream"
    );
    assert_eq!(
        stream_ids.len(),
        rows.len(),
        "an event is missing from the stream"
    );
    assert!(
        stream_ids.iter().all(|id| outbox_id.contains_key(id)),
        "a stranger in the stream"
    );

    // Each writer (one key, like one conversation) appears in outbox id order.
    let mut last_per_key: HashMap<String, i64> = HashMap::new();
    let mut inversions = 0;
    let mut previous = 0;
    for id in &stream_ids {
        let (row, subject) = &outbox_id[id];
        let last = last_per_key.entry(subject.clone()).or_insert(0);
        assert!(
            row > last,
            "{subject}: outbox id {row} published after {last}"
        );
        *last = *row;
        if *row < previous {
            inversions += 1;
        }
        previous = previous.max(*row);
    }
    // Across concurrent writers, publish order is commit order, which is not id order (an id is
    // taken at insert, the row becomes visible at commit). Not asserted; shown with --nocapture.
    println!("global id-order inversions across concurrent writers: {inversions}");

    // B is woken by PostgreSQL NOTIFY for commits made through A's outbox handle (whose
    // in-process signal reaches no relay any more), not only by its 1 s poll. Shown, not
    // asserted (timing).
    for n in 0..3 {
        let started = std::time::Instant::now();
        commit(&outbox_a, &event("user_registered", "notify", n)).await;
        wait_until("a commit in another process is relayed", || async {
            outbox_b.unpublished_count().await.unwrap() == 0
        })
        .await;
        println!("cross-process relay latency: {:?}", started.elapsed());
    }

    bus_b.shutdown();
    drop(bus_b);
    let _ = js.delete_stream(&stream_name).await;
    db_a.close().await;
    db_b.close().await;
    drop_schemas(&pg_url, &prefix, &["auth"]).await;
}

/// What the relay's windows rest on (`src/nats/relay.rs`), pinned against the NATS server
/// this machine runs: a publish expecting a last message id other than the stream's is
/// refused and stores nothing, and a duplicate within the de-dup window is acknowledged as
/// a duplicate whatever it expects (a window re-published after lost acks gets through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_refuses_a_publish_whose_predecessor_is_not_last() {
    use async_nats::header::{HeaderMap, NATS_EXPECTED_LAST_MESSAGE_ID, NATS_MESSAGE_ID};
    use async_nats::jetstream::context::PublishErrorKind;

    init_logging();
    let Some(nats_url) = echo_testenv::url(Server::Nats) else {
        return;
    };
    let settings = nats_settings();
    let stream_name = echo_bus::subject::stream_name(&settings.subject_prefix, "auth");
    let subject = format!("{}echo.auth.probe", settings.subject_prefix);
    let js = async_nats::jetstream::new(async_nats::connect(&nats_url).await.unwrap());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream_name.clone(),
        subjects: vec![format!("{}echo.auth.>", settings.subject_prefix)],
        duplicate_window: settings.duplicate_window,
        ..Default::default()
    })
    .await
    .unwrap();
    let publish = |id: &str, expects: Option<&str>| {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, id);
        if let Some(last) = expects {
            headers.insert(NATS_EXPECTED_LAST_MESSAGE_ID, last);
        }
        let (js, subject) = (js.clone(), subject.clone());
        async move {
            js.publish_with_headers(subject, headers, "x".into())
                .await
                .unwrap()
                .await
        }
    };

    let first = publish("a", None).await.unwrap();
    assert!(!first.duplicate);
    let refused = publish("c", Some("b")).await.unwrap_err();
    assert_eq!(refused.kind(), PublishErrorKind::WrongLastMessageId);
    let second = publish("b", Some("a")).await.unwrap();
    assert_eq!(
        second.sequence,
        first.sequence + 1,
        "the refused publish stored nothing"
    );
    // "a" again, expecting nothing, then "b" again expecting "a" though "b" is last: both are
    // duplicates.
    assert!(publish("a", None).await.unwrap().duplicate);
    assert!(publish("b", Some("a")).await.unwrap().duplicate);
    let third = publish("c", Some("b")).await.unwrap();
    assert_eq!(third.sequence, second.sequence + 1);

    let _ = js.delete_stream(&stream_name).await;
}
