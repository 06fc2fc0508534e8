//! What must hold when calls race: gap-free seqs, one message per idempotency key, one
//! conversation per pair or per creation key.

use std::collections::{HashMap, HashSet};

use echo_ids::{ConversationId, UserId};
use echo_message::store::{Kind, NewConversation, Sent};
use tokio::task::JoinSet;

use crate::common::*;

/// Fifty devices sending into one conversation at once each get a message, with seqs exactly
/// the next fifty after the creation seqs (no gap, no repeat), one event each, and counters
/// that add up.
pub async fn concurrent_sends_take_contiguous_seqs(env: &Env) {
    const SENDS: usize = 50;
    let users: [UserId; 5] = env.users().await;
    let group = env.group(device(users[0]), &users[1..]).await;
    let first = group.last_seq + 1;
    assert_eq!(first, 7);

    let mut sends = JoinSet::new();
    for n in 0..SENDS {
        let store = env.store.clone();
        let actor = device(users[n % users.len()]);
        let new = text_message(group.id, &format!("message {n}"));
        sends.spawn(async move { store.send(actor, &new, now()).await });
    }
    let mut sent = Vec::with_capacity(SENDS);
    while let Some(outcome) = sends.join_next().await {
        match outcome.unwrap() {
            Ok(Sent::Created(message)) => sent.push(message),
            other => panic!("expected a new message, got {other:?}"),
        }
    }
    sent.sort_by_key(|m| m.seq);
    let seqs: Vec<i64> = sent.iter().map(|m| m.seq).collect();
    let last = first + i64::try_from(SENDS).unwrap() - 1;
    assert_eq!(seqs, (first..=last).collect::<Vec<_>>());
    let conversation = env.conversation(group.id).await;
    assert_eq!(conversation.last_seq, last);
    assert_eq!(conversation.last_message_id, Some(sent.last().unwrap().id));
    assert_eq!(env.rows("messages").await, SENDS as i64);
    let created = env.events_of(group.id).await.len();
    assert_eq!(created, usize::try_from(last).unwrap());

    // Sending reads nothing: each member's watermark stays where joining put it, and they
    // count every message of the others (never their own).
    for user in users {
        let unread = sent.iter().filter(|m| m.sender_id != user).count();
        let member = env.member(group.id, user).await;
        assert!(
            member.last_read_seq < first,
            "{user}: {}",
            member.last_read_seq
        );
        assert_eq!(
            member.unread_count,
            i32::try_from(unread).unwrap(),
            "{user}"
        );
        assert_eq!(member.mention_count, 0);
    }
}

/// Ten concurrent tries of one (device, client_message_id) store one message and one event;
/// every call answers that message.
pub async fn concurrent_retries_store_one_message(env: &Env) {
    const TRIES: usize = 10;
    let [ada, bob] = env.users().await;
    let actor = device(ada);
    let direct = env.direct(actor, bob).await;
    let new = text_message(direct.id, "only once");
    let mut tries = JoinSet::new();
    for _ in 0..TRIES {
        let store = env.store.clone();
        let attempt = retry(&new);
        tries.spawn(async move { store.send(actor, &attempt, now()).await });
    }
    let (mut created, mut ids) = (0, HashSet::new());
    while let Some(outcome) = tries.join_next().await {
        match outcome.unwrap() {
            Ok(Sent::Created(message)) => {
                created += 1;
                ids.insert(message.id);
            }
            Ok(Sent::Repeated(message)) => {
                ids.insert(message.id);
            }
            Err(error) => panic!("{error:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1, "every call answers the same message: {ids:?}");
    assert_eq!(env.rows("messages").await, 1);
    assert_eq!(env.conversation(direct.id).await.last_seq, 4);
    assert_eq!(env.events_of(direct.id).await.len(), 4);
}

/// Both users of ten pairs open their direct conversation at the same moment, twice each:
/// one conversation per pair, created by exactly one call.
pub async fn concurrent_direct_creation(env: &Env) {
    const PAIRS: usize = 10;
    let mut pairs = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let [a, b] = env.users().await;
        pairs.push((a, b));
    }
    let mut calls = JoinSet::new();
    for &(a, b) in &pairs {
        for (actor, peer) in [(a, b), (b, a), (a, b), (b, a)] {
            let store = env.store.clone();
            calls.spawn(async move {
                let outcome = store
                    .create_direct(device(actor), peer, ConversationId::new_v7(), now())
                    .await;
                (actor.min(peer), outcome.expect("create direct"))
            });
        }
    }
    let mut by_pair: HashMap<UserId, Vec<(ConversationId, bool)>> = HashMap::new();
    while let Some(call) = calls.join_next().await {
        let (pair, (conversation, created)) = call.unwrap();
        by_pair
            .entry(pair)
            .or_default()
            .push((conversation.id, created));
    }
    assert_eq!(by_pair.len(), PAIRS);
    for outcomes in by_pair.values() {
        let ids: HashSet<ConversationId> = outcomes.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), 1, "{outcomes:?}");
        assert_eq!(outcomes.iter().filter(|(_, created)| *created).count(), 1);
    }
    assert_eq!(env.rows("conversations").await, PAIRS as i64);
    assert_eq!(env.rows("members").await, 2 * PAIRS as i64);
    assert_eq!(env.rows("outbox").await, 5 * PAIRS as i64);
}

/// Ten concurrent tries of one creation key create one conversation.
pub async fn concurrent_creation_retries(env: &Env) {
    let [owner, member] = env.users().await;
    let new = new_group(Kind::Group, &[member]);
    let mut tries = JoinSet::new();
    for _ in 0..10 {
        let store = env.store.clone();
        let attempt = NewConversation {
            id: ConversationId::new_v7(),
            ..new.clone()
        };
        tries.spawn(async move {
            store
                .create_conversation(device(owner), &attempt, now())
                .await
        });
    }
    let (mut created, mut ids) = (0, HashSet::new());
    while let Some(outcome) = tries.join_next().await {
        let (conversation, new) = outcome.unwrap().expect("create conversation");
        created += usize::from(new);
        ids.insert(conversation.id);
    }
    assert_eq!((created, ids.len()), (1, 1));
    assert_eq!(env.rows("conversations").await, 1);
    assert_eq!(env.rows("outbox").await, 5);
}
