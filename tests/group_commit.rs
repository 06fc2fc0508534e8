//! Group commit end to end (DESIGN §6), on both backends: concurrent sends share
//! transactions without losing, doubling or reordering anything, and a full queue sheds load
//! with UNAVAILABLE / OVERLOADED + RetryInfo while every acknowledged message stays stored.

use std::time::Duration;

use common::assert_reason;
use common::messages::{group, history, send_request, text};
use common::users::known_user;
use echo_config::Target;
use echo_proto::echo::message::v1 as pb;
use echo_store::Database;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tokio::task::JoinSet;
use tonic::Code;
use tonic_types::StatusExt as _;

mod common;

/// Sends `body` with idempotency key `key`.
async fn send_keyed(
    mesh: &TestMesh,
    from: &SignedIn,
    chat: &pb::Conversation,
    key: &str,
) -> Result<pb::Message, tonic::Status> {
    let request = send_request(chat, key, text(key));
    let sent = mesh.message_as(from).send_message(request).await?;
    Ok(sent.into_inner().message.expect("message"))
}

/// Five users send 40 messages each at once into one group: every send is acknowledged,
/// seqs are exactly the next 200 with no gap or double, and history holds each message at the
/// seq it was acknowledged with.
#[tokio::test]
async fn concurrent_sends_share_commits_and_lose_nothing() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let mut users = Vec::new();
        for _ in 0..5 {
            users.push(known_user(&mesh).await);
        }
        let others: Vec<&SignedIn> = users[1..].iter().collect();
        let chat = group(&mesh, &users[0], pb::ConversationType::Group, &others).await;
        let mut sends = JoinSet::new();
        for (u, user) in users.iter().enumerate() {
            for n in 0..40 {
                let (client, chat) = (mesh.message_as(user), chat.clone());
                let key = format!("u{u}-m{n}");
                sends.spawn(async move {
                    let mut client = client;
                    let request = send_request(&chat, &key, text(&key));
                    let sent = client.send_message(request).await.expect("send");
                    sent.into_inner().message.expect("message")
                });
            }
        }
        let mut acked: Vec<pb::Message> = sends.join_all().await;
        acked.sort_by_key(|m| m.seq);
        let seqs: Vec<i64> = acked.iter().map(|m| m.seq).collect();
        let first = chat.last_seq + 1;
        assert_eq!(
            seqs,
            (first..first + 200).collect::<Vec<_>>(),
            "{backend:?}"
        );
        let stored = history(&mesh, &users[1], &chat.conversation_id).await;
        let stored: Vec<(i64, String)> =
            stored.into_iter().map(|m| (m.seq, m.message_id)).collect();
        let acked: Vec<(i64, String)> = acked.into_iter().map(|m| (m.seq, m.message_id)).collect();
        assert_eq!(stored, acked, "{backend:?}");
        mesh.shutdown().await;
    }
}

/// Writes held back on the message database, so the one committer waits and the queue fills.
enum Held {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// Holds `conversation`'s row (PostgreSQL) or the single writer (SQLite) until released.
async fn hold_writes(mesh: &TestMesh, conversation: &str) -> Held {
    let db = mesh
        .mesh
        .databases
        .iter()
        .find_map(|(target, db)| (*target == Target::Message).then_some(db))
        .expect("message database");
    match db {
        Database::Postgres(pg) => {
            let mut tx = pg.pool.begin().await.expect("begin");
            sqlx::query("SELECT 1 FROM conversations WHERE conversation_id = $1 FOR UPDATE")
                .bind(uuid::Uuid::parse_str(conversation).expect("uuid"))
                .execute(&mut *tx)
                .await
                .expect("lock the conversation");
            Held::Postgres(tx)
        }
        Database::Sqlite(lite) => {
            let tx = lite.writer.begin_with("BEGIN IMMEDIATE").await;
            Held::Sqlite(tx.expect("take the writer"))
        }
    }
}

impl Held {
    async fn release(self) {
        match self {
            Held::Postgres(tx) => tx.rollback().await.expect("release"),
            Held::Sqlite(tx) => tx.rollback().await.expect("release"),
        }
    }
}

/// With one committer, batches of one and room for two waiting sends, 20 sends at once while
/// writes are held: one is being stored, two wait, and the other 17 are refused at once with
/// UNAVAILABLE / OVERLOADED + RetryInfo. Once writes resume the three are acknowledged; the
/// refused ones succeed when retried with their keys; history holds all 20, once each.
#[tokio::test]
async fn a_full_queue_sheds_load_and_loses_nothing_acknowledged() {
    const SENDS: usize = 20;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start_with(backend, "all", |config| {
            config.send.queue = 2;
            config.send.max_batch = 1;
            config.send.committers = 1;
        })
        .await
        else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = group(&mesh, &ada, pb::ConversationType::Group, &[&bob]).await;

        let held = hold_writes(&mesh, &chat.conversation_id).await;
        let mut sends = JoinSet::new();
        for n in 0..SENDS {
            let (client, chat) = (mesh.message_as(&ada), chat.clone());
            let key = format!("m{n}");
            sends.spawn(async move {
                let mut client = client;
                let answer = client
                    .send_message(send_request(&chat, &key, text(&key)))
                    .await;
                (
                    key,
                    answer.map(|r| r.into_inner().message.expect("message")),
                )
            });
            // One at a time into the queue, so which ones wait is deterministic enough: the
            // first is taken by the committer, the next two wait.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The refusals come back while writes are still held: shedding does not wait.
        let mut shed = Vec::new();
        while shed.len() < SENDS - 3 {
            let (key, answer) = tokio::time::timeout(Duration::from_secs(10), sends.join_next())
                .await
                .expect("refusals come at once")
                .expect("a send")
                .expect("send task");
            let status = answer.expect_err("no send completes while writes are held");
            assert_reason(&status, Code::Unavailable, "OVERLOADED");
            let retry = status.get_error_details().retry_info().cloned();
            assert!(
                retry.and_then(|r| r.retry_delay).is_some(),
                "{backend:?}: {status:?}"
            );
            shed.push(key);
        }
        held.release().await;
        let mut acked = Vec::new();
        while let Some(done) = sends.join_next().await {
            let (_, answer) = done.expect("send task");
            acked.push(answer.expect("a queued send is stored once writes resume"));
        }
        assert_eq!(acked.len(), 3, "{backend:?}");
        for key in &shed {
            let retried = send_keyed(&mesh, &ada, &chat, key).await;
            acked.push(retried.expect("a shed send succeeds when retried"));
        }
        let mut acked: Vec<(i64, String)> =
            acked.into_iter().map(|m| (m.seq, m.message_id)).collect();
        acked.sort();
        let stored: Vec<(i64, String)> = history(&mesh, &bob, &chat.conversation_id)
            .await
            .into_iter()
            .map(|m| (m.seq, m.message_id))
            .collect();
        assert_eq!(stored, acked, "{backend:?}");
        assert_eq!(stored.len(), SENDS, "{backend:?}");
        mesh.shutdown().await;
    }
}
