//! NATS goes away: commits still succeed and the events wait in the outbox; when NATS is back
//! the relay publishes every one of them exactly once, and a re-publish within the
//! de-duplication window adds nothing (DESIGN §8). Uses a PRIVATE nats-server (DESIGN §12):
//! the shared one is never stopped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use echo_bus::{EventBus, NatsBus, Outbox};
use echo_store::Database;
use echo_testenv::Server;
use tokio::process::{Child, Command};

/// Outages take the client's reconnect backoff plus the relay's retry: allow more than `WAIT`.
const RECOVER: Duration = Duration::from_secs(25);

fn nats_server_binary() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("/usr/sbin/nats-server"),
        PathBuf::from("/usr/bin/nats-server"),
    ];
    if let Some(found) = candidates.into_iter().find(|p| p.exists()) {
        return Some(found);
    }
    let message = "nats-server is not installed (looked in /usr/sbin and /usr/bin)";
    if echo_testenv::services_required() {
        panic!("{message}; ECHO_REQUIRE_SERVICES=1 makes this a failure");
    }
    eprintln!("\n!!! SKIPPING: {message}\n");
    None
}

/// Start a private JetStream server on `port` with its store in `store`; wait until it accepts.
async fn start_nats(binary: &Path, port: u16, store: &Path) -> Child {
    let child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start nats-server");
    wait_until("the private nats-server accepts connections", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    child
}

async fn wait_long<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + RECOVER;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn outage(outbox_db: Database) {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("jetstream");
    let port = echo_testenv::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut server = start_nats(&binary, port, &store).await;

    let settings = nats_settings();
    let stream_name = echo_bus::subject::stream_name(&settings.subject_prefix, "auth");
    let bus = NatsBus::connect(&url, settings).await.unwrap();
    let outbox = Outbox::new("auth", outbox_db.clone());
    bus.attach_outbox(outbox.clone()).await.unwrap();
    let mut events = vec![event("user_registered", "before", 0)];
    commit(&outbox, &events[0]).await;
    wait_until("the first event is published", || async {
        outbox.unpublished_count().await.unwrap() == 0
    })
    .await;
    // Let the server's file store flush before the hard kill (its own fsync policy is not
    // what this test is about).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // NATS dies hard.
    server.kill().await.unwrap();
    wait_until("the bus notices the outage", || async {
        !bus.is_connected()
    })
    .await;

    // Sends go on: every commit succeeds, promptly, and its event waits in the outbox.
    let during: Vec<_> = (1..=20)
        .map(|n| event("user_registered", &format!("u{n}"), n))
        .collect();
    for event in &during {
        tokio::time::timeout(Duration::from_secs(2), commit(&outbox, event))
            .await
            .expect("a commit does not wait for NATS");
    }
    events.extend(during);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        outbox.unpublished_count().await.unwrap(),
        20,
        "unpublished while NATS is down"
    );

    // NATS returns on the same port with the same store.
    let server = start_nats(&binary, port, &store).await;
    wait_long("every event is published after the outage", || async {
        outbox.unpublished_count().await.unwrap() == 0
    })
    .await;

    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let ids: Vec<_> = read_stream(&js, &stream_name)
        .await
        .iter()
        .map(msg_id)
        .collect();
    let expected: Vec<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, expected, "each event exactly once, in order");

    // De-dup: make the relay publish three events again (as after a crash between their
    // PubAcks and marking the rows): JetStream drops them within the duplicate window. They
    // go out as one window whose later rows expect the row before them as the stream's last
    // (which it is not: the stream ends further on), so the relay must get past that too.
    for again in events[7..10].iter().map(|e| e.id) {
        match &outbox_db {
            Database::Postgres(db) => {
                sqlx::query("UPDATE outbox SET published_at = NULL WHERE event_id = $1")
                    .bind(again)
                    .execute(&db.pool)
                    .await
                    .unwrap();
            }
            Database::Sqlite(db) => {
                sqlx::query("UPDATE outbox SET published_at = NULL WHERE event_id = $1")
                    .bind(again.to_string())
                    .execute(&db.writer)
                    .await
                    .unwrap();
            }
        }
    }
    assert_eq!(outbox.unpublished_count().await.unwrap(), 3);
    wait_until("the reset rows are re-published", || async {
        outbox.unpublished_count().await.unwrap() == 0
    })
    .await;
    let mut stream = js.get_stream(&stream_name).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        events.len() as u64
    );
    let ids: Vec<_> = read_stream(&js, &stream_name)
        .await
        .iter()
        .map(msg_id)
        .collect();
    assert_eq!(ids, expected, "the re-publish was de-duplicated");

    bus.shutdown();
    drop(server); // kill_on_drop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_outbox_survives_a_nats_outage() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(
        &format!("sqlite://{}/echo.db", dir.path().display()),
        "auth",
        "",
    )
    .await;
    outage(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outbox_survives_a_nats_outage() {
    init_logging();
    let Some(pg_url) = echo_testenv::url(Server::Postgres) else {
        return;
    };
    let prefix = unique_prefix();
    let db = open_db(&pg_url, "auth", &prefix).await;
    outage(db.clone()).await;
    db.close().await;
    drop_schemas(&pg_url, &prefix, &["auth"]).await;
}
