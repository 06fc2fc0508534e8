//! Typing indicators: fanned out to the other members (never the typer's own devices),
//! lapsing by themselves after `typing_ttl`, cleared at once, throttled per device, refused to
//! those who may not post, and never stored.

use std::time::{Duration, SystemTime};

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, TestMesh};
use tonic::Code;

use crate::common::live::*;
use crate::common::messages::{direct, send};
use crate::common::users::{block, known_user};
use crate::common::{assert_reason, violated_fields};

/// Long enough to tell an expiry from an explicit stop, short enough to wait for.
const TTL: Duration = Duration::from_secs(3);

async fn start(backend: Backend) -> Option<TestMesh> {
    TestMesh::start_with(backend, "all", |config| config.live.typing_ttl = TTL).await
}

fn system_time(at: &prost_types::Timestamp) -> SystemTime {
    let nanos = u32::try_from(at.nanos).expect("nanos");
    let seconds = u64::try_from(at.seconds).expect("after 1970");
    SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos)
}

/// Asserts `at` is `ttl` after `set` give or take a second.
fn about_ttl_after(at: &prost_types::Timestamp, set: SystemTime) {
    let at = system_time(at);
    let low = set + TTL - Duration::from_secs(1);
    let high = set + TTL + Duration::from_secs(1);
    assert!(
        low <= at && at <= high,
        "expires_at {at:?} is not set + {TTL:?}"
    );
}

