//! Private servers the test starts, killed outright (SIGKILL: no goodbye to clients, no
//! checkpoint, no save) under the load and started again on the same port: PostgreSQL with
//! its data dir (crash recovery), NATS with its JetStream store, Redis empty (it keeps
//! nothing: revocations and rate-limit state are gone).

use std::time::Duration;

use echo_proto::echo::auth::v1 as auth_pb;
use echo_proto::echo::user::v1 as user_pb;
use echo_testenv::{PrivateNats, PrivatePostgres, PrivateRedis, free_port};
use echo_testkit::{Backend, SignedIn, TestMesh};
use tokio::time::Instant;

use crate::ACQUIRE_TIMEOUT;
use crate::checks::{assert_retryable, back_within_5s, database_outage_checked};
use crate::common;
use crate::common::live::eventually;
use crate::load::{Sent, loaded, readiness};

#[tokio::test]
async fn nats_killed_and_restarted_under_send_load_loses_nothing() {
    let store = tempfile::tempdir().expect("JetStream store");
    let port = echo_testenv::free_port();
    let Some(nats) = PrivateNats::start(port, store.path()) else {
        return;
    };
    let Some(mut loaded) = loaded(|config| config.bus_url = nats.url()).await else {
        return;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    // SIGKILL: no goodbye to clients, JetStream recovers from its store on the restart.
    nats.kill();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let _nats = PrivateNats::start(port, store.path()).expect("restart nats-server");
    let sent = loaded.finish(Duration::from_secs(4)).await;
    loaded
        .bus_outage_survived(&sent, "NATS killed for 6 s and restarted")
        .await;
}

/// `postgres` SIGKILLed with its backends (in a blocking task: the mesh runs on this test's
/// runtime and must not stall), down for `down`, started again on its data dir; when it
/// died and when it accepted connections again.
async fn crash(postgres: PrivatePostgres, down: Duration) -> (PrivatePostgres, Instant, Instant) {
    let killed = Instant::now();
    let mut postgres = tokio::task::spawn_blocking(move || {
        let mut postgres = postgres;
        postgres.kill();
        postgres
    })
    .await
    .expect("kill postgres");
    tokio::time::sleep(down.saturating_sub(killed.elapsed())).await;
    let postgres = tokio::task::spawn_blocking(move || {
        postgres.start();
        postgres
    })
    .await
    .expect("restart postgres");
    (postgres, killed, Instant::now())
}

#[tokio::test]
async fn postgres_killed_and_restarted_under_send_load_loses_nothing() {
    let dir = tempfile::tempdir().expect("postgres dir");
    // fsync off: the kill ends processes, not the machine, so the kernel keeps what was
    // written. synchronous_commit stays on: an acknowledged commit is in the WAL the kernel
    // holds (off, the last ~200 ms of acknowledged sends would be lost by design).
    let settings = "fsync = off\n";
    let hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n";
    let Some(mut postgres) = PrivatePostgres::init(dir.path(), free_port(), settings, hba) else {
        return;
    };
    postgres.start();
    let url = postgres.url("sslmode=disable");
    let Some(mut loaded) = loaded(|config| config.database_url = Some(url.clone())).await else {
        return;
    };
    let ready = readiness(&loaded.mesh, &loaded.stop);
    // Down for 2 s, then for 7 s: longer than the pool's 5 s acquire timeout (no other
    // timeout applies: a dead server refuses, nothing waits for an answer).
    let mut outages = Vec::new();
    for down in [Duration::from_secs(2), Duration::from_secs(7)] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (restarted, killed, back) = crash(postgres, down).await;
        postgres = restarted;
        outages.push((killed, back));
    }
    let sent = loaded.finish(Duration::from_secs(5)).await;
    let ready = ready.await.expect("readiness poller");
    let slowest = 2 * ACQUIRE_TIMEOUT + Duration::from_secs(2);
    let label = "PostgreSQL killed (2 s, 7 s)";
    database_outage_checked(&sent, &ready, &outages, slowest, label);
    loaded.caught_up_once(&sent, label).await;
    drop(postgres);
}

