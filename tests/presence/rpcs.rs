//! Heartbeat, SetStatus and GetPresence: the aggregation rules over devices and manual
//! statuses, `last_seen`, expiry, the rate limit, and every bad field.

use std::time::{Duration, SystemTime};

use echo_proto::echo::presence::v1 as pb;
use echo_testkit::Backend;
use tonic::Code;

use crate::common::{assert_reason, second_device, violated_fields};
use crate::helpers::*;

fn seconds(at: &prost_types::Timestamp) -> i64 {
    at.seconds
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn devices_and_manual_status_aggregate_as_the_proto_says() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh(backend).await else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        let never = one(&mesh, &ada, &bob).await;
        assert_eq!(
            (status(&never), never.last_seen),
            (S::Offline, None),
            "{backend:?}: never seen"
        );

        let answer = heartbeat(&mesh, &bob, S::Unspecified).await;
        assert_eq!(answer.next_heartbeat_in.unwrap().seconds, 1);
        assert_eq!(answer.ttl.unwrap().seconds, 3);
        let online = one(&mesh, &ada, &bob).await;
        assert_eq!((status(&online), online.last_seen), (S::Online, None));

        // A second device reporting AWAY: still ONLINE while one is ONLINE.
        let phone = second_device(&mesh, &bob).await;
        heartbeat(&mesh, &phone, S::Away).await;
        assert_eq!(status(&one(&mesh, &ada, &bob).await), S::Online);

        // Manual statuses override the devices; ONLINE clears.
        for (manual, seen) in [
            (S::Dnd, S::Dnd),
            (S::Away, S::Away),
            (S::Invisible, S::Offline),
            (S::Online, S::Online),
        ] {
            let answer = set_status(&mesh, &bob, manual).await;
            assert_eq!(
                status(&answer.presence.unwrap()),
                seen,
                "{backend:?}: SetStatus {manual:?} answers what others see"
            );
            assert_eq!(status(&one(&mesh, &ada, &bob).await), seen, "{manual:?}");
        }

        // clear_after: the status ends itself; the answer says when.
        let timed = mesh
            .presence_as(&bob)
            .set_status(pb::SetStatusRequest {
                status: S::Dnd as i32,
                clear_after: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
            })
            .await
            .unwrap()
            .into_inner();
        let clears = seconds(&timed.clears_at.unwrap()) - now_seconds();
        assert!((3595..=3601).contains(&clears), "clears in {clears} s");
        set_status(&mesh, &bob, S::Online).await;

        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn last_seen_is_the_last_refresh_and_freezes_while_invisible() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh(backend).await else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        heartbeat(&mesh, &bob, S::Online).await;
        let refreshed = now_seconds();
        // No more heartbeats: OFFLINE within TTL (3 s) + the sweep, with last_seen = the
        // last refresh, not the expiry.
        let gone = eventually(&mesh, &ada, &bob, |p| status(p) == S::Offline, "offline").await;
        let last_seen = seconds(gone.last_seen.as_ref().expect("last_seen when offline"));
        assert!(
            (refreshed - 1..=refreshed + 1).contains(&last_seen),
            "{backend:?}: last_seen {last_seen}, last refresh {refreshed}"
        );

        // Invisible: online to nobody, and heartbeats no longer move last_seen.
        set_status(&mesh, &bob, S::Invisible).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        heartbeat(&mesh, &bob, S::Online).await;
        let hidden = one(&mesh, &ada, &bob).await;
        assert_eq!(status(&hidden), S::Offline);
        assert_eq!(
            seconds(hidden.last_seen.as_ref().unwrap()),
            last_seen,
            "{backend:?}: frozen while invisible"
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn heartbeats_are_rate_limited_per_device() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh(backend).await else {
            continue;
        };
        let (_, bob) = pair(&mesh).await;
        let mut client = mesh.presence_as(&bob);
        let beat = || pb::HeartbeatRequest {
            status: S::Online as i32,
        };
        // A burst of two passes (a retry after a lost response), the third is refused.
        client.heartbeat(beat()).await.expect("first");
        client.heartbeat(beat()).await.expect("a retry");
        let refused = client.heartbeat(beat()).await.unwrap_err();
        assert_reason(&refused, Code::ResourceExhausted, "RATE_LIMITED");
        let retry = tonic_types::StatusExt::get_error_details(&refused)
            .retry_info()
            .and_then(|r| r.retry_delay)
            .expect("RetryInfo");
        assert!(retry <= Duration::from_secs(1), "{retry:?}");
        tokio::time::sleep(retry).await;
        client.heartbeat(beat()).await.expect("after the wait");
        // Another device has its own bucket.
        let other = second_device(&mesh, &bob).await;
        mesh.presence_as(&other)
            .heartbeat(beat())
            .await
            .expect("own bucket");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn bad_fields_are_named() {
    let Some(mesh) = mesh(Backend::Embedded).await else {
        return;
    };
    let ada = mesh.sign_up().await;
    let mut client = mesh.presence_as(&ada);
    for bad in [S::Dnd, S::Invisible, S::Offline] {
        let status = client
            .heartbeat(pb::HeartbeatRequest { status: bad as i32 })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["status"], "heartbeat {bad:?}");
    }
    let status = client
        .heartbeat(pb::HeartbeatRequest { status: 42 })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["status"], "unknown enum value");

    let set = |status: i32, seconds: Option<i64>| pb::SetStatusRequest {
        status,
        clear_after: seconds.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
    };
    for (request, fields) in [
        (set(S::Offline as i32, None), vec!["status"]),
        (set(S::Unspecified as i32, None), vec!["status"]),
        (set(S::Dnd as i32, Some(59)), vec!["clear_after"]),
        (
            set(S::Dnd as i32, Some(7 * 24 * 3600 + 1)),
            vec!["clear_after"],
        ),
        (set(S::Dnd as i32, Some(-60)), vec!["clear_after"]),
        (set(S::Online as i32, Some(600)), vec!["clear_after"]),
        (
            set(S::Offline as i32, Some(1)),
            vec!["status", "clear_after"],
        ),
    ] {
        let status = client.set_status(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
        assert_eq!(violated_fields(&status), fields, "{request:?}");
    }

    let ids = |n: usize| {
        (0..n)
            .map(|_| ada.tokens.user_id.clone())
            .collect::<Vec<_>>()
    };
    let get = |user_ids| pb::GetPresenceRequest { user_ids };
    for (request, fields) in [
        (get(vec![]), vec!["user_ids"]),
        (get(ids(101)), vec!["user_ids"]),
        (
            get(vec![
                ada.tokens.user_id.clone(),
                "nope".into(),
                String::new(),
            ]),
            vec!["user_ids[1]", "user_ids[2]"],
        ),
    ] {
        let status = client.get_presence(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), fields);
    }
    // 100 copies of one id are one distinct id: one entry.
    let one_entry = client
        .get_presence(get(ids(100)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one_entry.presences.len(), 1);

    let watch = |user_ids| pb::WatchPresenceRequest { user_ids };
    for (request, fields) in [
        (watch(vec![]), vec!["user_ids"]),
        (watch(ids(501)), vec!["user_ids"]),
        (watch(vec!["x".into()]), vec!["user_ids[0]"]),
    ] {
        let status = client.watch_presence(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), fields);
    }
    mesh.shutdown().await;
}

