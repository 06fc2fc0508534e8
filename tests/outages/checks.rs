//! What every outage must leave behind: refusals a client can act on, readiness that tells
//! the truth, recovery within 5 s, and nothing lost or doubled once the refused sends are
//! retried with their keys.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::notification::v1 as notify_pb;
use echo_testkit::{SignedIn, TestMesh};
use tokio::time::Instant;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::common;
use crate::common::live::{WAIT, collect, conversation_event, eventually, message_of};
use crate::common::messages::{history, send_request, text};
use crate::load::{Loaded, Sent};

impl Loaded {
    /// Every refused send retried with its key, then nothing lost (see [`nothing_lost`]); the
    /// mesh shut down.
    pub async fn nothing_lost(self, sent: &[Vec<Sent>]) {
        let stored = settle(&self.mesh, &self.senders, &self.chat, sent).await;
        nothing_lost(&self.mesh, &self.ada, &self.chat, &self.cursor, &stored).await;
        self.mesh.shutdown().await;
    }

    /// What a bus outage must leave: no send refused (the outbox is in the database), nothing
    /// lost, and the notification consumers caught up with one inbox entry per message for Ada
    /// (who sent none).
    pub async fn bus_outage_survived(self, sent: &[Vec<Sent>], outage: &str) {
        let refused: Vec<_> = sent
            .iter()
            .flatten()
            .filter(|s| s.answer.is_err())
            .collect();
        assert!(
            refused.is_empty(),
            "no send is refused while NATS is away: {refused:?}"
        );
        self.caught_up_once(sent, outage).await;
    }

    /// Every refused send retried with its key, nothing lost, and the notification consumers
    /// caught up with exactly one inbox entry per stored message for Ada (who sent none); the
    /// mesh shut down.
    pub async fn caught_up_once(self, sent: &[Vec<Sent>], outage: &str) {
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
            "{outage}: {} messages stored, {} inbox entries once each, the last {:?} after \
             the history was checked",
            stored.len(),
            entries.len(),
            catching_up.elapsed()
        );
        self.mesh.shutdown().await;
    }
}

/// What the load saw of a database outage (`outages`: when each began and ended; the last is
/// the long one): some sends refused, every refusal UNAVAILABLE + DEPENDENCY_UNAVAILABLE +
/// RetryInfo within `slowest`; `/readyz` 503 during the long outage and 200 again within 5 s
/// of each return, when sends succeed again too. Prints the figures under `label`.
pub fn database_outage_checked(
    sent: &[Vec<Sent>],
    ready: &[(Instant, bool)],
    outages: &[(Instant, Instant)],
    slowest: Duration,
    label: &str,
) {
    let all: Vec<&Sent> = sent.iter().flatten().collect();
    let refused: Vec<&Sent> = all.iter().copied().filter(|s| s.answer.is_err()).collect();
    assert!(!refused.is_empty(), "{label}: sends were refused");
    for send in &refused {
        let status = send.answer.as_ref().unwrap_err();
        assert_retryable(status, "DEPENDENCY_UNAVAILABLE", &send.key);
        assert!(
            send.took <= slowest,
            "{label}: {} refused after {:?}",
            send.key,
            send.took
        );
    }
    let &(long_start, long_end) = outages.last().expect("an outage");
    assert!(
        ready
            .iter()
            .any(|(at, ok)| !ok && *at > long_start && *at < long_end),
        "{label}: /readyz said 503 during the long outage"
    );
    let mut recoveries = Vec::new();
    for (_, end) in outages {
        let sending = back_within_5s(&all, *end, label);
        let ready_again = ready
            .iter()
            .find(|(at, ok)| *ok && at > end)
            .expect("ready again")
            .0
            .duration_since(*end);
        assert!(
            ready_again <= Duration::from_secs(5),
            "{label}: /readyz 200 again {ready_again:?} after the return"
        );
        recoveries.push((sending, ready_again));
    }
    let acked = all.iter().filter(|s| s.answer.is_ok()).count();
    let mut took: Vec<Duration> = refused.iter().map(|s| s.took).collect();
    took.sort();
    eprintln!(
        "{label}: {} sends, {acked} acknowledged, {} refused in {:?} (median), {:?} (slowest); \
         after each return (sends ok, ready): {recoveries:?}",
        all.len(),
        refused.len(),
        took[took.len() / 2],
        took.last().expect("refusals")
    );
}

/// `status` is UNAVAILABLE with `reason` and RetryInfo (`what` names the call).
pub fn assert_retryable(status: &Status, reason: &str, what: &str) {
    assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
    assert_eq!(common::reason(status), reason, "{what}: {status:?}");
    assert!(
        status.get_error_details().retry_info().is_some(),
        "{what}: RetryInfo: {status:?}"
    );
}

/// Some send started after `end` (a dependency's return) succeeded within 5 s of it; how
/// long after `end` the first did.
pub fn back_within_5s(all: &[&Sent], end: Instant, dependency: &str) -> Duration {
    let back = all
        .iter()
        .filter(|s| s.answer.is_ok() && s.started > end)
        .map(|s| s.started + s.took)
        .min()
        .expect("sends succeed after the outage")
        .duration_since(end);
    assert!(
        back <= Duration::from_secs(5),
        "sends succeed again {back:?} after {dependency} returned"
    );
    back
}

/// Every refused send retried with its key until it is stored; the messages, by key, of the
/// acknowledged and the retried sends.
pub async fn settle(
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
pub async fn nothing_lost(
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

/// Every inbox entry of `user`.
pub async fn inbox(mesh: &TestMesh, user: &SignedIn) -> Vec<notify_pb::InboxEntry> {
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
