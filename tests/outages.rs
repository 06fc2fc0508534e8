//! Dependency outages under load (issue 17, R2), on the real backends: the test puts a TCP
//! proxy it owns in front of the shared PostgreSQL, NATS or Redis (never stopping the servers other
//! tests use) and cuts it while four users send to one group without pause.
//!
//! What must hold: no acknowledged message is lost; while the database is away a send fails
//! with UNAVAILABLE and RetryInfo (never INTERNAL), at worst after two of the pool's acquire
//! timeouts (5 s: its own, and the one of the batch ahead of it in its lane), and
//! `/readyz` says 503; sends succeed again within 5 s of its return; a refused send retried
//! with its key is stored once; the live stream from a cursor taken before the outage holds
//! every seq once, in order (the outbox drained); with NATS away sends go on, and the
//! notification consumers catch up afterwards with exactly one inbox entry per message.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::live::{WAIT, caught_up, collect, conversation_event, eventually, message_of};
use common::messages::{group, history, send_request, text};
use common::users::known_user;
use echo_proto::echo::auth::v1 as auth_pb;
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::notification::v1 as notify_pb;
use echo_proto::echo::user::v1 as user_pb;
use echo_testenv::{PrivateNats, Server, TcpProxy, url};
use echo_testkit::{Backend, SignedIn, TestMesh};
use tokio::time::Instant;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// How long the pool waits for a connection before a call fails (crates/store).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// One send of the load.
#[derive(Debug)]
struct Sent {
    key: String,
    answer: Result<pb::Message, Status>,
    started: Instant,
    took: Duration,
}

/// Four senders in one group, each sending as fast as its rate limit allows (10/s) until
/// `stop`; what each send answered, with the sender's index.
fn load(
    mesh: &TestMesh,
    senders: &[SignedIn],
    chat: &pb::Conversation,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinSet<(usize, Vec<Sent>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, sender) in senders.iter().enumerate() {
        let mut client = mesh.message_as(sender);
        let (chat, stop) = (chat.clone(), stop.clone());
        tasks.spawn(async move {
            let mut sent = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let key = format!("s{index}-{n}");
                n += 1;
                let started = Instant::now();
                let answer = client
                    .send_message(send_request(&chat, &key, text(&key)))
                    .await
                    .map(|r| r.into_inner().message.expect("message"));
                sent.push(Sent {
                    key,
                    answer,
                    started,
                    took: started.elapsed(),
                });
                tokio::time::sleep(Duration::from_millis(110)).await;
            }
            (index, sent)
        });
    }
    tasks
}

/// `/readyz` polled every 100 ms until `stop`: when it answered and whether it said ready.
fn readiness(
    mesh: &TestMesh,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(Instant, bool)>> {
    let (url, stop) = (format!("{}/readyz", mesh.admin_url()), stop.clone());
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Acquire) {
            let ready = reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success());
            seen.push((Instant::now(), ready));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    })
}

/// Ada and four senders in one group; Ada's cursor from before anything is sent.
async fn group_under_load(mesh: &TestMesh) -> (SignedIn, Vec<SignedIn>, pb::Conversation, String) {
    let ada = known_user(mesh).await;
    let mut senders = Vec::new();
    for _ in 0..4 {
        senders.push(known_user(mesh).await);
    }
    let members: Vec<&SignedIn> = senders.iter().collect();
    let chat = group(mesh, &ada, pb::ConversationType::Group, &members).await;
    let cursor = caught_up(mesh, &ada, &ada, &chat).await;
    (ada, senders, chat, cursor)
}

/// A group under the four-sender load, on a real-backend mesh `configure`d to reach one
/// dependency through the test's proxy or private server.
struct Loaded {
    mesh: TestMesh,
    ada: SignedIn,
    senders: Vec<SignedIn>,
    chat: pb::Conversation,
    cursor: String,
    stop: Arc<AtomicBool>,
    load: tokio::task::JoinSet<(usize, Vec<Sent>)>,
}

async fn loaded(configure: impl FnOnce(&mut echo_config::Config)) -> Option<Loaded> {
    let mesh = TestMesh::start_with(Backend::Real, "all", configure).await?;
    let (ada, senders, chat, cursor) = group_under_load(&mesh).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = load(&mesh, &senders, &chat, &stop);
    Some(Loaded {
        mesh,
        ada,
        senders,
        chat,
        cursor,
        stop,
        load,
    })
}

impl Loaded {
    /// Every refused send retried with its key, then nothing lost (see [`nothing_lost`]); the
    /// mesh shut down.
    async fn nothing_lost(self, sent: &[Vec<Sent>]) {
        let stored = settle(&self.mesh, &self.senders, &self.chat, sent).await;
        nothing_lost(&self.mesh, &self.ada, &self.chat, &self.cursor, &stored).await;
        self.mesh.shutdown().await;
    }

