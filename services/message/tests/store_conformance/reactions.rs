//! Reactions and pins: set-like writes with exact events (the count after each change), the
//! no-ops that take no seq, every refusal, the caps, the pages, the tallies per reader, and
//! what must hold when calls race.
//! Over 400 lines as one piece: one feature (reactions), its events, refusals and races.

use chrono::{DateTime, Duration, Utc};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_message::error::MessageError;
use echo_message::reactions::{MAX_EMOJIS_PER_USER, ReactionPosition};
use echo_message::store::{Actor, Kind, Message, ReactionTally};
use echo_proto::echo::message::v1 as pb;
use pb::conversation_event::Kind as Event;
use tokio::task::JoinSet;

use crate::common::*;

/// Asserts `outcome` is refused with a `MessageError` matching `$pattern`.
macro_rules! assert_refused {
    ($outcome:expr, $pattern:pat) => {{
        let outcome = $outcome;
        assert!(matches!(outcome, Err($pattern)), "{outcome:?}");
    }};
}

/// The `n`-th emoji of a run of distinct smileys.
fn smiley(n: u32) -> String {
    char::from_u32(0x1F600 + n).unwrap().to_string()
}

/// ReactionAdded/ReactionRemoved as (seq, added, user, emoji, count).
fn reaction_event(event: &pb::ConversationEvent) -> Option<(i64, bool, String, String, i32)> {
    match kind(event) {
        Event::ReactionAdded(r) => {
            Some((event.seq, true, r.user_id.clone(), r.emoji.clone(), r.count))
        }
        Event::ReactionRemoved(r) => Some((
            event.seq,
            false,
            r.user_id.clone(),
            r.emoji.clone(),
            r.count,
        )),
        _ => None,
    }
}

/// The last event of `conversation`, which must have `seq`, by `actor`.
async fn last_event(env: &Env, conversation: ConversationId, seq: i64, actor: UserId) -> Event {
    let events = env.events_of(conversation).await;
    let last = events.last().expect("an event");
    assert_eq!(last.seq, seq);
    assert_eq!(last.actor_user_id, actor.to_string());
    assert_eq!(env.conversation(conversation).await.last_seq, seq);
    kind(last).clone()
}

async fn add(
    env: &Env,
    actor: Actor,
    message: &Message,
    emoji: &str,
) -> Result<bool, MessageError> {
    let (conversation, id) = (message.conversation_id, message.id);
    env.store
        .add_reaction(actor, conversation, id, emoji, now())
        .await
}

async fn remove(
    env: &Env,
    actor: Actor,
    message: &Message,
    emoji: &str,
) -> Result<bool, MessageError> {
    let (conversation, id) = (message.conversation_id, message.id);
    env.store
        .remove_reaction(actor, conversation, id, emoji, now())
        .await
}

/// Marks `message` deleted for everyone behind the store's back (as DeleteMessage does,
/// which erases its reactions and pin too).
async fn delete_for_everyone(env: &Env, message: &Message) {
    for sql in [
        "DELETE FROM reactions WHERE message_id = $1",
        "DELETE FROM pins WHERE message_id = $1",
    ] {
        env.exec(sql, &[Val::Id(message.id.into())]).await;
    }
    let sql = "UPDATE messages SET deleted_at = $1, content = NULL WHERE message_id = $2";
    let deleted = env
        .exec(sql, &[Val::Time(Some(now())), Val::Id(message.id.into())])
        .await;
    assert_eq!(deleted, 1);
}

