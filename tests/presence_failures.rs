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

/// `echo --target presence` as a child process on `port`, sharing `mesh`'s backends and
/// verifying tokens with the keys it fetches from the mesh's auth.
fn presence_process(mesh: &echo_testkit::TestMesh, port: u16) -> tokio::process::Child {
    let config = &mesh.config;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_echo"));
    let quiet = || {
        if std::env::var("TEST_LOG").is_ok() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        }
    };
    command
        .args(["--target", "presence"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--admin-listen",
            &format!("127.0.0.1:{}", echo_testenv::free_port()),
        ])
        .args([
            "--internal-listen",
            &format!("127.0.0.1:{}", echo_testenv::free_port()),
        ])
        .args(["--data-dir", &config.data_dir.display().to_string()])
        // Production mode holds no signing key outside auth: the child takes the public keys
        // from the mesh's GetSigningKeys, so tokens verify on both.
        .env("ECHO_UPSTREAMS__AUTH", format!("http://{}", mesh.addr()))
        .env("ECHO_DATABASE_URL", config.database_url.clone().unwrap())
        .env(
            "ECHO_DATABASE_SCHEMA_PREFIX",
            &config.database_schema_prefix,
        )
        .env("ECHO_BUS_URL", &config.bus_url)
        .env("ECHO_BUS_SUBJECT_PREFIX", &config.bus_subject_prefix)
        .env("ECHO_CACHE_URL", &config.cache_url)
        .env("ECHO_CACHE_KEY_PREFIX", &config.cache_key_prefix)
        .env(
            "ECHO_SERVICE_SECRET",
            "kX9f2Lq8ZrT4vW1mN7bC3yH6pJ0sD5gE8aQ2uR4tY7iO",
        )
        .env("ECHO_PRESENCE__HEARTBEAT_INTERVAL", "1")
        .env("ECHO_PRESENCE__TTL", "3")
        .env("ECHO_PRESENCE__SWEEP_EVERY", "0.2")
        .env("ECHO_LOG_FORMAT", "text")
        .stdout(quiet())
        .stderr(quiet())
        .kill_on_drop(true);
    command.spawn().expect("start echo --target presence")
}

#[tokio::test]
async fn a_killed_instances_devices_go_offline_within_ttl_on_the_others() {
    let Some(mesh) = mesh(Backend::Real).await else {
        return;
    };
    let (ada, bob) = pair(&mesh).await;
    let port = echo_testenv::free_port();
    let mut child = presence_process(&mesh, port);
    // Bob's phone talks to the child instance only.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy();
    let token: tonic::metadata::MetadataValue<_> = format!("Bearer {}", bob.tokens.access_token)
        .parse()
        .unwrap();
    let mut on_child = pb::presence_service_client::PresenceServiceClient::with_interceptor(
        channel,
        move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
            Ok(request)
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let beat = pb::HeartbeatRequest {
            status: S::Online as i32,
        };
        match on_child.heartbeat(beat).await {
            Ok(_) => break,
            Err(status) => {
                if let Some(exit) = child.try_wait().unwrap() {
                    panic!("echo --target presence exited: {exit}");
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the child never served: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut stream = watch(&mesh, &ada, &[&bob]).await;
    let first = next_presence(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(
        status(&first),
        S::Online,
        "the child's heartbeat is seen here"
    );

    // One more refresh, then SIGKILL: nothing of the child runs its shutdown.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    on_child
        .heartbeat(pb::HeartbeatRequest {
            status: S::Online as i32,
        })
        .await
        .expect("last heartbeat");
    let last_refresh = tokio::time::Instant::now();
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("reaped");

    let offline = next_presence(&mut stream, Duration::from_secs(10)).await;
    let after = last_refresh.elapsed();
    assert_eq!(status(&offline), S::Offline);
    assert!(
        after <= Duration::from_secs(4),
        "OFFLINE {after:?} after the last refresh; TTL 3 s + 1 s at most"
    );
    mesh.shutdown().await;
}

#[tokio::test]
async fn presence_runs_alone_behind_the_edge() {
    let port = echo_testenv::free_port();
    let Some(edge) = echo_testkit::TestMesh::start_with(
        Backend::Real,
        "auth,user,message,notification,edge",
        |config| {
            config.upstreams.presence = Some(format!("http://127.0.0.1:{port}"));
            config.presence.heartbeat_interval = Duration::from_secs(1);
            config.presence.ttl = Duration::from_secs(3);
        },
    )
    .await
    else {
        return;
    };
    assert!(
        edge.mesh.presence.is_none(),
        "presence does not run in the edge's process"
    );
    let _child = presence_process(&edge, port);
    // Every call below goes through the edge, which forwards it to the child.
    let ada = common::users::known_user(&edge).await;
    let bob = common::users::known_user(&edge).await;
    common::users::add_contact(&edge, &bob, &ada, "ada").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ids = vec![bob.tokens.user_id.clone()];
        match edge
            .presence_as(&ada)
            .get_presence(pb::GetPresenceRequest { user_ids: ids })
            .await
        {
            Ok(reply) if !reply.get_ref().presences[0].restricted => break,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "presence never answered through the edge: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut stream = watch(&edge, &ada, &[&bob]).await;
    assert_eq!(
        status(&next_presence(&mut stream, Duration::from_secs(5)).await),
        S::Offline
    );
    heartbeat(&edge, &bob, S::Online).await;
    let online = next_presence(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(
        status(&online),
        S::Online,
        "a watch streams through the edge"
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn watchers_converge_once_nats_returns() {
    let Some(nats) = url(Server::Nats) else {
        return;
    };
    let (proxy, proxied) = TcpProxy::in_front_of(&nats).await;
    let Some(mesh) = mesh_with(Backend::Real, |config| {
        config.bus_url = proxied.clone();
        // Only the reconnect can heal within this test, not the periodic reconcile.
        config.presence.reconcile_every = Duration::from_secs(600);
    })
    .await
    else {
        return;
    };
    let (ada, bob) = pair(&mesh).await;
    let mut stream = watch(&mesh, &ada, &[&bob]).await;
    assert_eq!(
        status(&next_presence(&mut stream, Duration::from_secs(5)).await),
        S::Offline
    );

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The change lands in Redis, but its hint cannot travel.
    heartbeat(&mesh, &bob, S::Online).await;
    let alive = keep_alive(&mesh, &bob);
    proxy.restore();
    let healed = next_presence(&mut stream, Duration::from_secs(15)).await;
    assert_eq!(
        status(&healed),
        S::Online,
        "the reconnect's reconcile healed the lost hint"
    );
    alive.abort();
    mesh.shutdown().await;
}
