//! One suite, both backends (DESIGN §3): every test in `suite` runs against `memory://` and
//! against the shared Redis (skipped loudly when Redis is absent, see `echo-testenv`).
//! Each cache gets a fresh key prefix, so tests never see each other's keys or channels.

use std::sync::Arc;
use std::time::Duration;

use echo_cache::{Cache, CacheError, RateDecision, RateLimit};
use futures::StreamExt;
use futures::stream::BoxStream;

/// A fresh cache with its own prefix on the backend at `url`.
async fn fresh(url: &str) -> Arc<dyn Cache> {
    echo_cache::connect(url, &echo_testenv::unique_name("t"))
        .await
        .expect("connect")
}

/// Generates one `#[tokio::test]` per suite function for a backend. `$url` yields the
/// backend's URL, or `None` to skip.
macro_rules! cache_test_suite {
    ($backend:ident, $url:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $test() {
                    let url: Option<String> = $url;
                    let Some(url) = url else { return };
                    super::suite::$test(&url).await;
                }
            )*
        }
    };
    ($($backend:ident => $url:expr),* $(,)?) => {
        $(cache_test_suite!($backend, $url, [
            bucket_allows_capacity_then_limits,
            bucket_refills_over_time,
            bucket_keys_are_independent,
            impossible_costs_are_rejected,
            values_expire,
            set_replaces_and_delete_reports,
            set_if_absent_only_once,
            incr_counts_within_a_fixed_window,
            pubsub_reaches_all_subscribers_of_a_channel_only,
            pubsub_survives_dropped_subscribers,
            prefixes_isolate,
            ping_answers,
        ]);)*
    };
}

cache_test_suite! {
    memory => Some("memory://".to_owned()),
    redis => echo_testenv::url(echo_testenv::Server::Redis),
}

/// The next message, waiting generously (a loaded CI machine is slow); `None` if none comes.
async fn next(stream: &mut BoxStream<'static, Vec<u8>>) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .ok()
        .flatten()
}

/// True if nothing arrives for a while (long enough for Redis to have delivered it).
async fn quiet(stream: &mut BoxStream<'static, Vec<u8>>) -> bool {
    tokio::time::timeout(Duration::from_millis(300), stream.next())
        .await
        .is_err()
}

mod suite {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    pub async fn bucket_allows_capacity_then_limits(url: &str) {
        let cache = fresh(url).await;
        let limit = RateLimit::new(3, 1.0);
        for remaining in [2, 1, 0] {
            assert_eq!(
                cache.take("ip", limit, 1).await.unwrap(),
                RateDecision::Allowed { remaining }
            );
        }
        let RateDecision::Limited { retry_after } = cache.take("ip", limit, 1).await.unwrap()
        else {
            panic!("a drained bucket must limit");
        };
        assert!(
            retry_after > SECOND / 2 && retry_after <= SECOND,
            "{retry_after:?}"
        );
        // A larger cost waits proportionally longer.
        let RateDecision::Limited { retry_after } = cache.take("ip", limit, 3).await.unwrap()
        else {
            panic!("a drained bucket must limit");
        };
        assert!(retry_after > 2 * SECOND && retry_after <= 3 * SECOND);
    }

