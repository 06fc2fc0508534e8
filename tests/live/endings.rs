//! How a stream stays alive and how it ends: heartbeats when idle, STREAM_REPLACED when the
//! same device opens another, SESSION_REVOKED within a second of logout or revocation, and
//! SHUTTING_DOWN within the drain deadline.

use std::time::Duration;

use echo_proto::echo::auth::v1 as auth;
use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, TestMesh};
use pb::subscribe_response::Item;
use tonic::Code;

use crate::common::assert_reason;
use crate::common::live::*;
use crate::common::messages::send;
use crate::common::users::known_user;

#[tokio::test]
async fn an_idle_stream_gets_heartbeats() {
    const INTERVAL: Duration = Duration::from_secs(1);
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start_with(backend, "all", |config| {
            config.live.heartbeat_interval = INTERVAL;
        })
        .await
        else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let mut stream = subscribe_ready(&mesh, &ada).await;
        let mut beats = Vec::new();
        for _ in 0..2 {
            let item = stream.item(INTERVAL * 3).await;
            let Some(Item::Heartbeat(beat)) = &item.item else {
                panic!(
                    "{backend:?}: an idle stream gets heartbeats, got {}",
                    describe(&item)
                );
            };
            assert!(item.cursor.is_empty(), "heartbeats are ephemeral");
            let interval = beat.interval.as_ref().expect("interval");
            assert_eq!((interval.seconds, interval.nanos), (1, 0));
            let server_time = beat.server_time.as_ref().expect("server_time");
            let now = chrono::Utc::now().timestamp();
            assert!((server_time.seconds - now).abs() <= 5, "{server_time:?}");
            beats.push(tokio::time::Instant::now());
        }
        let gap = beats[1] - beats[0];
        assert!(
            gap >= INTERVAL / 2,
            "{backend:?}: heartbeats only when idle for the interval, not every {gap:?}"
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn a_second_stream_of_the_same_device_replaces_the_first() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let ada_phone = other_device(&mesh, &ada).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let mut old = subscribe_ready(&mesh, &ada).await;
        let mut phone = subscribe_ready(&mesh, &ada_phone).await;
        let mut new = subscribe_ready(&mesh, &ada).await;
        let ended = old.ended(WAIT).await;
        assert_reason(&ended, Code::FailedPrecondition, "STREAM_REPLACED");

        // The new stream and the other device's carry on.
        let message = send(&mesh, &bob, &chat, "still there?").await;
        new.event_at(&chat.conversation_id, message.seq, WAIT).await;
        phone
            .event_at(&chat.conversation_id, message.seq, WAIT)
            .await;
        mesh.shutdown().await;
    }
}

/// The stream's end status, and how long after `since` it came.
async fn end_after(
    stream: &mut LiveStream,
    since: tokio::time::Instant,
) -> (tonic::Status, Duration) {
    let status = stream.ended(WAIT).await;
    (status, since.elapsed())
}

#[tokio::test]
async fn revoked_sessions_lose_their_streams_within_a_second() {
    // The contract says within 1 s; allow a little for the test's own scheduling.
    const LIMIT: Duration = Duration::from_millis(1300);
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let ada_phone = other_device(&mesh, &ada).await;
        let ada_tablet = other_device(&mesh, &ada).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let mut laptop = subscribe_ready(&mesh, &ada).await;
        let mut phone = subscribe_ready(&mesh, &ada_phone).await;
        let mut tablet = subscribe_ready(&mesh, &ada_tablet).await;

        // Logout on the phone ends the phone's stream.
        let since = tokio::time::Instant::now();
        mesh.auth_as(&ada_phone)
            .logout(auth::LogoutRequest {})
            .await
            .expect("logout");
        let (status, took) = end_after(&mut phone, since).await;
        assert_reason(&status, Code::Unauthenticated, "SESSION_REVOKED");
        assert!(
            took < LIMIT,
            "{backend:?}: logout ended the stream after {took:?}"
        );

        // Revoking the tablet's session from the laptop ends the tablet's.
        let since = tokio::time::Instant::now();
        mesh.auth_as(&ada)
            .revoke_session(auth::RevokeSessionRequest {
                session_id: ada_tablet.tokens.session_id.clone(),
            })
            .await
            .expect("revoke");
        let (status, took) = end_after(&mut tablet, since).await;
        assert_reason(&status, Code::Unauthenticated, "SESSION_REVOKED");
        assert!(
            took < LIMIT,
            "{backend:?}: revocation ended the stream after {took:?}"
        );

        // The laptop's session is untouched.
        let message = send(&mesh, &bob, &chat, "you are still here").await;
        laptop
            .event_at(&chat.conversation_id, message.seq, WAIT)
            .await;
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn shutdown_ends_streams_resumably_within_the_grace() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let grace = mesh.config.shutdown_grace;
        let mut stream = subscribe_ready(&mesh, &ada).await;
        let since = tokio::time::Instant::now();
        let stopping = tokio::spawn(mesh.shutdown());
        let (status, took) = end_after(&mut stream, since).await;
        assert_reason(&status, Code::Unavailable, "SHUTTING_DOWN");
        assert!(
            took <= grace,
            "{backend:?}: ended after {took:?}, grace {grace:?}"
        );
        tokio::time::timeout(grace * 2, stopping)
            .await
            .expect("the mesh stops within its grace")
            .expect("shutdown task");
    }
}
