//! Redis going away and coming back (DESIGN §8, §12): calls fail fast with `Unavailable`
//! while it is down, and the same cache works again (subscriptions included) once it is back.
//! Uses a private `redis-server` on a free port; the shared one is never touched.

use std::time::{Duration, Instant};

use echo_cache::{Cache, CacheError, RateLimit, RedisCache, RedisOptions};
use futures::StreamExt;

const TIMEOUT: Duration = Duration::from_millis(250);

use echo_testenv::PrivateRedis;

/// Asserts that `call` fails with `Unavailable` within the timeout (plus scheduling slack).
async fn fails_fast<T>(what: &str, call: impl Future<Output = Result<T, CacheError>>) {
    let started = Instant::now();
    let result = call.await.map(|_| "a success");
    let took = started.elapsed();
    assert!(
        matches!(result, Err(CacheError::Unavailable(_))),
        "{what}: expected Unavailable, got {result:?}"
    );
    assert!(
        took < TIMEOUT + Duration::from_millis(250),
        "{what} took {took:?}"
    );
}

#[tokio::test]
async fn calls_fail_fast_while_redis_is_down_and_recover_after() {
    let port = echo_testenv::free_port();
    let Some(server) = PrivateRedis::start(port) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let options = RedisOptions {
        timeout: TIMEOUT,
        ..RedisOptions::default()
    };
    let cache = RedisCache::connect_with(&url, &echo_testenv::unique_name("t"), options)
        .await
        .expect("connect to private redis");
    let mut revocations = cache.subscribe("revocations").await.unwrap();
    cache.set("k", b"v", Duration::from_secs(60)).await.unwrap();

    server.stop();
    let limit = RateLimit::new(5, 1.0);
    // Repeat: the first call after the kill meets the broken connection, later ones the
    // refused reconnects; all must answer quickly.
    for _ in 0..3 {
        fails_fast("get", cache.get("k")).await;
        fails_fast("take", cache.take("ip", limit, 1)).await;
        fails_fast("incr", cache.incr("n", Duration::from_secs(1))).await;
        fails_fast("publish", cache.publish("revocations", b"x")).await;
        fails_fast("ping", cache.ping()).await;
    }
    fails_fast("subscribe", cache.subscribe("elsewhere")).await;

    let _server = PrivateRedis::start(port).expect("restart redis-server");
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(err) = cache.ping().await {
        assert!(Instant::now() < deadline, "cache did not recover: {err}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cache.get("k").await.unwrap(),
        None,
        "a fresh server has no data"
    );
    assert!(cache.take("ip", limit, 1).await.unwrap().is_allowed());

    // The subscription made before the outage resumes without the caller doing anything.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        cache.publish("revocations", b"session-1").await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(200), revocations.next()).await;
        if let Ok(Some(payload)) = got {
            assert_eq!(payload, b"session-1");
            break;
        }
        assert!(Instant::now() < deadline, "subscription did not resume");
    }
}
