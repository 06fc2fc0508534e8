//! The presence signals of live delivery (DESIGN §9, presence spec A5, docs/live.md): a
//! Subscribe stream publishes StreamOpened when it opens and StreamClosed when it ends, and
//! each instance lists its open streams' devices in StreamsAlive every
//! `live.streams_alive_every`, all on ephemeral `echo.live.*` subjects, on both backends. The
//! StreamOpened proto is also what ends an older stream of the device on another instance.

use std::time::Duration;

use common::live::*;
use common::users::known_user;
use echo_proto::echo::events::v1 as events;
use echo_testkit::{Backend, SignedIn, TestMesh};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tonic::Code;
use uuid::Uuid;

use crate::common::assert_reason;

mod common;

/// A short announce interval, so a test sees several lists.
const EVERY: Duration = Duration::from_millis(200);

/// Everything published on `echo.live.>` since it was opened.
struct Signals(BoxStream<'static, (String, Vec<u8>)>);

impl Signals {
    /// Listen on `mesh`'s bus (before the stream under test opens: nothing is stored).
    async fn open(mesh: &TestMesh) -> Self {
        let items = mesh
            .mesh
            .backends
            .bus
            .subscribe_ephemeral("echo.live.>")
            .await
            .expect("subscribe to echo.live.>");
        Self(
            items
                .map(|(subject, payload)| (subject, payload.to_vec()))
                .boxed(),
        )
    }

    /// The next message on a subject starting with `prefix` that `wanted` accepts, with the
    /// rest of its subject; other messages are skipped.
    async fn next<T: prost::Message + Default>(
        &mut self,
        prefix: &str,
        within: Duration,
        wanted: impl Fn(&T) -> bool,
    ) -> (String, T) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let item = tokio::time::timeout_at(deadline, self.0.next()).await;
            let Ok(Some((subject, payload))) = item else {
                panic!("nothing on {prefix}* within {within:?} ({item:?})");
            };
            let Some(key) = subject.strip_prefix(prefix) else {
                continue;
            };
            let message = T::decode(payload.as_slice())
                .unwrap_or_else(|error| panic!("{subject} carries its proto: {error}"));
            if wanted(&message) {
                return (key.to_owned(), message);
            }
        }
    }

    /// `user`'s next StreamOpened.
    async fn opened(&mut self, user: &SignedIn) -> events::StreamOpened {
        let device = &user.tokens.device_id;
        let (key, opened) = self
            .next(STREAM_OPENED, WAIT, |o: &events::StreamOpened| {
                &o.device_id == device
            })
            .await;
        assert_eq!(&key, device, "keyed by device");
        opened
    }

    /// The StreamClosed of stream `stream` of `user`'s device.
    async fn closed(&mut self, user: &SignedIn, stream: &str) -> events::StreamClosed {
        let device = &user.tokens.device_id;
        let (key, closed) = self
            .next(STREAM_CLOSED, WAIT, |c: &events::StreamClosed| {
                c.stream_id == stream
            })
            .await;
        assert_eq!(&key, device, "keyed by device");
        assert_eq!(
            (closed.user_id.as_str(), closed.device_id.as_str()),
            (user.tokens.user_id.as_str(), device.as_str())
        );
        closed
    }

    /// The next StreamsAlive, with its instance id checked against its subject.
    async fn alive(&mut self, within: Duration) -> events::StreamsAlive {
        let (key, alive) = self
            .next(STREAMS_ALIVE, within, |_: &events::StreamsAlive| true)
            .await;
        assert_eq!(key, alive.instance_id, "keyed by instance");
        assert_v7(&alive.instance_id);
        assert_v7(&alive.event_id);
        assert_recent(alive.occurred_at.as_ref());
        alive
    }

    /// Whether a StreamsAlive comes within `within`.
    async fn any_alive(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Some((subject, _))) = tokio::time::timeout_at(deadline, self.0.next()).await {
            if subject.starts_with(STREAMS_ALIVE) {
                return true;
            }
        }
        false
    }
}

const STREAM_OPENED: &str = "echo.live.stream_opened.";
const STREAM_CLOSED: &str = "echo.live.stream_closed.";
const STREAMS_ALIVE: &str = "echo.live.streams_alive.";

fn assert_v7(id: &str) {
    let parsed = Uuid::parse_str(id).unwrap_or_else(|_| panic!("{id:?} is a UUID"));
    assert_eq!(parsed.get_version_num(), 7, "{id} is a UUIDv7");
}

fn assert_recent(at: Option<&prost_types::Timestamp>) {
    let at = at.expect("occurred_at");
    let now = chrono::Utc::now().timestamp();
    assert!((at.seconds - now).abs() <= 5, "occurred_at {at:?}");
}

/// Whether `alive` lists `user`'s device.
fn lists(alive: &events::StreamsAlive, user: &SignedIn) -> bool {
    alive.devices.iter().any(|d| {
        (d.user_id.as_str(), d.device_id.as_str())
            == (user.tokens.user_id.as_str(), user.tokens.device_id.as_str())
    })
}

async fn mesh_with_short_announces(backend: Backend) -> Option<TestMesh> {
    TestMesh::start_with(backend, "all", |config| {
        config.live.streams_alive_every = EVERY;
    })
    .await
}