    pub async fn bucket_refills_over_time(url: &str) {
        let cache = fresh(url).await;
        let limit = RateLimit::per(2, SECOND); // one token per 500 ms
        assert!(cache.take("u", limit, 2).await.unwrap().is_allowed());
        let RateDecision::Limited { retry_after } = cache.take("u", limit, 1).await.unwrap() else {
            panic!("a drained bucket must limit");
        };
        tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
        assert!(
            cache.take("u", limit, 1).await.unwrap().is_allowed(),
            "refilled one token"
        );
        assert!(
            !cache.take("u", limit, 1).await.unwrap().is_allowed(),
            "but only one"
        );
        // Idle long enough, the bucket is full again (and never above capacity).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            cache.take("u", limit, 1).await.unwrap(),
            RateDecision::Allowed { remaining: 1 }
        );
    }

    pub async fn bucket_keys_are_independent(url: &str) {
        let cache = fresh(url).await;
        let limit = RateLimit::new(1, 0.1);
        assert!(cache.take("a", limit, 1).await.unwrap().is_allowed());
        assert!(!cache.take("a", limit, 1).await.unwrap().is_allowed());
        assert!(cache.take("b", limit, 1).await.unwrap().is_allowed());
        // Buckets and values live in separate key spaces.
        assert_eq!(cache.get("a").await.unwrap(), None);
    }

    pub async fn impossible_costs_are_rejected(url: &str) {
        let cache = fresh(url).await;
        let err = cache
            .take("k", RateLimit::new(2, 1.0), 3)
            .await
            .unwrap_err();
        assert!(matches!(err, CacheError::InvalidArgument(_)), "{err}");
        let err = cache.set("k", b"v", Duration::ZERO).await.unwrap_err();
        assert!(matches!(err, CacheError::InvalidArgument(_)), "{err}");
    }

    pub async fn values_expire(url: &str) {
        let cache = fresh(url).await;
        cache
            .set("otp", b"123456", Duration::from_millis(500))
            .await
            .unwrap();
        assert_eq!(
            cache.get("otp").await.unwrap().as_deref(),
            Some(&b"123456"[..])
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(cache.get("otp").await.unwrap(), None);
        assert!(
            !cache.delete("otp").await.unwrap(),
            "an expired key is gone"
        );
    }

    pub async fn set_replaces_and_delete_reports(url: &str) {
        let cache = fresh(url).await;
        assert_eq!(cache.get("k").await.unwrap(), None);
        cache.set("k", b"one", SECOND).await.unwrap();
        cache.set("k", &[0, 255, 1], 10 * SECOND).await.unwrap();
        assert_eq!(
            cache.get("k").await.unwrap(),
            Some(vec![0, 255, 1]),
            "binary-safe"
        );
        assert!(cache.delete("k").await.unwrap());
        assert!(!cache.delete("k").await.unwrap());
        assert_eq!(cache.get("k").await.unwrap(), None);
    }

    pub async fn set_if_absent_only_once(url: &str) {
        let cache = fresh(url).await;
        let ttl = Duration::from_millis(500);
        assert!(cache.set_if_absent("lock", b"a", ttl).await.unwrap());
        assert!(!cache.set_if_absent("lock", b"b", ttl).await.unwrap());
        assert_eq!(cache.get("lock").await.unwrap().as_deref(), Some(&b"a"[..]));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(
            cache.set_if_absent("lock", b"c", ttl).await.unwrap(),
            "free after expiry"
        );
        assert_eq!(cache.get("lock").await.unwrap().as_deref(), Some(&b"c"[..]));
    }

    pub async fn incr_counts_within_a_fixed_window(url: &str) {
        let cache = fresh(url).await;
        let window = Duration::from_millis(600);
        assert_eq!(cache.incr("tries", window).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(cache.incr("tries", window).await.unwrap(), 2);
        assert_eq!(
            cache.get("tries").await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(cache.incr("other", window).await.unwrap(), 1);
        // Later increments do not extend the window opened by the first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            cache.incr("tries", window).await.unwrap(),
            1,
            "a new window"
        );
        // Deleting resets a counter (e.g. after a successful attempt).
        assert!(cache.delete("tries").await.unwrap());
        assert_eq!(cache.incr("tries", window).await.unwrap(), 1);
        // Counting a value that is not a number is an error, not a reset.
        cache.set("word", b"abc", SECOND).await.unwrap();
        let err = cache.incr("word", SECOND).await.unwrap_err();
        assert!(matches!(err, CacheError::Backend(_)), "{err}");
    }

    pub async fn pubsub_reaches_all_subscribers_of_a_channel_only(url: &str) {
        let cache = fresh(url).await;
        let mut first = cache.subscribe("revocations").await.unwrap();
        let mut second = cache.subscribe("revocations").await.unwrap();
        let mut other = cache.subscribe("presence").await.unwrap();
        cache.publish("revocations", b"session-1").await.unwrap();
        cache.publish("revocations", b"session-2").await.unwrap();
        for stream in [&mut first, &mut second] {
            assert_eq!(next(stream).await.as_deref(), Some(&b"session-1"[..]));
            assert_eq!(next(stream).await.as_deref(), Some(&b"session-2"[..]));
        }
        assert!(quiet(&mut other).await);
        cache.publish("presence", b"").await.unwrap();
        assert_eq!(
            next(&mut other).await,
            Some(vec![]),
            "empty payloads are delivered"
        );
    }

    pub async fn pubsub_survives_dropped_subscribers(url: &str) {
        let cache = fresh(url).await;
        let gone = cache.subscribe("c").await.unwrap();
        let mut kept = cache.subscribe("c").await.unwrap();
        drop(gone);
        cache.publish("c", b"1").await.unwrap();
        assert_eq!(next(&mut kept).await.as_deref(), Some(&b"1"[..]));
        drop(kept);
        // Let the Redis backend's upkeep unsubscribe the channel, then subscribe afresh.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let mut again = cache.subscribe("c").await.unwrap();
        cache.publish("c", b"2").await.unwrap();
        assert_eq!(next(&mut again).await.as_deref(), Some(&b"2"[..]));
    }

    pub async fn prefixes_isolate(url: &str) {
        let (a, b) = (fresh(url).await, fresh(url).await);
        a.set("k", b"a", SECOND).await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), None);
        assert!(b.set_if_absent("k", b"b", SECOND).await.unwrap());
        assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"a"[..]));
        assert_eq!(b.incr("n", SECOND).await.unwrap(), 1);
        assert_eq!(a.incr("n", SECOND).await.unwrap(), 1);
        let limit = RateLimit::new(1, 0.1);
        assert!(a.take("r", limit, 1).await.unwrap().is_allowed());
        assert!(b.take("r", limit, 1).await.unwrap().is_allowed());

        let mut on_a = a.subscribe("ch").await.unwrap();
        let mut on_b = b.subscribe("ch").await.unwrap();
        b.publish("ch", b"for b").await.unwrap();
        assert_eq!(next(&mut on_b).await.as_deref(), Some(&b"for b"[..]));
        assert!(quiet(&mut on_a).await);
    }

    pub async fn ping_answers(url: &str) {
        fresh(url).await.ping().await.unwrap();
    }
}
