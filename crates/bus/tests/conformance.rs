//! The `EventBus` conformance suite (DESIGN §3, §8): every case runs against the embedded bus
//! (on SQLite and on PostgreSQL outboxes) and against NATS JetStream (PostgreSQL and SQLite
//! outboxes). A feature is done only when it passes on all of them.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use echo_bus::Outbox;
use futures::StreamExt;

/// Long enough for a wrong extra delivery (a duplicate, a filtered-out event) to show up.
const SETTLE: Duration = Duration::from_millis(500);

fn assert_each_once(effects: &[(uuid::Uuid, i64)]) {
    let mut seen = HashMap::new();
    for (id, n) in effects {
        *seen.entry(*id).or_insert(0) += 1;
        assert_eq!(seen[id], 1, "event n={n} ({id}) applied twice: {effects:?}");
    }
}

/// Events committed before and after the consumer starts reach it exactly once, in commit order.
async fn delivers_exactly_once_in_commit_order(env: &Env) {
    let before = commit_range(&env.outbox, 0..10).await;
    let consumer = run_consumer(env, &spec("orders", "echo.auth.>"), Recorder::new("orders"));
    let after = commit_range(&env.outbox, 10..25).await;
    wait_effects(&env.consumer_db, "orders", 25).await;
    tokio::time::sleep(SETTLE).await;
    let effects = effects(&env.consumer_db, "orders").await;
    assert_each_once(&effects);
    let ids: Vec<_> = effects.iter().map(|(id, _)| *id).collect();
    let committed: Vec<_> = before.iter().chain(&after).map(|e| e.id).collect();
    assert_eq!(
        ids, committed,
        "effects are not the committed events in commit order"
    );
    consumer.stop().await;
}

/// A consumer only sees its filter's subjects.
async fn consumer_sees_only_its_filter(env: &Env) {
    let regs = run_consumer(
        env,
        &spec("regs", "echo.auth.user_registered.*"),
        Recorder::new("regs"),
    );
    let all = run_consumer(env, &spec("all", "echo.auth.>"), Recorder::new("all"));
    let subjects = [
        "user_registered.u0",
        "password_changed.u1",
        "user_registered.u2",
        "user_registered.u3.deeper", // `*` is one token: not for `regs`
        "password_changed.u4",
        "user_registered.u5",
    ];
    for (n, subject) in subjects.iter().enumerate() {
        let (kind, key) = subject.split_once('.').unwrap();
        commit(&env.outbox, &event(kind, key, n as i64)).await;
    }
    assert_eq!(
        wait_effects(&env.consumer_db, "all", 6).await,
        vec![0, 1, 2, 3, 4, 5]
    );
    wait_effects(&env.consumer_db, "regs", 3).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(effect_ns(&env.consumer_db, "regs").await, vec![0, 2, 5]);
    assert_eq!(
        effect_ns(&env.consumer_db, "all").await,
        vec![0, 1, 2, 3, 4, 5]
    );
    regs.stop().await;
    all.stop().await;
}