/// Each change takes the next seq and one event with the emoji's count after it (CHANNEL
/// members react too); repeating a change is OK with no seq; activity does not move.
pub async fn reactions_take_seqs_with_exact_counts(env: &Env) {
    let [owner, bob, cy] = env.users().await;
    let (bob_d, cy_d) = (device(bob), device(cy));
    let channel = env
        .group_at(Kind::Channel, device(owner), &[bob, cy], now())
        .await;
    let post = env.say(device(owner), channel.id, "news").await;
    assert_eq!(post.seq, 5);
    let activity = env.conversation(channel.id).await.last_activity_at;
    let thumbs = "👍";
    let expect = |seq, added, user: UserId, emoji: &str, count| {
        (seq, added, user.to_string(), emoji.to_owned(), count)
    };

    assert!(add(env, bob_d, &post, thumbs).await.unwrap());
    assert!(add(env, cy_d, &post, thumbs).await.unwrap());
    assert!(
        !add(env, device(bob), &post, thumbs).await.unwrap(),
        "no-op"
    );
    assert!(add(env, bob_d, &post, "❤️").await.unwrap());
    assert!(remove(env, bob_d, &post, thumbs).await.unwrap());
    assert!(!remove(env, bob_d, &post, thumbs).await.unwrap(), "no-op");
    assert!(
        !remove(env, bob_d, &post, "🎉").await.unwrap(),
        "never added"
    );
    assert!(remove(env, cy_d, &post, thumbs).await.unwrap());

    let events: Vec<_> = env
        .events_of(channel.id)
        .await
        .iter()
        .filter_map(reaction_event)
        .collect();
    assert_eq!(
        events,
        [
            expect(6, true, bob, thumbs, 1),
            expect(7, true, cy, thumbs, 2),
            expect(8, true, bob, "❤️", 1),
            expect(9, false, bob, thumbs, 1),
            expect(10, false, cy, thumbs, 0),
        ]
    );
    let after = env.conversation(channel.id).await;
    assert_eq!(after.last_seq, 10);
    assert_eq!(
        after.last_activity_at, activity,
        "reactions are not activity"
    );
    assert_eq!(after.last_message_id, Some(post.id));
    assert_eq!(env.rows("reactions").await, 1);
    let tallies = env.store.reaction_tallies(bob, &[post.id]).await.unwrap();
    assert_eq!(tallies.len(), 1);
    assert_eq!((tallies[0].emoji.as_str(), tallies[0].count), ("❤️", 1));
    assert!(tallies[0].reacted_by_reader);
}

/// Every refusal (membership, visibility, deletion) takes no seq and writes nothing; taking
/// back a reaction of a message deleted for everyone is OK (it has none).
pub async fn reaction_refusals(env: &Env) {
    let [owner, bob, eve] = env.users().await;
    let bob_d = device(bob);
    let group = env.group(device(owner), &[bob]).await;
    let other = env.group(device(owner), &[bob]).await;
    let message = env.say(device(owner), group.id, "hi").await;
    let elsewhere = env.say(device(owner), other.id, "there").await;
    let (g, m) = (group.id, message.id);
    let store = &env.store;
    assert_refused!(
        store.add_reaction(device(eve), g, m, "👍", now()).await,
        MessageError::ConversationNotFound
    );
    assert_refused!(
        store
            .add_reaction(bob_d, ConversationId::new_v7(), m, "👍", now())
            .await,
        MessageError::ConversationNotFound
    );
    for missing in [MessageId::new_v7(), elsewhere.id] {
        assert_refused!(
            store.add_reaction(bob_d, g, missing, "👍", now()).await,
            MessageError::MessageNotFound
        );
        assert_refused!(
            store.remove_reaction(bob_d, g, missing, "👍", now()).await,
            MessageError::MessageNotFound
        );
    }
    // Deleted for bob alone: not visible to him, still to others.
    let hide = "INSERT INTO hidden_messages (user_id, message_id, conversation_id, seq, hidden_at) \
                VALUES ($1, $2, $3, $4, $5)";
    let args = [
        Val::Id(bob.into()),
        Val::Id(m.into()),
        Val::Id(g.into()),
        Val::Int(message.seq),
        Val::Time(Some(now())),
    ];
    env.exec(hide, &args).await;
    assert_refused!(
        add(env, bob_d, &message, "👍").await,
        MessageError::MessageNotFound
    );
    assert!(add(env, device(owner), &message, "👍").await.unwrap());
    env.exec("DELETE FROM hidden_messages", &[]).await;
    // A message from before bob's join is not his to react to.
    let sql = "UPDATE members SET joined_at_seq = $1 WHERE conversation_id = $2 AND user_id = $3";
    env.exec(
        sql,
        &[
            Val::Int(message.seq),
            Val::Id(g.into()),
            Val::Id(bob.into()),
        ],
    )
    .await;
    assert_refused!(
        add(env, bob_d, &message, "👍").await,
        MessageError::MessageNotFound
    );
    env.exec(sql, &[Val::Int(3), Val::Id(g.into()), Val::Id(bob.into())])
        .await;
    assert!(add(env, bob_d, &message, "😀").await.unwrap());
    delete_for_everyone(env, &message).await;
    assert_refused!(
        add(env, bob_d, &message, "👍").await,
        MessageError::MessageDeleted
    );
    assert!(!remove(env, bob_d, &message, "😀").await.unwrap());
    // A former member is a stranger.
    let sql = "UPDATE members SET left_at_seq = $1 WHERE conversation_id = $2 AND user_id = $3";
    env.exec(sql, &[Val::Int(99), Val::Id(g.into()), Val::Id(bob.into())])
        .await;
    let fresh = env.say(device(owner), g, "after").await;
    assert_refused!(
        add(env, bob_d, &fresh, "👍").await,
        MessageError::ConversationNotFound
    );
    assert_refused!(
        remove(env, bob_d, &fresh, "👍").await,
        MessageError::ConversationNotFound
    );
    assert_eq!(env.conversation(g).await.last_seq, fresh.seq);
    let reactions = env
        .events_of(g)
        .await
        .iter()
        .filter_map(reaction_event)
        .count();
    assert_eq!(reactions, 2, "the owner's and bob's 😀");
}

