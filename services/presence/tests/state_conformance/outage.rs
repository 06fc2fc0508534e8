//! Redis going away under a live store: every call answers `Unavailable` quickly (spec §A6:
//! callers then answer UNAVAILABLE with RetryInfo), never hangs or reports a backend bug.
//! A private `redis-server` on a free port; the shared one is never touched.

use std::time::Instant;

use echo_testenv::PrivateRedis;

use super::*;

/// Asserts that `call` fails with `Unavailable` within about a second.
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    call: impl Future<Output = Result<T, StateError>>,
) {
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed();
    assert!(
        matches!(&result, Err(error) if error.is_unavailable()),
        "{what}: expected Unavailable, got {result:?}"
    );
    assert!(took < Duration::from_secs(1), "{what} took {took:?}");
}

#[tokio::test]
async fn calls_answer_unavailable_while_redis_is_down() {
    let Some(server) = PrivateRedis::start(echo_testenv::free_port()) else {
        return;
    };
    let prefix = echo_testenv::unique_name("t_pres");
    let store = RedisState::connect(&server.url(), &prefix)
        .await
        .expect("connect to private redis");
    let (user, dev) = (id(1), id(101));
    store.seed(user, None, None, at(0)).await.unwrap();
    store.refresh(user, dev, None, TTL, at(0)).await.unwrap();
    let url = server.url();

    server.stop();
    // Repeat: the first call meets the broken connection, later ones refused reconnects.
    for _ in 0..3 {
        fails_fast("read", store.read(&[user])).await;
        fails_fast("refresh", store.refresh(user, dev, None, TTL, at(1))).await;
        fails_fast("sweep", store.sweep(at(TTL_MS), 100)).await;
        fails_fast("extend_until", store.extend_until(at(TTL_MS), 100)).await;
    }
    fails_fast("connect", RedisState::connect(&url, &prefix)).await;
}