#[tokio::test]
async fn every_rpc_needs_a_token() {
    let Some(mesh) = mesh(Backend::Embedded).await else {
        return;
    };
    let mut client = pb::presence_service_client::PresenceServiceClient::new(mesh.channel());
    let refused = [
        client
            .heartbeat(pb::HeartbeatRequest::default())
            .await
            .unwrap_err(),
        client
            .set_status(pb::SetStatusRequest::default())
            .await
            .unwrap_err(),
        client
            .get_presence(pb::GetPresenceRequest::default())
            .await
            .unwrap_err(),
        client
            .watch_presence(pb::WatchPresenceRequest::default())
            .await
            .unwrap_err(),
    ];
    for status in refused {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    mesh.shutdown().await;
}

#[tokio::test]
async fn a_flushed_state_store_never_turns_invisible_into_online_nor_loses_dnd() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh(backend).await else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        let tracker = mesh
            .mesh
            .presence
            .as_ref()
            .expect("presence runs")
            .tracker();
        let bob_id = uuid::Uuid::parse_str(&bob.tokens.user_id).unwrap();
        for (manual, seen) in [(S::Invisible, S::Offline), (S::Dnd, S::Dnd)] {
            set_status(&mesh, &bob, manual).await;
            heartbeat(&mesh, &bob, S::Online).await;
            assert_eq!(status(&one(&mesh, &ada, &bob).await), seen);
            // Redis flushed (or the embedded process restarted): the user's whole state goes.
            tracker.state.forget(bob_id.into()).await.expect("flush");
            tokio::time::sleep(Duration::from_millis(1000)).await; // the heartbeat bucket
            heartbeat(&mesh, &bob, S::Online).await;
            assert_eq!(
                status(&one(&mesh, &ada, &bob).await),
                seen,
                "{backend:?}: {manual:?} survives the flush (reloaded from the database)"
            );
        }
        mesh.shutdown().await;
    }
}

/// Logging out ends the device's presence at once (auth's SessionRevoked event), not when its
/// entry would have expired: here the TTL is 30 s and the user is OFFLINE within seconds.
#[tokio::test]
async fn logging_out_ends_the_devices_presence_at_once() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh_with(backend, |config| {
            config.presence.ttl = Duration::from_secs(30);
        })
        .await
        else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        heartbeat(&mesh, &bob, S::Online).await;
        assert_eq!(status(&one(&mesh, &ada, &bob).await), S::Online);
        let started = std::time::Instant::now();
        mesh.auth_as(&bob)
            .logout(echo_proto::echo::auth::v1::LogoutRequest {})
            .await
            .expect("logout");
        eventually(&mesh, &ada, &bob, |p| status(p) == S::Offline, "offline").await;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{backend:?}: offline only after {:?}",
            started.elapsed()
        );
        mesh.shutdown().await;
    }
}