#[tokio::test]
async fn typing_reaches_the_others_and_lapses() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let ada_phone = other_device(&mesh, &ada).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let id = chat.conversation_id.clone();
        let mut bob_stream = subscribe_ready(&mesh, &bob).await;
        let mut ada_stream = subscribe_ready(&mesh, &ada).await;
        let mut phone_stream = subscribe_ready(&mesh, &ada_phone).await;

        let set_at = SystemTime::now();
        let started = tokio::time::Instant::now();
        let answer = set_typing(&mesh, &ada, &id, true).await.expect("typing");
        about_ttl_after(answer.expires_at.as_ref().expect("expires_at"), set_at);
        let item = bob_stream.until(WAIT, |r| typing(r).is_some()).await;
        assert!(item.cursor.is_empty(), "typing is ephemeral: no cursor");
        let update = typing(&item).expect("typing");
        assert_eq!(
            (
                update.conversation_id.as_str(),
                update.user_id.as_str(),
                update.typing
            ),
            (id.as_str(), ada.tokens.user_id.as_str(), true),
            "{backend:?}"
        );
        about_ttl_after(update.expires_at.as_ref().expect("expires_at"), set_at);

        // Not renewed: the server says it stopped, at the expiry.
        let stopped = bob_stream.until(WAIT, |r| typing(r).is_some()).await;
        let elapsed = started.elapsed();
        let stopped = typing(&stopped).expect("typing");
        assert!(!stopped.typing, "{backend:?}: {stopped:?}");
        assert_eq!(stopped.user_id, ada.tokens.user_id);
        assert!(
            elapsed >= TTL - Duration::from_millis(500) && elapsed <= TTL + Duration::from_secs(2),
            "{backend:?}: typing lapsed after {elapsed:?}, not about {TTL:?}"
        );

        // The typer's own devices got none of it (a message proves they were listening).
        let sentinel = send(&mesh, &bob, &chat, "sentinel").await;
        for stream in [&mut ada_stream, &mut phone_stream] {
            stream.event_at(&id, sentinel.seq, WAIT).await;
            stream.during(Duration::from_millis(200)).await;
            assert!(
                !stream.seen.iter().any(|r| typing(r).is_some()),
                "{backend:?}: the typer's own device got typing: {}",
                describe_all(&stream.seen)
            );
        }
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn typing_stops_at_once_and_renewals_are_throttled() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let first = group_of(&mesh, &ada, &[&bob]).await;
        let second = group_of(&mesh, &ada, &[&bob]).await;
        let mut bob_stream = subscribe_ready(&mesh, &bob).await;

        // Stopping clears it now, not at the expiry.
        set_typing(&mesh, &ada, &first.conversation_id, true)
            .await
            .expect("typing");
        bob_stream.until(WAIT, |r| typing(r).is_some()).await;
        let stopped_at = tokio::time::Instant::now();
        let answer = set_typing(&mesh, &ada, &first.conversation_id, false)
            .await
            .expect("stop typing");
        assert_eq!(answer.expires_at, None, "no expiry when typing is false");
        let stopped = bob_stream.until(WAIT, |r| typing(r).is_some()).await;
        assert!(!typing(&stopped).expect("typing").typing);
        assert!(
            stopped_at.elapsed() < Duration::from_secs(1),
            "{backend:?}: typing=false took {:?}",
            stopped_at.elapsed()
        );

        // Five calls in a burst all succeed; one is forwarded.
        let id = second.conversation_id.clone();
        let burst_at = tokio::time::Instant::now();
        for _ in 0..5 {
            set_typing(&mesh, &ada, &id, true)
                .await
                .expect("absorbed, not refused");
        }
        let burst = bob_stream.during(Duration::from_millis(1500)).await;
        let forwarded = burst
            .iter()
            .filter_map(typing)
            .filter(|t| t.conversation_id == id && t.typing)
            .count();
        assert_eq!(forwarded, 1, "{backend:?}: {}", describe_all(&burst));
        // Two seconds on, a renewal is forwarded again.
        tokio::time::sleep_until(burst_at + Duration::from_millis(2200)).await;
        set_typing(&mesh, &ada, &id, true).await.expect("renew");
        let renewed = bob_stream
            .until(WAIT, |r| typing(r).is_some_and(|t| t.conversation_id == id))
            .await;
        assert!(typing(&renewed).expect("typing").typing, "{renewed:?}");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn typing_is_refused_to_those_who_may_not_post_and_never_stored() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let eve = known_user(&mesh).await;
        let chat = group_of(&mesh, &ada, &[&bob]).await;
        let id = chat.conversation_id.clone();

        let stranger = set_typing(&mesh, &eve, &id, true).await.unwrap_err();
        assert_reason(&stranger, Code::NotFound, "CONVERSATION_NOT_FOUND");
        let unknown = uuid::Uuid::now_v7().to_string();
        let nowhere = set_typing(&mesh, &ada, &unknown, true).await.unwrap_err();
        assert_reason(&nowhere, Code::NotFound, "CONVERSATION_NOT_FOUND");
        let malformed = set_typing(&mesh, &ada, "nope", true).await.unwrap_err();
        assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
        assert_eq!(violated_fields(&malformed), ["conversation_id"]);

        let channel = conversation_of(&mesh, &ada, pb::ConversationType::Channel, &[&bob]).await;
        let reader = set_typing(&mesh, &bob, &channel.conversation_id, true)
            .await
            .unwrap_err();
        assert_reason(&reader, Code::PermissionDenied, "NOT_ALLOWED");
        set_typing(&mesh, &ada, &channel.conversation_id, true)
            .await
            .expect("the channel's owner may post, so may type");

        // A block reaches the message service through the bus; then typing is refused.
        let pair = direct(&mesh, &bob, &eve).await;
        block(&mesh, &eve, &bob).await;
        let blocked = eventually(WAIT, "the block applies", || async {
            set_typing(&mesh, &bob, &pair.conversation_id, true)
                .await
                .err()
        })
        .await;
        assert_reason(&blocked, Code::PermissionDenied, "BLOCKED");

        // Nothing is stored: no seq, and nothing to replay.
        let before = last_seq(&mesh, &ada, &id).await;
        let cursor = caught_up(&mesh, &ada, &bob, &chat).await;
        set_typing(&mesh, &ada, &id, true).await.expect("typing");
        set_typing(&mesh, &ada, &id, false).await.expect("stop");
        assert_eq!(
            last_seq(&mesh, &ada, &id).await,
            before + 1,
            "only the marker"
        );
        let mut back = subscribe(&mesh, &bob, &cursor).await;
        let (replayed, ready) = back.until_ready(WAIT).await;
        assert!(
            replayed.is_empty(),
            "{backend:?}: {}",
            describe_all(&replayed)
        );
        assert_eq!(ready.replayed_count, 0);
        mesh.shutdown().await;
    }
}