/// A restarted consumer (new `consumer::run`, same name) resumes where it left off and
/// re-applies nothing.
async fn restarted_consumer_resumes_without_reapplying(env: &Env) {
    let spec = spec("resumer", "echo.auth.>");
    commit_range(&env.outbox, 0..5).await;
    let first = run_consumer(env, &spec, Recorder::new("resumer"));
    wait_effects(&env.consumer_db, "resumer", 5).await;
    first.stop().await;

    commit_range(&env.outbox, 5..10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        effect_ns(&env.consumer_db, "resumer").await.len(),
        5,
        "applied while stopped"
    );

    let second = run_consumer(env, &spec, Recorder::new("resumer"));
    wait_effects(&env.consumer_db, "resumer", 10).await;
    tokio::time::sleep(SETTLE).await;
    let effects = effects(&env.consumer_db, "resumer").await;
    assert_each_once(&effects);
    assert_eq!(
        effects.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    second.stop().await;
}

/// A rolled-back (or dropped) transaction's event is never delivered.
async fn rolled_back_event_is_never_delivered(env: &Env) {
    let consumer = run_consumer(env, &spec("rb", "echo.auth.>"), Recorder::new("rb"));
    let mut tx = env.outbox.database().begin().await.unwrap();
    Outbox::append(&mut tx, &event("user_registered", "ghost", 100))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    {
        let mut tx = env.outbox.database().begin().await.unwrap();
        Outbox::append(&mut tx, &event("user_registered", "ghost", 101))
            .await
            .unwrap();
        // dropped without commit
    }
    commit(&env.outbox, &event("user_registered", "real", 1)).await;
    wait_effects(&env.consumer_db, "rb", 1).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(effect_ns(&env.consumer_db, "rb").await, vec![1]);
    if let Some(nats) = &env.nats {
        let stream = echo_bus::subject::stream_name(&nats.settings.subject_prefix, "auth");
        let payloads: Vec<_> = read_stream(&nats.js, &stream)
            .await
            .into_iter()
            .map(|m| m.payload)
            .collect();
        assert_eq!(
            payloads,
            vec![Bytes::from("1")],
            "only the committed event is in the stream"
        );
    }
    consumer.stop().await;
}

/// A handler that fails twice then succeeds is applied once (retry with backoff), and a failed
/// attempt leaves no effect behind.
async fn failing_then_succeeding_handler_is_applied_once(env: &Env) {
    let handler = Recorder::failing(
        "retry",
        Box::new(|e, attempt| payload_n(e) == 1 && attempt < 3),
    );
    let consumer = run_consumer(env, &spec("retry", "echo.auth.>"), handler.clone());
    let events = commit_range(&env.outbox, 0..3).await;
    wait_effects(&env.consumer_db, "retry", 3).await;
    tokio::time::sleep(SETTLE).await;
    let effects = effects(&env.consumer_db, "retry").await;
    assert_each_once(&effects);
    let mut ns: Vec<_> = effects.iter().map(|(_, n)| *n).collect();
    ns.sort_unstable();
    assert_eq!(ns, vec![0, 1, 2]);
    assert_eq!(
        handler.attempts(events[1].id),
        3,
        "two failures, then the success"
    );
    assert_eq!(handler.attempts(events[0].id), 1);
    assert!(env.dead_letters("retry").await.is_empty());
    consumer.stop().await;
}

/// A handler that always fails ends in the dead-letter store after `max_deliver` deliveries,
/// and the consumer moves on to later events.
async fn poison_event_is_dead_lettered_and_consumer_moves_on(env: &Env) {
    let mut spec = spec("poison", "echo.auth.>");
    spec.max_deliver = 3;
    spec.backoff = vec![Duration::from_millis(50), Duration::from_millis(100)];
    let handler = Recorder::failing("poison", Box::new(|e, _| payload_n(e) == 1));
    let consumer = run_consumer(env, &spec, handler.clone());
    let events = commit_range(&env.outbox, 0..3).await;
    wait_until("the poison event is dead-lettered", || async {
        !env.dead_letters("poison").await.is_empty()
    })
    .await;
    wait_effects(&env.consumer_db, "poison", 2).await;
    // Later events still flow.
    commit(&env.outbox, &event("user_registered", "late", 3)).await;
    wait_effects(&env.consumer_db, "poison", 3).await;
    tokio::time::sleep(SETTLE).await;

    let mut ns = effect_ns(&env.consumer_db, "poison").await;
    ns.sort_unstable();
    assert_eq!(ns, vec![0, 2, 3]);
    let parked = env.dead_letters("poison").await;
    assert_eq!(parked.len(), 1, "parked exactly once: {parked:?}");
    assert_eq!(parked[0].0, events[1].id);
    if env.nats.is_none() {
        assert_eq!(parked[0].1, 3, "attempts recorded with the dead letter");
    }
    assert_eq!(
        handler.attempts(events[1].id),
        3,
        "delivered exactly max_deliver times"
    );
    consumer.stop().await;
}

async fn next(
    stream: &mut futures::stream::BoxStream<'static, (String, Bytes)>,
) -> (String, String) {
    let next = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an ephemeral delivery");
    let (subject, payload) = next.expect("stream open");
    (subject, String::from_utf8(payload.to_vec()).unwrap())
}

/// A failure of the consumer's OWN database is not the event's fault: the event is retried
/// until the database is back and applied once, never parked.
async fn consumer_database_failure_never_parks_an_event(env: &Env) {
    let mut spec = spec("dbdown", "echo.auth.>");
    spec.max_deliver = 2;
    spec.backoff = vec![Duration::from_millis(50)];
    // Break the consumer's idempotency table, so every apply fails in the store.
    exec(
        &env.consumer_db,
        "ALTER TABLE bus_processed_events RENAME TO bus_processed_events_away",
    )
    .await;
    let handler = Recorder::new("dbdown");
    let consumer = run_consumer(env, &spec, handler.clone());
    let events = commit_range(&env.outbox, 0..1).await;
    // Several deliveries fail meanwhile (well beyond max_deliver).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    exec(
        &env.consumer_db,
        "ALTER TABLE bus_processed_events_away RENAME TO bus_processed_events",
    )
    .await;
    assert_eq!(wait_effects(&env.consumer_db, "dbdown", 1).await, vec![0]);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(effect_ns(&env.consumer_db, "dbdown").await, vec![0]);
    assert!(
        env.dead_letters("dbdown").await.is_empty(),
        "a store failure parked {:?}",
        events[0].id
    );
    consumer.stop().await;
}