    /// What a bus outage must leave: no send refused (the outbox is in the database), nothing
    /// lost, and the notification consumers caught up with one inbox entry per message for Ada
    /// (who sent none).
    async fn bus_outage_survived(self, sent: &[Vec<Sent>], outage: &str) {
        let all: Vec<&Sent> = sent.iter().flatten().collect();
        let refused: Vec<_> = all.iter().filter(|s| s.answer.is_err()).collect();
        assert!(
            refused.is_empty(),
            "no send is refused while NATS is away: {refused:?}"
        );
        let (mesh, ada) = (&self.mesh, &self.ada);
        let stored = settle(mesh, &self.senders, &self.chat, sent).await;
        nothing_lost(mesh, ada, &self.chat, &self.cursor, &stored).await;
        let keys: BTreeSet<String> = stored.values().map(|m| m.message_id.clone()).collect();
        let catching_up = Instant::now();
        let entries = eventually(Duration::from_secs(90), "Ada's inbox complete", || async {
            let entries = inbox(mesh, ada).await;
            (entries.len() >= keys.len()).then_some(entries)
        })
        .await;
        let ids: Vec<&String> = entries.iter().map(|e| &e.message_id).collect();
        let unique: BTreeSet<&String> = ids.iter().copied().collect();
        assert_eq!(ids.len(), unique.len(), "one inbox entry per message");
        assert_eq!(
            unique,
            keys.iter().collect::<BTreeSet<_>>(),
            "an entry for every message"
        );
        eprintln!(
            "{outage}: {} sends acknowledged, {} inbox entries once each, the last {:?} after \
             the history was checked",
            all.len(),
            entries.len(),
            catching_up.elapsed()
        );
        self.mesh.shutdown().await;
    }

    /// Let the load run `for` longer, stop it, and hand back every sender's sends, in the
    /// senders' order: `settle` retries `sent[i]` as `senders[i]`, and the tasks end in any
    /// order (retrying one sender's key as another once stored a second message for a send
    /// that had been committed but answered with an error).
    async fn finish(&mut self, r#for: Duration) -> Vec<Vec<Sent>> {
        tokio::time::sleep(r#for).await;
        self.stop.store(true, Ordering::Release);
        let mut sent: Vec<(usize, Vec<Sent>)> = Vec::new();
        while let Some(task) = self.load.join_next().await {
            sent.push(task.expect("sender"));
        }
        sent.sort_by_key(|(index, _)| *index);
        sent.into_iter().map(|(_, sends)| sends).collect()
    }
}

/// Cut `proxy` for 2 s, then for 8 s (longer than the pool's 5 s acquire timeout), 2 s after
/// the load or the last cut; when each cut ended.
async fn cut_twice(proxy: &TcpProxy) -> Vec<Instant> {
    let mut ends = Vec::new();
    for length in [Duration::from_secs(2), Duration::from_secs(8)] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.cut();
        tokio::time::sleep(length).await;
        proxy.restore();
        ends.push(Instant::now());
    }
    ends
}

/// `status` is UNAVAILABLE with `reason` and RetryInfo (`what` names the call).
fn assert_retryable(status: &Status, reason: &str, what: &str) {
    assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
    assert_eq!(common::reason(status), reason, "{what}: {status:?}");
    assert!(
        status.get_error_details().retry_info().is_some(),
        "{what}: RetryInfo: {status:?}"
    );
}

/// Some send started after `end` (a dependency's return) succeeded within 5 s of it.
fn back_within_5s(all: &[&Sent], end: Instant, dependency: &str) {
    let back = all
        .iter()
        .filter(|s| s.answer.is_ok() && s.started > end)
        .map(|s| s.started + s.took)
        .min()
        .expect("sends succeed after the outage");
    assert!(
        back.duration_since(end) <= Duration::from_secs(5),
        "sends succeed again {:?} after {dependency} returned",
        back.duration_since(end)
    );
}

/// Every refused send retried with its key until it is stored; the messages, by key, of the
/// acknowledged and the retried sends.
async fn settle(
    mesh: &TestMesh,
    senders: &[SignedIn],
    chat: &pb::Conversation,
    sent: &[Vec<Sent>],
) -> BTreeMap<String, pb::Message> {
    let mut stored = BTreeMap::new();
    for (index, sends) in sent.iter().enumerate() {
        for send in sends {
            let message = match &send.answer {
                Ok(message) => message.clone(),
                Err(_) => {
                    let client = mesh.message_as(&senders[index]);
                    let request = send_request(chat, &send.key, text(&send.key));
                    eventually(WAIT, "a refused send stored on retry", || {
                        let (mut client, request) = (client.clone(), request.clone());
                        async move { client.send_message(request).await.ok() }
                    })
                    .await
                    .into_inner()
                    .message
                    .expect("message")
                }
            };
            stored.insert(send.key.clone(), message);
        }
    }
    stored
}

