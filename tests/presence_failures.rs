//! Presence when its dependencies fail (spec §A6), on the real backends: Redis cut by a TCP
//! proxy the test owns answers UNAVAILABLE with RetryInfo while open watches stay up, and
//! when it returns nothing expires for one TTL (no mass OFFLINE).

use std::time::Duration;

use echo_proto::echo::presence::v1 as pb;
use echo_testenv::{Server, TcpProxy, url};
use echo_testkit::Backend;
use tonic::Code;
use tonic_types::StatusExt as _;

mod common;
#[allow(dead_code)] // shared with tests/presence.rs, which uses the rest
#[path = "presence/helpers.rs"]
mod helpers;

use common::reason;
use helpers::*;

#[tokio::test]
async fn a_redis_outage_answers_unavailable_and_expires_nobody_on_return() {
    let Some(redis) = url(Server::Redis) else {
        return;
    };
    let (proxy, proxied) = TcpProxy::in_front_of(&redis).await;
    let Some(mesh) = mesh_with(Backend::Real, |config| {
        config.cache_url = proxied.clone();
        config.presence.watch_heartbeat = Duration::from_millis(500);
    })
    .await
    else {
        return;
    };
    let (ada, bob) = pair(&mesh).await;
    heartbeat(&mesh, &bob, S::Online).await;
    // Bob's app keeps heartbeating every second throughout, as a real client would.
    let alive = keep_alive(&mesh, &bob);
    let mut stream = watch(&mesh, &ada, &[&bob]).await;
    assert_eq!(
        status(&next_presence(&mut stream, Duration::from_secs(5)).await),
        S::Online
    );

    proxy.cut();
    // Longer than the TTL (3 s): every entry looks expired when Redis returns.
    let outage = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut refused = None;
    while tokio::time::Instant::now() < outage {
        let attempt = mesh
            .presence_as(&bob)
            .get_presence(pb::GetPresenceRequest {
                user_ids: vec![bob.tokens.user_id.clone()],
            })
            .await;
        if let Err(status) = attempt {
            refused = Some(status);
        }
        // The open watch stays up: only heartbeats (and no OFFLINE) meanwhile.
        match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
            Ok(Ok(Some(item))) => {
                if let Some(pb::watch_presence_response::Event::Presence(p)) = item.event {
                    panic!("no presence change during the outage: {p:?}");
                }
            }
            Ok(other) => panic!("the watch ended during the outage: {other:?}"),
            Err(_) => {}
        }
    }
    let refused = refused.expect("calls were refused while Redis was cut");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(reason(&refused), "DEPENDENCY_UNAVAILABLE");
    assert!(
        refused.get_error_details().retry_info().is_some(),
        "RetryInfo"
    );

    proxy.restore();
    // For a TTL after the return nothing expires: bob's next heartbeat lands first.
    let quiet = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < quiet {
        match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
            Ok(Ok(Some(item))) => {
                if let Some(pb::watch_presence_response::Event::Presence(p)) = item.event {
                    assert_ne!(status(&p), S::Offline, "no mass OFFLINE after the outage");
                }
            }
            Ok(other) => panic!("the watch ended after the outage: {other:?}"),
            Err(_) => {}
        }
    }
    eventually(
        &mesh,
        &ada,
        &bob,
        |p| status(p) == S::Online,
        "online after the outage",
    )
    .await;
    alive.abort();
    mesh.shutdown().await;
}