/// A block in a DIRECT conversation stops reacting both ways, not taking back; unblocking
/// lets reactions in again.
pub async fn blocks_stop_reactions_in_direct(env: &Env) {
    let [ada, bob] = env.users().await;
    let (ada_d, bob_d) = (device(ada), device(bob));
    let direct = env.direct(ada_d, bob).await;
    let message = env.say(ada_d, direct.id, "hi").await;
    assert!(add(env, bob_d, &message, "👍").await.unwrap());
    env.set_block(ada, bob, true).await;
    assert_refused!(
        add(env, bob_d, &message, "😀").await,
        MessageError::Blocked(None)
    );
    assert_refused!(
        add(env, ada_d, &message, "😀").await,
        MessageError::Blocked(None)
    );
    let seq = env.conversation(direct.id).await.last_seq;
    assert!(remove(env, bob_d, &message, "👍").await.unwrap());
    let removed = last_event(env, direct.id, seq + 1, bob).await;
    assert!(matches!(removed, Event::ReactionRemoved(r) if r.count == 0));
    env.set_block(ada, bob, false).await;
    assert!(add(env, ada_d, &message, "😀").await.unwrap());
}

/// At most 20 distinct emojis per user per message; a repeat at the cap is still OK; others
/// are not affected; taking one back makes room.
pub async fn emoji_cap_per_user_and_message(env: &Env) {
    let [ada, bob] = env.users().await;
    let (ada_d, bob_d) = (device(ada), device(bob));
    let group = env.group(ada_d, &[bob]).await;
    let message = env.say(ada_d, group.id, "react!").await;
    let cap = u32::try_from(MAX_EMOJIS_PER_USER).unwrap();
    assert_eq!(cap, 20);
    for n in 0..cap {
        assert!(add(env, bob_d, &message, &smiley(n)).await.unwrap());
    }
    let seq = env.conversation(group.id).await.last_seq;
    assert_refused!(
        add(env, bob_d, &message, &smiley(cap)).await,
        MessageError::LimitExceeded("reactions")
    );
    assert!(!add(env, bob_d, &message, &smiley(0)).await.unwrap());
    assert_eq!(env.conversation(group.id).await.last_seq, seq);
    assert!(add(env, ada_d, &message, &smiley(cap)).await.unwrap());
    let other = env.say(ada_d, group.id, "another").await;
    assert!(add(env, bob_d, &other, &smiley(cap)).await.unwrap());
    assert!(remove(env, bob_d, &message, &smiley(3)).await.unwrap());
    assert!(add(env, bob_d, &message, &smiley(cap)).await.unwrap());
    let added = last_event(env, group.id, seq + 5, bob).await;
    assert!(matches!(added, Event::ReactionAdded(r) if r.count == 2 && r.emoji == smiley(cap)));
}

