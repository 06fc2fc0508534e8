//! WatchPresence: snapshot then changes, damping, heartbeats, the per-user stream cap,
//! revocation, RESUME, a dropped hint healed by the reconcile, Subscribe streams keeping a
//! device present, and a change seen across two instances.
//!
//! One piece: every test here reads one WatchPresence stream through the same helpers
//! (`next_presence`, `next_heartbeat`) and judges it by the same rule, the snapshot first and
//! then each change once, in order; split by topic, a second reader of the stream would grow
//! beside the first.

use std::time::Duration;

use echo_proto::echo::message::v1 as message;
use echo_proto::echo::presence::v1 as pb;
use echo_testkit::Backend;
use tonic::Code;
use uuid::Uuid;

use crate::common::assert_reason;
use crate::helpers::*;

#[tokio::test]
async fn a_watch_sends_the_snapshot_then_each_change() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh(backend).await else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        let stranger = mesh.sign_up().await;
        let mut stream = watch(&mesh, &ada, &[&bob, &stranger, &ada]).await;
        let mut snapshot = Vec::new();
        for _ in 0..3 {
            snapshot.push(next_presence(&mut stream, Duration::from_secs(5)).await);
        }
        snapshot.sort_by_key(|p| p.user_id.clone());
        let by_id = |user: &echo_testkit::SignedIn| {
            snapshot
                .iter()
                .find(|p| p.user_id == user.tokens.user_id)
                .cloned()
                .unwrap()
        };
        assert_eq!(status(&by_id(&bob)), S::Offline, "{backend:?}");
        assert!(by_id(&stranger).restricted);
        assert!(!by_id(&ada).restricted, "self");

        heartbeat(&mesh, &bob, S::Online).await;
        let online = next_presence(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(
            (online.user_id.as_str(), status(&online)),
            (bob.tokens.user_id.as_str(), S::Online)
        );
        // The stranger's changes are not this watcher's to see: nothing goes out for them.
        heartbeat(&mesh, &stranger, S::Online).await;
        tokio::time::sleep(Duration::from_millis(2100)).await; // past the damping window
        heartbeat(&mesh, &bob, S::Away).await;
        let away = next_presence(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(
            (away.user_id.as_str(), status(&away)),
            (bob.tokens.user_id.as_str(), S::Away),
            "{backend:?}: the stranger's change never reached this watcher"
        );
        // No more heartbeats: OFFLINE after the TTL, with last_seen.
        let gone = next_presence(&mut stream, Duration::from_secs(6)).await;
        assert_eq!(status(&gone), S::Offline, "{backend:?}");
        assert!(gone.last_seen.is_some());
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn online_away_flaps_are_damped_latest_wins() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh_with(backend, |c| c.presence.damping = Duration::from_secs(3)).await
        else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        heartbeat(&mesh, &bob, S::Online).await;
        let alive = keep_alive(&mesh, &bob);
        let mut stream = watch(&mesh, &ada, &[&bob]).await;
        assert_eq!(
            status(&next_presence(&mut stream, Duration::from_secs(5)).await),
            S::Online
        );
        // Flips within the window: AWAY goes out at once (the window was clear); ONLINE, AWAY,
        // ONLINE are held and only the latest (ONLINE) goes out when the window ends.
        let started = tokio::time::Instant::now();
        set_status(&mesh, &bob, S::Away).await;
        let first = next_presence(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(status(&first), S::Away);
        set_status(&mesh, &bob, S::Online).await;
        set_status(&mesh, &bob, S::Away).await;
        set_status(&mesh, &bob, S::Online).await;
        let latest = next_presence(&mut stream, Duration::from_secs(6)).await;
        assert_eq!(
            status(&latest),
            S::Online,
            "{backend:?}: the latest wins, nothing between"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(2900),
            "{backend:?}: held for the window ({:?})",
            started.elapsed()
        );
        // Changes to or from OFFLINE are never held.
        set_status(&mesh, &bob, S::Invisible).await;
        let hidden = next_presence(&mut stream, Duration::from_millis(900)).await;
        assert_eq!(status(&hidden), S::Offline);
        alive.abort();
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn idle_watches_get_heartbeats() {
    const EVERY: Duration = Duration::from_millis(600);
    let Some(mesh) = mesh_with(Backend::Embedded, |c| {
        c.presence.watch_heartbeat = EVERY;
    })
    .await
    else {
        return;
    };
    let (ada, bob) = pair(&mesh).await;
    let mut stream = watch(&mesh, &ada, &[&bob]).await;
    next_presence(&mut stream, Duration::from_secs(5)).await;
    let beat = next_heartbeat(&mut stream).await;
    assert!(beat.server_time.is_some());
    assert_eq!(beat.interval.unwrap().nanos, 600_000_000);

    // A heartbeat comes a whole interval after the stream's last item, not on a fixed beat:
    // a change half-way through the interval pushes the next heartbeat back.
    tokio::time::sleep(EVERY / 2).await;
    let sent = std::time::SystemTime::now();
    heartbeat(&mesh, &bob, S::Online).await;
    next_presence(&mut stream, Duration::from_secs(5)).await; // heartbeats before it skipped
    let beat = next_heartbeat(&mut stream).await;
    let at = std::time::SystemTime::try_from(beat.server_time.unwrap()).unwrap();
    // The change's item was made after `sent`, and the heartbeat at least EVERY after it.
    assert!(
        at.duration_since(sent).unwrap_or_default() >= EVERY - Duration::from_millis(2),
        "a heartbeat {:?} after the change was sent (interval {EVERY:?})",
        at.duration_since(sent)
    );
    mesh.shutdown().await;
}

/// The next item of `stream`, which must be a heartbeat.
async fn next_heartbeat(
    stream: &mut tonic::Streaming<pb::WatchPresenceResponse>,
) -> pb::StreamHeartbeat {
    let item = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an item in time")
        .expect("the stream stays up")
        .expect("the stream stays open");
    let Some(pb::watch_presence_response::Event::Heartbeat(beat)) = item.event else {
        panic!("expected a heartbeat, got {item:?}");
    };
    beat
}

#[tokio::test]
async fn watch_streams_are_capped_per_user() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh_with(backend, |c| c.presence.max_watch_streams = 3).await else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(watch(&mesh, &ada, &[&bob]).await);
        }
        let refused = mesh
            .presence_as(&ada)
            .watch_presence(pb::WatchPresenceRequest {
                user_ids: vec![bob.tokens.user_id.clone()],
            })
            .await
            .unwrap_err();
        assert_reason(&refused, Code::ResourceExhausted, "LIMIT_EXCEEDED");
        // Another user has their own slots.
        watch(&mesh, &bob, &[&ada]).await;
        // Closing one frees its slot (released asynchronously: poll).
        drop(open.pop());
        let mut reopened = None;
        for _ in 0..100 {
            let attempt = mesh
                .presence_as(&ada)
                .watch_presence(pb::WatchPresenceRequest {
                    user_ids: vec![bob.tokens.user_id.clone()],
                })
                .await;
            if let Ok(stream) = attempt {
                reopened = Some(stream);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            reopened.is_some(),
            "{backend:?}: a closed stream frees its slot"
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn a_revoked_session_ends_its_watch_within_a_second() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh(backend).await else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        heartbeat(&mesh, &ada, S::Online).await;
        let mut stream = watch(&mesh, &ada, &[&bob]).await;
        next_presence(&mut stream, Duration::from_secs(5)).await;
        mesh.auth_as(&ada)
            .logout(echo_proto::echo::auth::v1::LogoutRequest::default())
            .await
            .expect("logout");
        let ended = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                match stream.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("ended without a status"),
                    Err(status) => return status,
                }
            }
        })
        .await
        .expect("ended within a second");
        assert_reason(&ended, Code::Unauthenticated, "SESSION_REVOKED");
        // ... and the revoked device no longer keeps ada online.
        eventually(
            &mesh,
            &bob,
            &ada,
            |p| status(p) != S::Online,
            "ada's device gone",
        )
        .await;
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn a_subscribe_stream_alone_keeps_its_device_online() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh(backend).await else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        let mut live = mesh
            .message_as(&bob)
            .subscribe(message::SubscribeRequest::default())
            .await
            .expect("subscribe")
            .into_inner();
        let reader = tokio::spawn(async move { while let Ok(Some(_)) = live.message().await {} });
        eventually(
            &mesh,
            &ada,
            &bob,
            |p| status(p) == S::Online,
            "online by stream",
        )
        .await;
        // Several TTLs (3 s each) with no heartbeat: still online.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(
                status(&one(&mesh, &ada, &bob).await),
                S::Online,
                "{backend:?}: the open stream keeps bob online"
            );
        }
        // Closing the stream lets the entry expire soon after (stream_closed_ttl 1 s).
        reader.abort();
        eventually(
            &mesh,
            &ada,
            &bob,
            |p| status(p) == S::Offline,
            "offline after close",
        )
        .await;
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn a_dropped_hint_is_healed_by_the_reconcile() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh_with(backend, |c| {
            c.presence.reconcile_every = Duration::from_secs(1);
        })
        .await
        else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        let mut stream = watch(&mesh, &ada, &[&bob]).await;
        assert_eq!(
            status(&next_presence(&mut stream, Duration::from_secs(5)).await),
            S::Offline
        );
        // Write bob's state behind the service's back: no hint is published.
        let tracker = mesh
            .mesh
            .presence
            .as_ref()
            .expect("presence runs")
            .tracker();
        let bob_id = Uuid::parse_str(&bob.tokens.user_id).unwrap();
        let device = Uuid::parse_str(&bob.tokens.device_id).unwrap();
        let now = chrono::Utc::now();
        tracker
            .state
            .seed(bob_id.into(), None, None, now)
            .await
            .expect("seed");
        tracker
            .state
            .refresh(
                bob_id.into(),
                device.into(),
                None,
                Duration::from_secs(30),
                now,
            )
            .await
            .expect("a silent write");
        let healed = next_presence(&mut stream, Duration::from_secs(3)).await;
        assert_eq!(
            status(&healed),
            S::Online,
            "{backend:?}: healed by the reconcile"
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn a_change_on_one_instance_reaches_watchers_on_another() {
    let Some(first) = mesh(Backend::Real).await else {
        return;
    };
    let second = first.start_sibling().await;
    let (ada, bob) = pair(&first).await;
    let mut stream = watch(&second, &ada, &[&bob]).await;
    assert_eq!(
        status(&next_presence(&mut stream, Duration::from_secs(5)).await),
        S::Offline
    );
    heartbeat(&first, &bob, S::Online).await;
    let seen = next_presence(&mut stream, Duration::from_secs(2)).await;
    assert_eq!(status(&seen), S::Online, "a hint crossed the instances");
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test]
async fn a_replaced_subscribe_stream_does_not_cut_its_successor_short() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh_with(backend, |c| {
            c.presence.ttl = Duration::from_secs(6);
            c.presence.stream_closed_ttl = Duration::from_secs(1);
            c.live.streams_alive_every = Duration::from_secs(60);
        })
        .await
        else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        let subscribe = || async {
            mesh.message_as(&bob)
                .subscribe(message::SubscribeRequest::default())
                .await
                .expect("subscribe")
                .into_inner()
        };
        let mut first = subscribe().await;
        eventually(
            &mesh,
            &ada,
            &bob,
            |p| status(p) == S::Online,
            "online by stream",
        )
        .await;
        // The same device opens a new stream: the first ends (STREAM_REPLACED), and its
        // stream_closed may arrive after the new one's stream_opened.
        let _second = subscribe().await;
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = first.message().await {}
        })
        .await;
        assert!(ended.is_ok(), "the first stream was replaced");
        // Past the closed stream's grace (1 s), well within the TTL (6 s): still online.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            status(&one(&mesh, &ada, &bob).await),
            S::Online,
            "{backend:?}: the open successor keeps the device present"
        );
        mesh.shutdown().await;
    }
}