#[tokio::test]
async fn a_stream_announces_its_opening_and_its_end() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let mut signals = Signals::open(&mesh).await;

        let stream = subscribe_ready(&mesh, &ada).await;
        let opened = signals.opened(&ada).await;
        assert_eq!(
            (opened.user_id.as_str(), opened.device_id.as_str()),
            (ada.tokens.user_id.as_str(), ada.tokens.device_id.as_str()),
            "{backend:?}"
        );
        assert_v7(&opened.stream_id);
        assert_v7(&opened.event_id);
        assert_recent(opened.occurred_at.as_ref());

        // The client goes away: the stream's end is announced with the id it opened with.
        drop(stream);
        let closed = signals.closed(&ada, &opened.stream_id).await;
        assert_v7(&closed.event_id);
        assert_ne!(
            closed.event_id, opened.event_id,
            "{backend:?}: one id per event"
        );
        assert_recent(closed.occurred_at.as_ref());
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn a_replaced_stream_announces_its_end_and_the_newer_one_its_opening() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let mut signals = Signals::open(&mesh).await;
        let mut old = subscribe_ready(&mesh, &ada).await;
        let first = signals.opened(&ada).await;
        let mut new = subscribe_ready(&mesh, &ada).await;
        let second = signals.opened(&ada).await;
        assert!(
            Uuid::parse_str(&second.stream_id).unwrap()
                > Uuid::parse_str(&first.stream_id).unwrap(),
            "{backend:?}: a later stream has a greater id"
        );
        assert_reason(
            &old.ended(WAIT).await,
            Code::FailedPrecondition,
            "STREAM_REPLACED",
        );
        signals.closed(&ada, &first.stream_id).await;

        // The newer stream is not the one that ended.
        assert!(
            matches!(new.next(EVERY).await, Next::Timeout),
            "{backend:?}"
        );
        drop(new);
        signals.closed(&ada, &second.stream_id).await;
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn open_streams_are_listed_periodically_until_they_end() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh_with_short_announces(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let mut signals = Signals::open(&mesh).await;
        let ada_stream = subscribe_ready(&mesh, &ada).await;
        let bob_stream = subscribe_ready(&mesh, &bob).await;
        let ada_opened = signals.opened(&ada).await;
        let bob_opened = signals.opened(&bob).await;

        // Both devices listed (a list taken between the two openings may name Ada alone), by
        // one instance, again and again.
        let first = loop {
            let alive = signals.alive(WAIT).await;
            if lists(&alive, &bob) {
                break alive;
            }
        };
        let next = signals.alive(WAIT).await;
        for alive in [&first, &next] {
            assert!(
                lists(alive, &ada) && lists(alive, &bob),
                "{backend:?}: {alive:?}"
            );
            assert_eq!(alive.devices.len(), 2, "{backend:?}: one entry per device");
        }
        assert_eq!(
            first.instance_id, next.instance_id,
            "{backend:?}: one instance id per start"
        );
        assert_ne!(
            first.event_id, next.event_id,
            "{backend:?}: one id per event"
        );

        // Ada's stream ends: after the list that may have been taken just before, she is gone
        // from them while Bob stays.
        drop(ada_stream);
        signals.closed(&ada, &ada_opened.stream_id).await;
        signals.alive(WAIT).await;
        for _ in 0..2 {
            let alive = signals.alive(WAIT).await;
            assert!(
                !lists(&alive, &ada),
                "{backend:?}: a closed stream is not listed"
            );
            assert!(lists(&alive, &bob), "{backend:?}: {alive:?}");
        }

        // With no stream open, nothing is sent (again past one list possibly in flight).
        drop(bob_stream);
        signals.closed(&bob, &bob_opened.stream_id).await;
        let _ = signals.any_alive(EVERY * 2).await;
        assert!(
            !signals.any_alive(EVERY * 5).await,
            "{backend:?}: no StreamsAlive while no stream is open"
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn instances_list_their_own_streams_and_replace_each_others() {
    // Two instances need the shared servers.
    let Some(first) = mesh_with_short_announces(Backend::Real).await else {
        return;
    };
    let second = first.start_sibling().await;
    let ada = known_user(&first).await;
    let bob = known_user(&first).await;
    let mut signals = Signals::open(&first).await;
    let mut ada_on_first = subscribe_ready(&first, &ada).await;
    let _bob_on_second = subscribe_ready(&second, &bob).await;
    let ada_opened = signals.opened(&ada).await;

    // Each instance lists the devices with a stream open on it, under its own id.
    let mut lists_of = std::collections::HashMap::new();
    while lists_of.len() < 2 {
        let alive = signals.alive(WAIT).await;
        lists_of.insert(alive.instance_id.clone(), alive);
    }
    let mut seen: Vec<(bool, bool)> = lists_of
        .values()
        .map(|alive| (lists(alive, &ada), lists(alive, &bob)))
        .collect();
    seen.sort();
    assert_eq!(seen, [(false, true), (true, false)], "{lists_of:?}");

    // Ada's device opens a stream on the second instance: the first ends hers on the
    // StreamOpened it received, and announces her old stream's end.
    let _ada_on_second = subscribe_ready(&second, &ada).await;
    assert_reason(
        &ada_on_first.ended(WAIT).await,
        Code::FailedPrecondition,
        "STREAM_REPLACED",
    );
    signals.closed(&ada, &ada_opened.stream_id).await;
    second.shutdown().await;
    first.shutdown().await;
}
