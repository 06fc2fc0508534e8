//! Presence test helpers: a mesh with short presence timings, users who may see each other,
//! and readers for GetPresence and WatchPresence.

use std::time::Duration;

use echo_proto::echo::presence::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tonic::Streaming;

use crate::common::users::{add_contact, known_user};

pub use pb::PresenceStatus as S;

/// The spec's test timings (§A8): TTL 3 s, heartbeat every 1 s; sweeps and stream signals
/// more often than in production so tests stay short.
pub async fn mesh(backend: Backend) -> Option<TestMesh> {
    mesh_with(backend, |_| {}).await
}

/// [`mesh`] with further changes.
pub async fn mesh_with(
    backend: Backend,
    adjust: impl FnOnce(&mut echo_config::Config),
) -> Option<TestMesh> {
    TestMesh::start_with(backend, "all", |config| {
        config.presence.heartbeat_interval = Duration::from_secs(1);
        config.presence.ttl = Duration::from_secs(3);
        config.presence.sweep_every = Duration::from_millis(200);
        config.presence.stream_closed_ttl = Duration::from_secs(1);
        config.live.streams_alive_every = Duration::from_secs(1);
        adjust(config);
    })
    .await
}

/// Two users; `watcher` is in `target`'s contacts, so `watcher` may see `target` under the
/// default `last_seen` setting (CONTACTS). Returns once presence has applied the contact.
pub async fn pair(mesh: &TestMesh) -> (SignedIn, SignedIn) {
    let watcher = known_user(mesh).await;
    let target = known_user(mesh).await;
    add_contact(mesh, &target, &watcher, "watcher").await;
    eventually_visible(mesh, &watcher, &target).await;
    (watcher, target)
}

/// `viewer`'s GetPresence of `users`.
pub async fn get(mesh: &TestMesh, viewer: &SignedIn, users: &[&SignedIn]) -> Vec<pb::Presence> {
    let ids = users.iter().map(|u| u.tokens.user_id.clone()).collect();
    mesh.presence_as(viewer)
        .get_presence(pb::GetPresenceRequest { user_ids: ids })
        .await
        .expect("get presence")
        .into_inner()
        .presences
}

/// `viewer`'s view of `user`.
pub async fn one(mesh: &TestMesh, viewer: &SignedIn, user: &SignedIn) -> pb::Presence {
    get(mesh, viewer, &[user]).await.remove(0)
}

/// Poll until `viewer` may see `user` (the projections are fed asynchronously).
pub async fn eventually_visible(mesh: &TestMesh, viewer: &SignedIn, user: &SignedIn) {
    eventually(mesh, viewer, user, |p| !p.restricted, "visible").await;
}

/// Poll until `viewer`'s view of `user` satisfies `check`.
pub async fn eventually(
    mesh: &TestMesh,
    viewer: &SignedIn,
    user: &SignedIn,
    check: impl Fn(&pb::Presence) -> bool,
    what: &str,
) -> pb::Presence {
    let mut last = None;
    for _ in 0..250 {
        let presence = one(mesh, viewer, user).await;
        if check(&presence) {
            return presence;
        }
        last = Some(presence);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never {what}: last {last:?}");
}

/// `user` heartbeats with `status`.
pub async fn heartbeat(mesh: &TestMesh, user: &SignedIn, status: S) -> pb::HeartbeatResponse {
    mesh.presence_as(user)
        .heartbeat(pb::HeartbeatRequest {
            status: status as i32,
        })
        .await
        .expect("heartbeat")
        .into_inner()
}

/// `user` sets a manual status.
pub async fn set_status(mesh: &TestMesh, user: &SignedIn, status: S) -> pb::SetStatusResponse {
    mesh.presence_as(user)
        .set_status(pb::SetStatusRequest {
            status: status as i32,
            clear_after: None,
        })
        .await
        .expect("set status")
        .into_inner()
}

/// `viewer` watches `users`.
pub async fn watch(
    mesh: &TestMesh,
    viewer: &SignedIn,
    users: &[&SignedIn],
) -> Streaming<pb::WatchPresenceResponse> {
    let ids = users.iter().map(|u| u.tokens.user_id.clone()).collect();
    mesh.presence_as(viewer)
        .watch_presence(pb::WatchPresenceRequest { user_ids: ids })
        .await
        .expect("watch")
        .into_inner()
}

/// The next presence item on `stream` (heartbeats skipped), within `within`.
pub async fn next_presence(
    stream: &mut Streaming<pb::WatchPresenceResponse>,
    within: Duration,
) -> pb::Presence {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let item = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("a presence item in time")
            .expect("the stream stays up")
            .expect("the stream stays open");
        if let Some(pb::watch_presence_response::Event::Presence(presence)) = item.event {
            return presence;
        }
    }
}

/// The observed status of a presence.
pub fn status(presence: &pb::Presence) -> S {
    S::try_from(presence.status).unwrap_or(S::Unspecified)
}

/// Heartbeat as `user` every second until the returned task is aborted (keeps them ONLINE
/// under the tests' 3 s TTL while a test does other things).
pub fn keep_alive(mesh: &TestMesh, user: &SignedIn) -> tokio::task::JoinHandle<()> {
    let mut client = mesh.presence_as(user);
    tokio::spawn(async move {
        loop {
            let beat = pb::HeartbeatRequest {
                status: S::Online as i32,
            };
            let _ = client.heartbeat(beat).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}