/// The history holds every stored message once, and Ada's stream from before the load holds
/// every seq once, in order.
async fn nothing_lost(
    mesh: &TestMesh,
    ada: &SignedIn,
    chat: &pb::Conversation,
    cursor: &str,
    stored: &BTreeMap<String, pb::Message>,
) {
    let history = history(mesh, ada, &chat.conversation_id).await;
    // Message ids, not keys: a message's client_message_id is shown to its sender only.
    let mut by_id: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for message in &history {
        by_id
            .entry(message.message_id.as_str())
            .or_default()
            .push(message.seq);
    }
    for (key, message) in stored {
        assert_eq!(
            by_id.get(message.message_id.as_str()),
            Some(&vec![message.seq]),
            "{key}: stored once, at the seq it was acknowledged with"
        );
    }
    let ids: BTreeSet<&str> = stored.values().map(|m| m.message_id.as_str()).collect();
    let last = stored.values().map(|m| m.seq).max().expect("messages");
    let stream = collect(common::live::subscribe(mesh, ada, cursor).await);
    stream
        .wait_for(WAIT, |c| {
            c.items
                .iter()
                .filter_map(conversation_event)
                .any(|e| e.seq == last)
        })
        .await;
    let seqs: Vec<i64> = stream
        .stop()
        .await
        .items
        .iter()
        .filter_map(conversation_event)
        .filter(|e| e.conversation_id == chat.conversation_id)
        .filter(|e| message_of(e).is_some())
        .map(|e| e.seq)
        .collect();
    let expected: Vec<i64> = history
        .iter()
        .filter(|m| ids.contains(m.message_id.as_str()))
        .map(|m| m.seq)
        .collect();
    if seqs != expected {
        // Say what the extra or missing seqs are in the history, to tell a lost acknowledgement
        // from a message the stream showed but the database does not hold.
        let at: BTreeMap<i64, &pb::Message> = history.iter().map(|m| (m.seq, m)).collect();
        for seq in seqs.iter().filter(|s| !expected.contains(s)) {
            let held = at.get(seq).map(|m| (&m.message_id, &m.sender_user_id));
            eprintln!("stream seq {seq} not expected; the history holds {held:?}");
        }
        for seq in expected.iter().filter(|s| !seqs.contains(s)) {
            eprintln!("expected seq {seq} missing from the stream");
        }
    }
    assert_eq!(
        seqs, expected,
        "the live stream: every message once, in order"
    );
}

#[tokio::test]
async fn postgres_cut_under_send_load_loses_nothing_and_recovers() {
    let Some(postgres) = url(Server::Postgres) else {
        return;
    };
    let (proxy, proxied) = TcpProxy::in_front_of(&postgres).await;
    let Some(mut loaded) = loaded(|config| config.database_url = Some(proxied.clone())).await
    else {
        return;
    };
    let ready = readiness(&loaded.mesh, &loaded.stop);
    let (mesh, ada) = (&loaded.mesh, &loaded.ada);
    // A short cut, then one longer than every timeout (the pool's 5 s acquire timeout).
    let mut outages = Vec::new();
    let mut reads = Vec::new();
    for length in [Duration::from_secs(2), Duration::from_secs(8)] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.cut();
        let cut = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Reads of every service that owns data are refused alike.
        let me = mesh.user_as(ada).get_me(user_pb::GetMeRequest {}).await;
        reads.push(me.map(|_| ()));
        let sessions = auth_pb::ListSessionsRequest::default();
        reads.push(mesh.auth_as(ada).list_sessions(sessions).await.map(|_| ()));
        let conversation = pb::GetConversationRequest {
            conversation_id: loaded.chat.conversation_id.clone(),
        };
        let read = mesh.message_as(ada).get_conversation(conversation).await;
        reads.push(read.map(|_| ()));
        tokio::time::sleep(length.saturating_sub(cut.elapsed())).await;
        proxy.restore();
        outages.push((cut, Instant::now()));
    }
    let sent = loaded.finish(Duration::from_secs(7)).await;
    let ready = ready.await.expect("readiness poller");

    let all: Vec<&Sent> = sent.iter().flatten().collect();
    let refused: Vec<&Sent> = all.iter().copied().filter(|s| s.answer.is_err()).collect();
    assert!(
        !refused.is_empty(),
        "sends were refused while PostgreSQL was cut"
    );
    for send in &refused {
        let status = send.answer.as_ref().unwrap_err();
        assert_retryable(status, "DEPENDENCY_UNAVAILABLE", &send.key);
        assert!(
            // A send may wait in its lane behind a batch that waits out the acquire timeout,
            // then wait it out itself: two timeouts, and slack for a loaded machine.
            send.took <= 2 * ACQUIRE_TIMEOUT + Duration::from_secs(2),
            "{}: refused after {:?}",
            send.key,
            send.took
        );
    }
    for read in &reads {
        let status = read
            .as_ref()
            .expect_err("reads are refused while PostgreSQL is cut");
        assert_retryable(status, "DEPENDENCY_UNAVAILABLE", "a read");
    }
    // Readiness said 503 during the long outage and 200 again within 5 s of its end.
    let (long_cut, long_end) = outages[1];
    assert!(
        ready
            .iter()
            .any(|(at, ok)| !ok && *at > long_cut && *at < long_end),
        "/readyz said 503 while PostgreSQL was cut"
    );
    for (_, end) in &outages {
        back_within_5s(&all, *end, "PostgreSQL");
        let ready_again = ready
            .iter()
            .find(|(at, ok)| *ok && at > end)
            .expect("ready again");
        assert!(ready_again.0.duration_since(*end) <= Duration::from_secs(5));
    }
    let acked = all.iter().filter(|s| s.answer.is_ok()).count();
    let mut took: Vec<Duration> = refused.iter().map(|s| s.took).collect();
    took.sort();
    eprintln!(
        "PostgreSQL cut twice (2 s, 8 s): {} sends, {acked} acknowledged, {} refused in {:?} \
         (median), {:?} (slowest)",
        all.len(),
        refused.len(),
        took[took.len() / 2],
        took.last()
    );
    loaded.nothing_lost(&sent).await;
}

