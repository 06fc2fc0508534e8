//! A consumer that crashes after its effect commits but before its ack does not apply the event
//! twice (DESIGN §8): the event id is recorded with the effect, so a redelivery is a no-op.

mod common;

use std::time::Duration;

use common::*;
use echo_bus::consumer::{Applied, apply};

async fn crash_between_commit_and_ack(kind: Kind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let mut spec = spec("crashy", "echo.auth.>");
    spec.ack_wait = Duration::from_secs(1); // NATS redelivers the unacked event quickly
    let handler = Recorder::new("crashy");
    let events = commit_range(&env.outbox, 0..2).await;

    let mut subscription = env.bus.subscribe(&spec, &env.consumer_db).await.unwrap();
    let first = tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("a delivery")
        .unwrap();
    assert_eq!(first.event.id, events[0].id);
    assert_eq!(first.attempt, 1);
    let applied = apply(&env.consumer_db, &spec, handler.as_ref(), &first)
        .await
        .unwrap();
    assert_eq!(applied, Applied::Done);
    // The crash: the effect is committed, the ack never sent.
    drop(subscription);

    // Applying the very same delivery again (what any redelivery amounts to) is a no-op.
    let again = apply(&env.consumer_db, &spec, handler.as_ref(), &first)
        .await
        .unwrap();
    assert_eq!(again, Applied::AlreadyProcessed);
    drop(first);

    let mut subscription = env.bus.subscribe(&spec, &env.consumer_db).await.unwrap();
    let mut redelivered = false;
    let mut second_done = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(second_done && (redelivered || env.nats.is_none())) {
        let delivery = tokio::time::timeout_at(deadline, subscription.next())
            .await
            .expect("the restarted subscription delivers")
            .unwrap();
        let applied = apply(&env.consumer_db, &spec, handler.as_ref(), &delivery)
            .await
            .unwrap();
        if delivery.event.id == events[0].id {
            // NATS: the unacked event comes back after ack_wait, and is recognised.
            assert!(
                env.nats.is_some(),
                "the embedded bus stored its position with the effect"
            );
            assert!(
                delivery.attempt >= 2,
                "a redelivery: attempt {}",
                delivery.attempt
            );
            assert_eq!(applied, Applied::AlreadyProcessed);
            redelivered = true;
        } else {
            assert_eq!(delivery.event.id, events[1].id);
            if applied == Applied::Done {
                second_done = true;
            }
        }
        subscription.ack(delivery).await.unwrap();
    }
    drop(subscription);

    let effects = effects(&env.consumer_db, "crashy").await;
    let ids: Vec<_> = effects.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids.iter().filter(|id| **id == events[0].id).count(),
        1,
        "{effects:?}"
    );
    assert_eq!(
        ids.iter().filter(|id| **id == events[1].id).count(),
        1,
        "{effects:?}"
    );
    assert_eq!(
        handler.attempts(events[0].id),
        1,
        "the handler ran once for the crashed event"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_sqlite() {
    crash_between_commit_and_ack(Kind::EmbeddedSqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_postgres() {
    crash_between_commit_and_ack(Kind::EmbeddedPostgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_postgres() {
    crash_between_commit_and_ack(Kind::NatsPostgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_sqlite() {
    crash_between_commit_and_ack(Kind::NatsSqlite).await;
}
