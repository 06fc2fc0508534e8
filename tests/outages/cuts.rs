//! Each dependency cut through the test's own proxy (connections dropped, new ones closed at
//! once: a server that went away), twice: 2 s, then 8 s, longer than every timeout.

use std::time::Duration;

use echo_proto::echo::auth::v1 as auth_pb;
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::user::v1 as user_pb;
use echo_testenv::{Server, TcpProxy, url};
use tokio::time::Instant;

use crate::ACQUIRE_TIMEOUT;
use crate::checks::{assert_retryable, back_within_5s, database_outage_checked};
use crate::load::{Sent, cut_twice, loaded, readiness};

#[tokio::test]
async fn postgres_cut_under_send_load_loses_nothing_and_recovers() {
    let Some(postgres) = url(Server::Postgres) else {
        return;
    };
    let (proxy, proxied) = TcpProxy::in_front_of(&postgres).await;
    let Some(mut loaded) = loaded(|config| config.database_url = Some(proxied.clone())).await
    else {
        return;
    };
    let ready = readiness(&loaded.mesh, &loaded.stop);
    let (mesh, ada) = (&loaded.mesh, &loaded.ada);
    // A short cut, then one longer than every timeout (the pool's 5 s acquire timeout).
    let mut outages = Vec::new();
    let mut reads = Vec::new();
    for length in [Duration::from_secs(2), Duration::from_secs(8)] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.cut();
        let cut = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Reads of every service that owns data are refused alike.
        let me = mesh.user_as(ada).get_me(user_pb::GetMeRequest {}).await;
        reads.push(me.map(|_| ()));
        let sessions = auth_pb::ListSessionsRequest::default();
        reads.push(mesh.auth_as(ada).list_sessions(sessions).await.map(|_| ()));
        let conversation = pb::GetConversationRequest {
            conversation_id: loaded.chat.conversation_id.clone(),
        };
        let read = mesh.message_as(ada).get_conversation(conversation).await;
        reads.push(read.map(|_| ()));
        tokio::time::sleep(length.saturating_sub(cut.elapsed())).await;
        proxy.restore();
        outages.push((cut, Instant::now()));
    }
    let sent = loaded.finish(Duration::from_secs(7)).await;
    let ready = ready.await.expect("readiness poller");
    // A send may wait in its lane behind a batch that waits out the acquire timeout, then
    // wait it out itself: two timeouts, and slack for a loaded machine.
    let slowest = 2 * ACQUIRE_TIMEOUT + Duration::from_secs(2);
    database_outage_checked(
        &sent,
        &ready,
        &outages,
        slowest,
        "PostgreSQL cut (2 s, 8 s)",
    );
    for read in &reads {
        let status = read
            .as_ref()
            .expect_err("reads are refused while PostgreSQL is cut");
        assert_retryable(status, "DEPENDENCY_UNAVAILABLE", "a read");
    }
    loaded.nothing_lost(&sent).await;
}

#[tokio::test]
async fn nats_cut_under_send_load_delays_consumers_and_loses_nothing() {
    let Some(nats) = url(Server::Nats) else {
        return;
    };
    let (proxy, proxied) = TcpProxy::in_front_of(&nats).await;
    let Some(mut loaded) = loaded(|config| config.bus_url = proxied.clone()).await else {
        return;
    };
    cut_twice(&proxy).await;
    let sent = loaded.finish(Duration::from_secs(3)).await;
    loaded
        .bus_outage_survived(&sent, "NATS cut twice (2 s, 8 s)")
        .await;
}

#[tokio::test]
async fn redis_cut_under_send_load_refuses_with_retry_info_and_loses_nothing() {
    let Some(redis) = url(Server::Redis) else {
        return;
    };
    let (proxy, proxied) = TcpProxy::in_front_of(&redis).await;
    let Some(mut loaded) = loaded(|config| config.cache_url = proxied.clone()).await else {
        return;
    };
    let ends = cut_twice(&proxy).await;
    let sent = loaded.finish(Duration::from_secs(7)).await;
    let all: Vec<&Sent> = sent.iter().flatten().collect();
    // Rate limits fail open and revocations are followed locally, so sends go on; once the
    // revocation feed has been away for 5 s, token checks fail closed: UNAVAILABLE with
    // RetryInfo, never anything else.
    let refused: Vec<&Sent> = all.iter().copied().filter(|s| s.answer.is_err()).collect();
    for send in &refused {
        let status = send.answer.as_ref().unwrap_err();
        assert_retryable(status, "DEPENDENCY_UNAVAILABLE", &send.key);
    }
    for end in &ends {
        back_within_5s(&all, *end, "Redis");
    }
    eprintln!(
        "Redis cut twice (2 s, 8 s): {} sends, {} refused",
        all.len(),
        refused.len()
    );
    loaded.nothing_lost(&sent).await;
}