/// Pages of reactions are oldest first, filter by emoji, and continue after a position.
pub async fn reaction_pages_oldest_first(env: &Env) {
    let users: [UserId; 4] = env.users().await;
    let group = env.group(device(users[0]), &users[1..]).await;
    let message = env.say(device(users[0]), group.id, "rate me").await;
    let start = now();
    let mut expected = Vec::new();
    for (n, user) in users.iter().enumerate() {
        for (k, emoji) in ["👍", "🔥"].into_iter().enumerate() {
            // 👍 of user 0 first, then 🔥 of user 0, … one second apart.
            let at = start + Duration::seconds(i64::try_from(2 * n + k).unwrap());
            let added = env
                .store
                .add_reaction(device(*user), group.id, message.id, emoji, at)
                .await;
            assert!(added.unwrap());
            expected.push((*user, emoji.to_owned(), at));
        }
    }
    let listed = |emoji: Option<&'static str>, after: Option<ReactionPosition>, limit| {
        let store = env.store.clone();
        async move {
            let rows = store
                .reactions(message.id, emoji, after.as_ref(), limit)
                .await
                .unwrap();
            rows.into_iter()
                .map(|r| {
                    assert_eq!(r.message_id, message.id);
                    (r.user_id, r.emoji, r.created_at)
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(None, None, 100).await, expected);
    let fire: Vec<_> = expected.iter().filter(|r| r.1 == "🔥").cloned().collect();
    assert_eq!(listed(Some("🔥"), None, 100).await, fire);
    let first = listed(None, None, 3).await;
    assert_eq!(first, expected[..3]);
    let (user_id, emoji, at) = first[2].clone();
    let position = |filter: Option<&str>| ReactionPosition {
        message_id: message.id,
        filter: filter.map(str::to_owned),
        created_micros: at.timestamp_micros(),
        user_id,
        emoji: emoji.clone(),
    };
    assert_eq!(listed(None, Some(position(None)), 3).await, expected[3..6]);
    assert_eq!(
        listed(Some("🔥"), Some(position(Some("🔥"))), 100).await,
        fire[1..]
    );
}

/// Tallies: per message and emoji, the count, whether this reader reacted, and the first
/// reaction's time; messages without reactions have none.
pub async fn tallies_per_reader(env: &Env) {
    let [ada, bob, cy] = env.users().await;
    let group = env.group(device(ada), &[bob, cy]).await;
    let first = env.say(device(ada), group.id, "one").await;
    let second = env.say(device(ada), group.id, "two").await;
    let quiet = env.say(device(ada), group.id, "three").await;
    let t0 = now();
    let at = |s: i64| t0 + Duration::seconds(s);
    let react = |user: UserId, message: MessageId, emoji: &'static str, at: DateTime<Utc>| {
        let store = env.store.clone();
        let conversation = group.id;
        async move {
            let added = store
                .add_reaction(device(user), conversation, message, emoji, at)
                .await;
            assert!(added.unwrap());
        }
    };
    react(cy, first.id, "❤️", at(0)).await;
    react(bob, first.id, "👍", at(1)).await;
    react(cy, first.id, "👍", at(2)).await;
    react(bob, second.id, "👍", at(3)).await;
    let ids = [first.id, second.id, quiet.id];
    let tallies = |reader: UserId| {
        let store = env.store.clone();
        async move {
            let mut tallies = store.reaction_tallies(reader, &ids).await.unwrap();
            tallies.sort_by_key(|t| t.first_at);
            tallies
        }
    };
    let tally = |message_id, emoji: &str, count, mine, first_at| ReactionTally {
        message_id,
        emoji: emoji.to_owned(),
        count,
        reacted_by_reader: mine,
        first_at,
    };
    for (reader, heart, thumbs_first, thumbs_second) in [
        (ada, false, false, false),
        (bob, false, true, true),
        (cy, true, true, false),
    ] {
        assert_eq!(
            tallies(reader).await,
            [
                tally(first.id, "❤️", 1, heart, at(0)),
                tally(first.id, "👍", 2, thumbs_first, at(1)),
                tally(second.id, "👍", 1, thumbs_second, at(3)),
            ],
            "reader {reader}"
        );
    }
    assert!(
        env.store
            .reaction_tallies(ada, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Twenty members reacting with one emoji at once: twenty events whose counts are exactly
/// 1..=20 in seq order (each count is taken under the conversation's lock).
pub async fn concurrent_reactions_count_exactly(env: &Env) {
    const USERS: usize = 20;
    let owner = env.user().await;
    let mut members = Vec::with_capacity(USERS);
    for _ in 0..USERS {
        members.push(env.user().await);
    }
    let group = env.group(device(owner), &members).await;
    let message = env.say(device(owner), group.id, "vote").await;
    let mut calls = JoinSet::new();
    for user in members.iter().copied() {
        let store = env.store.clone();
        let (conversation, id) = (group.id, message.id);
        calls.spawn(async move {
            store
                .add_reaction(device(user), conversation, id, "👍", now())
                .await
        });
    }
    while let Some(outcome) = calls.join_next().await {
        assert!(outcome.unwrap().unwrap());
    }
    let events: Vec<_> = env
        .events_of(group.id)
        .await
        .iter()
        .filter_map(reaction_event)
        .collect();
    let counts: Vec<i32> = events.iter().map(|e| e.4).collect();
    assert_eq!(counts, (1..=20).collect::<Vec<i32>>());
    let seqs: Vec<i64> = events.iter().map(|e| e.0).collect();
    let first = message.seq + 1;
    assert_eq!(seqs, (first..first + 20).collect::<Vec<i64>>());
    assert_eq!(env.rows("reactions").await, 20);
}

/// One user's concurrent duplicates store one row and one event; every call is OK.
pub async fn concurrent_duplicate_reaction_once(env: &Env) {
    let [ada, bob] = env.users().await;
    let direct = env.direct(device(ada), bob).await;
    let message = env.say(device(ada), direct.id, "hi").await;
    let mut calls = JoinSet::new();
    for _ in 0..10 {
        let store = env.store.clone();
        let (conversation, id) = (direct.id, message.id);
        calls.spawn(async move {
            store
                .add_reaction(device(bob), conversation, id, "🔥", now())
                .await
        });
    }
    let mut added = 0;
    while let Some(outcome) = calls.join_next().await {
        added += usize::from(outcome.unwrap().unwrap());
    }
    assert_eq!(added, 1);
    assert_eq!(env.rows("reactions").await, 1);
    let events = env.events_of(direct.id).await;
    assert_eq!(events.iter().filter_map(reaction_event).count(), 1);
    assert_eq!(env.conversation(direct.id).await.last_seq, message.seq + 1);
}

#[path = "reactions_pins.rs"]
mod pins;
use pins::*;

conformance!(
    reactions_take_seqs_with_exact_counts,
    reaction_refusals,
    blocks_stop_reactions_in_direct,
    emoji_cap_per_user_and_message,
    reaction_pages_oldest_first,
    tallies_per_reader,
    concurrent_reactions_count_exactly,
    concurrent_duplicate_reaction_once,
    pins_rules_and_events,
    pin_cap,
    pin_pages_newest_first_from_join,
    concurrent_pins_respect_the_cap,
);
