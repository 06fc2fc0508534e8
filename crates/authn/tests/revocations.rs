//! Revocations across processes (DESIGN §5, §8), one suite on both caches: `memory://` (one
//! shared in-process cache) and the shared Redis (each "process" with its own connection,
//! skipped loudly when Redis is absent). Plus fail-closed on a private Redis that is killed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_authn::{Decision, RevocationOptions, Revocations};
use echo_cache::Cache;
use echo_ids::SessionId;
use tokio_util::sync::CancellationToken;

/// The promise: revoked everywhere within one second.
const WITHIN: Duration = Duration::from_secs(1);
const TTL: Duration = Duration::from_secs(60);

/// Where the "processes" of one test get their caches.
struct Backend {
    url: String,
    prefix: String,
    /// The memory cache is per instance, so every process of a test shares one.
    shared: Option<Arc<dyn Cache>>,
}

impl Backend {
    async fn new(url: &str) -> Self {
        let prefix = echo_testenv::unique_name("t");
        let shared = if url.starts_with("memory") {
            Some(echo_cache::connect(url, &prefix).await.unwrap())
        } else {
            None
        };
        Self {
            url: url.to_owned(),
            prefix,
            shared,
        }
    }

    /// A started `Revocations` as a separate process would have it.
    async fn process(&self, shutdown: &CancellationToken) -> Revocations {
        let cache = match &self.shared {
            Some(cache) => Arc::clone(cache),
            None => echo_cache::connect(&self.url, &self.prefix).await.unwrap(),
        };
        let revocations = Revocations::new(cache);
        revocations.start(shutdown.child_token()).await;
        revocations
    }
}

/// Polls until `session` is revoked on `revocations`; how long that took, or `None`.
async fn until_revoked(
    revocations: &Revocations,
    session: SessionId,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if revocations.is_revoked(session).await == Decision::Revoked {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

macro_rules! revocation_suite {
    ($($backend:ident => $url:expr),* $(,)?) => {$(
        mod $backend {
            revocation_suite!(@tests $url, [
                a_revocation_reaches_the_other_process_within_a_second,
                a_process_started_later_honours_an_earlier_revocation,
                the_revoked_signal_fires_for_that_session_only,
            ]);
        }
    )*};
    (@tests $url:expr, [$($test:ident),* $(,)?]) => {$(
        #[tokio::test]
        async fn $test() {
            let url: Option<String> = $url;
            let Some(url) = url else { return };
            super::suite::$test(&super::Backend::new(&url).await).await;
        }
    )*};
}

revocation_suite! {
    memory => Some("memory://".to_owned()),
    redis => echo_testenv::url(echo_testenv::Server::Redis),
}

mod suite {
    use super::*;

    pub async fn a_revocation_reaches_the_other_process_within_a_second(backend: &Backend) {
        let shutdown = CancellationToken::new();
        let a = backend.process(&shutdown).await;
        let b = backend.process(&shutdown).await;
        let session = SessionId::new_v7();
        let other = SessionId::new_v7();
        // b has seen the session (so it is "known", answered locally from now on).
        assert_eq!(b.is_revoked(session).await, Decision::Allowed);
        assert_eq!(b.is_revoked(other).await, Decision::Allowed);

        a.revoke(session, TTL).await.unwrap();
        assert_eq!(
            a.is_revoked(session).await,
            Decision::Revoked,
            "at once locally"
        );
        let took = until_revoked(&b, session, WITHIN).await;
        assert!(
            took.is_some(),
            "b did not see the revocation within {WITHIN:?}"
        );
        assert_eq!(b.is_revoked(other).await, Decision::Allowed);
        shutdown.cancel();
    }

    pub async fn a_process_started_later_honours_an_earlier_revocation(backend: &Backend) {
        let shutdown = CancellationToken::new();
        let a = backend.process(&shutdown).await;
        let session = SessionId::new_v7();
        a.revoke(session, TTL).await.unwrap();

        let late = backend.process(&shutdown).await;
        assert_eq!(late.is_revoked(session).await, Decision::Revoked);
        assert_eq!(
            late.is_revoked(SessionId::new_v7()).await,
            Decision::Allowed
        );
        shutdown.cancel();
    }

    pub async fn the_revoked_signal_fires_for_that_session_only(backend: &Backend) {
        let shutdown = CancellationToken::new();
        let a = backend.process(&shutdown).await;
        let b = backend.process(&shutdown).await;
        let session = SessionId::new_v7();
        let bystander = SessionId::new_v7();
        let revoked = tokio::spawn(b.revoked_signal(session));
        let untouched = tokio::spawn(b.revoked_signal(bystander));
        tokio::task::yield_now().await;

        a.revoke(session, TTL).await.unwrap();
        tokio::time::timeout(WITHIN, revoked)
            .await
            .expect("the signal fired within a second")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!untouched.is_finished(), "another session's signal fired");

        // A signal asked for after the fact completes at once.
        tokio::time::timeout(Duration::from_millis(100), b.revoked_signal(session))
            .await
            .expect("an already revoked session signals at once");
        shutdown.cancel();
    }
}

use echo_testenv::PrivateRedis;

#[tokio::test]
async fn checks_fail_closed_after_the_grace_while_redis_is_down_and_recover() {
    let Some(server) = PrivateRedis::start(echo_testenv::free_port()) else {
        return;
    };
    let grace = Duration::from_secs(1);
    let cache = echo_cache::connect(&server.url(), &echo_testenv::unique_name("t"))
        .await
        .unwrap();
    let options = RevocationOptions {
        grace,
        ..RevocationOptions::default()
    };
    let revocations = Revocations::with_options(cache, options);
    let shutdown = CancellationToken::new();
    revocations.start(shutdown.clone()).await;
    let session = SessionId::new_v7();
    let revoked = SessionId::new_v7();
    assert_eq!(revocations.is_revoked(session).await, Decision::Allowed);
    revocations
        .revoke(revoked, Duration::from_secs(60))
        .await
        .unwrap();

    let port = server.port();
    drop(server);
    let killed = Instant::now();
    // Within the grace a known session still passes (a blip must not log everyone out).
    assert_eq!(revocations.is_revoked(session).await, Decision::Allowed);
    let deadline = killed + grace + Duration::from_secs(3);
    loop {
        match revocations.is_revoked(session).await {
            Decision::Unavailable => break,
            Decision::Allowed => {}
            Decision::Revoked => panic!("a session nobody revoked is reported revoked"),
        }
        assert!(
            Instant::now() < deadline,
            "still allowed {:?} after the kill",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(killed.elapsed() >= grace, "failed closed before the grace");
    assert_eq!(
        revocations.is_revoked(SessionId::new_v7()).await,
        Decision::Unavailable,
        "new sessions fail closed too"
    );
    assert_eq!(
        revocations.is_revoked(revoked).await,
        Decision::Revoked,
        "what is known revoked stays revoked"
    );

    // Back up (empty: a fresh server): checks pass again without anyone intervening.
    let _server = PrivateRedis::start(port).expect("restart redis-server");
    let deadline = Instant::now() + Duration::from_secs(15);
    while revocations.is_revoked(session).await != Decision::Allowed {
        assert!(
            Instant::now() < deadline,
            "revocation checks did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
}
