//! R3 (docs/reliability.md), asserted by itself: the outbox relay lease and the event
//! consumers move to the survivor when the instance holding the lease is SIGKILLed.
//!
//! Two whole-mesh `echo` processes share the real backends. The first starts alone, so it
//! takes every outbox relay lease (a session-level advisory lock per service schema); the
//! second starts once the first holds the message service's, and waits. Ada and Bob sign up
//! and Ada sends Bob a message (the first's relay publishes it; Bob's inbox gets its entry).
//! Then the first gets SIGKILL: its PostgreSQL sessions end, the locks are free. Ada sends
//! Bob more messages through the survivor. Checked: the message relay's lock is held again, by
//! another session, within the bound; each message's inbox entry (written by the notification
//! consumer from the event the relay published) appears within the bound, and exactly once,
//! still once a moment later.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::processes::{auth_env, backends, serving, sign_up, spawn, webhook};
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::notification::v1 as notify_pb;
use echo_testenv::unique_name;
use tonic::transport::Channel;

/// How long the lease and each event may take to move (the relay retries its lease every
/// second or so; a consumer's pull is immediate).
const BOUND: Duration = Duration::from_secs(15);

/// The PostgreSQL session holding the outbox relay lease of `schema`, if one does (the relay
/// takes `pg_try_advisory_lock(hashtext('<schema>.outbox_relay'))`, a one-bigint key: the low
/// 32 bits in `objid`, `objsubid` 1).
async fn lease_holder(db: &sqlx::PgPool, schema: &str) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
         AND objid::bigint = (hashtext($1)::bigint & 4294967295)",
    )
    .bind(format!("{schema}.outbox_relay"))
    .fetch_optional(db)
    .await
    .expect("pg_locks")
}

/// Waits up to BOUND for the lease of `schema` to be held by a session other than `not`.
async fn held_by_another(db: &sqlx::PgPool, schema: &str, not: Option<i32>) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < BOUND {
        let holder = lease_holder(db, schema).await;
        if holder.is_some() && holder != not {
            return holder;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// `user`'s inbox entries by message id, counted.
async fn inbox(channel: &Channel, token: &str) -> BTreeMap<String, usize> {
    let mut client = notify_pb::notification_service_client::NotificationServiceClient::new(
        echo_testkit::authed_on(channel, token),
    );
    let request = notify_pb::ListInboxRequest {
        page_size: 200,
        ..Default::default()
    };
    let page = client
        .list_inbox(request)
        .await
        .expect("inbox")
        .into_inner();
    let mut counted = BTreeMap::new();
    for entry in page.entries {
        *counted.entry(entry.message_id).or_default() += 1;
    }
    counted
}

/// Waits up to BOUND for `message_id`'s entry in the inbox; how long it took.
async fn entry_appears(channel: &Channel, token: &str, message_id: &str) -> Duration {
    let started = Instant::now();
    while started.elapsed() < BOUND {
        if inbox(channel, token).await.contains_key(message_id) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no inbox entry for {message_id} within {BOUND:?}");
}

async fn send(channel: &Channel, token: &str, conversation: &str, text: &str) -> String {
    let mut client = pb::message_service_client::MessageServiceClient::new(
        echo_testkit::authed_on(channel, token),
    );
    let request = pb::SendMessageRequest {
        conversation_id: conversation.to_owned(),
        client_message_id: uuid::Uuid::now_v7().to_string(),
        content: Some(pb::MessageContent {
            text: text.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sent = client.send_message(request).await.expect("sent");
    sent.into_inner().message.expect("message").message_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_lease_and_consumers_move_to_the_survivor_of_a_sigkill() {
    let Some(backends) = backends() else {
        return;
    };
    let var = |name: &str| {
        let found = backends.iter().find(|(k, _)| k == name);
        found.expect("a backend variable").1.clone()
    };
    let schema = format!("{}message", var("ECHO_DATABASE_SCHEMA_PREFIX"));
    let db = sqlx::PgPool::connect(&var("ECHO_DATABASE_URL"))
        .await
        .expect("PostgreSQL");
    let key = echo_authn::SigningKey::generate().unwrap();
    let (hook, codes) = webhook().await;
    let mut env = auth_env(&backends, &key, &hook);
    env.push((
        "ECHO_SERVICE_SECRET".to_owned(),
        unique_name("s") + &unique_name("s"),
    ));
    let data = tempfile::tempdir().unwrap();

    // The first alone, until it holds the message relay's lease; then the second.
    let mut first = spawn("all", &env, &data.path().join("first"));
    serving(&mut first).await;
    let leased = held_by_another(&db, &schema, None).await;
    let before = leased.expect("the first instance takes the relay lease");
    let mut second = spawn("all", &env, &data.path().join("second"));
    let survivor = serving(&mut second).await;
    assert_eq!(
        lease_holder(&db, &schema).await,
        Some(before),
        "still the first's"
    );

    let ada = sign_up(survivor.clone(), &codes).await;
    let bob = sign_up(survivor.clone(), &codes).await;
    let mut client = pb::message_service_client::MessageServiceClient::new(
        echo_testkit::authed_on(&survivor, &ada.access_token),
    );
    let conversation = loop {
        let request = pb::CreateDirectConversationRequest {
            peer_user_id: bob.user_id.clone(),
        };
        match client.create_direct_conversation(request).await {
            Ok(created) => break created.into_inner().conversation.unwrap().conversation_id,
            // Until message has applied Bob's registration.
            Err(status) if common::reason(&status) == "USER_NOT_FOUND" => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("create the conversation: {status:?}"),
        }
    };
    let early = send(&survivor, &ada.access_token, &conversation, "before").await;
    entry_appears(&survivor, &bob.access_token, &early).await;

    first.child.kill().await.expect("SIGKILL");
    first.child.wait().await.expect("reaped");
    let killed = Instant::now();
    let mut sent = vec![early];
    let mut took = Vec::new();
    for n in 0..3 {
        let id = send(
            &survivor,
            &ada.access_token,
            &conversation,
            &format!("after {n}"),
        )
        .await;
        took.push(entry_appears(&survivor, &bob.access_token, &id).await);
        sent.push(id);
    }
    let after = held_by_another(&db, &schema, Some(before)).await;
    let after = after.expect("the survivor holds the relay lease");
    // A moment more for a second publication or delivery to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let entries = inbox(&survivor, &bob.access_token).await;
    for id in &sent {
        assert_eq!(
            entries.get(id),
            Some(&1),
            "{id}: exactly one entry: {entries:?}"
        );
    }
    assert_eq!(entries.len(), sent.len(), "no other entries: {entries:?}");
    eprintln!(
        "lease: session {before} → {after}; after the kill, entries within {took:?} \
         ({:.1?} since the kill)",
        killed.elapsed()
    );
    second.child.kill().await.expect("stop the survivor");
    let _ = second.child.wait().await;
}