#[tokio::test]
async fn redis_killed_and_restarted_empty_under_send_load_loses_nothing() {
    let port = free_port();
    let Some(mut redis) = PrivateRedis::start(port) else {
        return;
    };
    let Some(mut loaded) = loaded(|config| config.cache_url = redis.url()).await else {
        return;
    };
    // Down for 2 s, then for 7 s (past the revocation feed's 5 s grace: token checks fail
    // closed), back empty each time.
    let mut ends = Vec::new();
    for down in [Duration::from_secs(2), Duration::from_secs(7)] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        redis.stop();
        tokio::time::sleep(down).await;
        redis = PrivateRedis::start(port).expect("restart redis-server");
        ends.push(Instant::now());
    }
    let sent = loaded.finish(Duration::from_secs(5)).await;
    let all: Vec<&Sent> = sent.iter().flatten().collect();
    let refused: Vec<&Sent> = all.iter().copied().filter(|s| s.answer.is_err()).collect();
    // Past the grace, token checks fail closed: there were refusals, each retryable.
    assert!(!refused.is_empty(), "sends refused while Redis was away");
    for send in &refused {
        let status = send.answer.as_ref().unwrap_err();
        assert_retryable(status, "DEPENDENCY_UNAVAILABLE", &send.key);
    }
    let back: Vec<Duration> = ends
        .iter()
        .map(|end| back_within_5s(&all, *end, "Redis"))
        .collect();
    eprintln!(
        "Redis killed (2 s, 7 s), back empty: {} sends, {} refused, sends ok again after {back:?}",
        all.len(),
        refused.len(),
    );
    loaded.nothing_lost(&sent).await;
}

/// What `mesh` answers `user`'s access token with: GetMe's code and reason.
async fn get_me(mesh: &TestMesh, user: &SignedIn) -> Result<(), (tonic::Code, String)> {
    mesh.user_as(user)
        .get_me(user_pb::GetMeRequest {})
        .await
        .map(|_| ())
        .map_err(|status| common::refusal(&status))
}

/// DESIGN §5: a revoked session stays revoked. Revocations live in the auth database
/// (`sessions.revoked_at`) and, for the access tokens still alive, in Redis, which keeps
/// nothing across a restart. Ada logs out; Redis is killed and comes back empty; the auth
/// service announces again what the cache lost, so her old access token is refused by the
/// instance that saw the logout, found revoked in the cache again, and refused by an instance
/// started afterwards, which never heard of the logout.
#[tokio::test]
async fn a_revoked_session_stays_revoked_when_redis_comes_back_empty() {
    let port = free_port();
    let Some(mut redis) = PrivateRedis::start(port) else {
        return;
    };
    let Some(mesh) =
        TestMesh::start_with(Backend::Real, "all", |c| c.cache_url = redis.url()).await
    else {
        return;
    };
    let ada = mesh.sign_up().await;
    assert_eq!(get_me(&mesh, &ada).await, Ok(()));
    mesh.auth_as(&ada)
        .logout(auth_pb::LogoutRequest {})
        .await
        .expect("logout");
    let revoked = Err((tonic::Code::Unauthenticated, "SESSION_REVOKED".to_owned()));
    assert_eq!(get_me(&mesh, &ada).await, revoked);

    redis.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis = PrivateRedis::start(port).expect("restart redis-server");
    let back = Instant::now();
    // The cache the mesh uses (its key prefix) holds the revocation again.
    let cache = echo_cache::connect(&redis.url(), &mesh.config.cache_key_prefix)
        .await
        .expect("connect to the private redis");
    let key = format!("auth.revoked.{}", ada.tokens.session_id);
    eventually(
        Duration::from_secs(5),
        "the revocation back in Redis",
        || {
            let (cache, key) = (cache.clone(), key.clone());
            async move { cache.get(&key).await.ok().flatten().map(|_| ()) }
        },
    )
    .await;
    let restored = back.elapsed();
    assert_eq!(get_me(&mesh, &ada).await, revoked);
    let later = mesh.start_sibling().await;
    assert_eq!(
        get_me(&later, &ada).await,
        revoked,
        "an instance started after Redis lost the revocation"
    );
    eprintln!("revocation back in Redis {restored:?} after its restart");
    later.shutdown().await;
    mesh.shutdown().await;
}