/// `Subscription::next` is cancel-safe: a pending retry survives a `next()` that timed out
/// (`consumer::run` selects on `next()`; callers put timeouts around it).
async fn pending_retry_survives_a_cancelled_next(env: &Env) {
    let spec = spec("cancel", "echo.auth.>");
    let events = commit_range(&env.outbox, 0..1).await;
    let mut subscription = env.bus.subscribe(&spec, &env.consumer_db).await.unwrap();
    let first = tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("delivery")
        .unwrap();
    assert_eq!(first.event.id, events[0].id);
    subscription
        .retry(first, Duration::from_millis(400))
        .await
        .unwrap();
    let early = tokio::time::timeout(Duration::from_millis(50), subscription.next()).await;
    assert!(early.is_err(), "redelivered before its backoff");
    let again = tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("the retry")
        .unwrap();
    assert_eq!(again.event.id, events[0].id);
    assert_eq!(again.attempt, 2);
    subscription.ack(again).await.unwrap();
}

/// Ephemeral publish/subscribe reaches matching filters only.
async fn ephemeral_reaches_matching_filters_only(env: &Env) {
    let mut typing = env
        .bus
        .subscribe_ephemeral("echo.live.typing.*")
        .await
        .unwrap();
    let mut presence = env
        .bus
        .subscribe_ephemeral("echo.live.presence.>")
        .await
        .unwrap();
    for (subject, payload) in [
        ("echo.live.typing.c1", "a"),
        ("echo.live.presence.u1.online", "b"),
        ("echo.live.typing.c1.extra", "x"),
        ("echo.live.other.c1", "y"),
        ("echo.live.typing.c2", "c"),
    ] {
        env.bus
            .publish_ephemeral(subject, Bytes::from(payload))
            .await
            .unwrap();
    }
    assert_eq!(
        next(&mut typing).await,
        ("echo.live.typing.c1".into(), "a".into())
    );
    assert_eq!(
        next(&mut typing).await,
        ("echo.live.typing.c2".into(), "c".into())
    );
    assert_eq!(
        next(&mut presence).await,
        ("echo.live.presence.u1.online".into(), "b".into())
    );
    for stream in [&mut typing, &mut presence] {
        let extra = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
        assert!(extra.is_err(), "unexpected ephemeral delivery: {extra:?}");
    }
}

/// A shared ephemeral subscription: each publish reaches one member of the group (not every
/// one), while a plain subscriber still sees everything.
async fn a_shared_ephemeral_publish_reaches_one_member_of_its_group(env: &Env) {
    let filter = "echo.live.receipt.>";
    let mut members = Vec::new();
    for _ in 0..2 {
        members.push(
            env.bus
                .subscribe_ephemeral_shared(filter, "receipts")
                .await
                .unwrap(),
        );
    }
    let mut everyone = env.bus.subscribe_ephemeral(filter).await.unwrap();
    const SENT: usize = 20;
    for n in 0..SENT {
        env.bus
            .publish_ephemeral(&format!("echo.live.receipt.c{n}"), Bytes::from("r"))
            .await
            .unwrap();
    }
    for _ in 0..SENT {
        next(&mut everyone).await;
    }
    let mut received = Vec::new();
    loop {
        let mut got = false;
        for member in &mut members {
            if let Ok(Some((subject, _))) =
                tokio::time::timeout(Duration::from_millis(300), member.next()).await
            {
                received.push(subject);
                got = true;
            }
        }
        if !got {
            break;
        }
    }
    received.sort();
    let mut expected: Vec<String> = (0..SENT)
        .map(|n| format!("echo.live.receipt.c{n}"))
        .collect();
    expected.sort();
    assert_eq!(received, expected, "each publish once across the group");
}

macro_rules! cases {
    ($kind:expr; $($case:ident),* $(,)?) => { $(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(env) = Env::new($kind).await else { return };
            super::$case(&env).await;
            env.cleanup().await;
        }
    )* };
}

macro_rules! backend {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;
            cases!($kind;
                delivers_exactly_once_in_commit_order,
                consumer_sees_only_its_filter,
                restarted_consumer_resumes_without_reapplying,
                rolled_back_event_is_never_delivered,
                failing_then_succeeding_handler_is_applied_once,
                poison_event_is_dead_lettered_and_consumer_moves_on,
                ephemeral_reaches_matching_filters_only,
                a_shared_ephemeral_publish_reaches_one_member_of_its_group,
                consumer_database_failure_never_parks_an_event,
                pending_retry_survives_a_cancelled_next,
            );
        }
    };
}

backend!(embedded_sqlite, Kind::EmbeddedSqlite);
backend!(embedded_postgres, Kind::EmbeddedPostgres);
backend!(nats_postgres, Kind::NatsPostgres);
backend!(nats_sqlite, Kind::NatsSqlite);