#[tokio::test]
async fn nats_cut_under_send_load_delays_consumers_and_loses_nothing() {
    let Some(nats) = url(Server::Nats) else {
        return;
    };
    let (proxy, proxied) = TcpProxy::in_front_of(&nats).await;
    let Some(mut loaded) = loaded(|config| config.bus_url = proxied.clone()).await else {
        return;
    };
    cut_twice(&proxy).await;
    let sent = loaded.finish(Duration::from_secs(3)).await;
    loaded
        .bus_outage_survived(&sent, "NATS cut twice (2 s, 8 s)")
        .await;
}

#[tokio::test]
async fn redis_cut_under_send_load_refuses_with_retry_info_and_loses_nothing() {
    let Some(redis) = url(Server::Redis) else {
        return;
    };
    let (proxy, proxied) = TcpProxy::in_front_of(&redis).await;
    let Some(mut loaded) = loaded(|config| config.cache_url = proxied.clone()).await else {
        return;
    };
    let ends = cut_twice(&proxy).await;
    let sent = loaded.finish(Duration::from_secs(7)).await;
    let all: Vec<&Sent> = sent.iter().flatten().collect();
    // Rate limits fail open and revocations are followed locally, so sends go on; once the
    // revocation feed has been away for 5 s, token checks fail closed: UNAVAILABLE with
    // RetryInfo, never anything else.
    let refused: Vec<&Sent> = all.iter().copied().filter(|s| s.answer.is_err()).collect();
    for send in &refused {
        let status = send.answer.as_ref().unwrap_err();
        assert_retryable(status, "DEPENDENCY_UNAVAILABLE", &send.key);
    }
    for end in &ends {
        back_within_5s(&all, *end, "Redis");
    }
    eprintln!(
        "Redis cut twice (2 s, 8 s): {} sends, {} refused",
        all.len(),
        refused.len()
    );
    loaded.nothing_lost(&sent).await;
}

#[tokio::test]
async fn nats_killed_and_restarted_under_send_load_loses_nothing() {
    let store = tempfile::tempdir().expect("JetStream store");
    let port = echo_testenv::free_port();
    let Some(nats) = PrivateNats::start(port, store.path()) else {
        return;
    };
    let Some(mut loaded) = loaded(|config| config.bus_url = nats.url()).await else {
        return;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    // SIGKILL: no goodbye to clients, JetStream recovers from its store on the restart.
    nats.kill();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let _nats = PrivateNats::start(port, store.path()).expect("restart nats-server");
    let sent = loaded.finish(Duration::from_secs(4)).await;
    loaded
        .bus_outage_survived(&sent, "NATS killed for 6 s and restarted")
        .await;
}

/// Every inbox entry of `user`.
async fn inbox(mesh: &TestMesh, user: &SignedIn) -> Vec<notify_pb::InboxEntry> {
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = mesh
            .notification_as(user)
            .list_inbox(notify_pb::ListInboxRequest {
                page_size: 200,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("inbox")
            .into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        page_token = page.next_page_token;
    }
}
