//! Pins: who may pin where, the no-ops, the cap, the pages, and the cap under racing pins.

use chrono::Duration;
use echo_ids::{ConversationId, MessageId, UserId};
use echo_message::error::MessageError;
use echo_message::reactions::{MAX_PINS, PinPosition};
use echo_message::store::{Kind, Message};
use echo_proto::echo::message::v1 as pb;
use pb::conversation_event::Kind as Event;
use tokio::task::JoinSet;

use crate::common::*;

/// Makes `user` an ADMIN of `conversation` behind the store's back.
async fn make_admin(env: &Env, conversation: ConversationId, user: UserId) {
    let sql = "UPDATE members SET role = $1 WHERE conversation_id = $2 AND user_id = $3";
    let changed = env
        .exec(
            sql,
            &[
                Val::Int(2),
                Val::Id(conversation.into()),
                Val::Id(user.into()),
            ],
        )
        .await;
    assert_eq!(changed, 1);
}

/// The message ids of MessagePinned (true) / MessageUnpinned (false) events, with seqs.
async fn pin_events(env: &Env, conversation: ConversationId) -> Vec<(i64, bool, String)> {
    let events = env.events_of(conversation).await;
    events
        .iter()
        .filter_map(|event| match kind(event) {
            Event::MessagePinned(p) => Some((event.seq, true, p.message_id.clone())),
            Event::MessageUnpinned(p) => Some((event.seq, false, p.message_id.clone())),
            _ => None,
        })
        .collect()
}

/// OWNER and ADMIN pin in a GROUP or CHANNEL, MEMBERs may not; anyone in a DIRECT (a block
/// does not stop pins). Pinning a pinned message answers the existing pin with no seq;
/// unpinning an unpinned one too. Pins are not activity. Deleted messages: MESSAGE_DELETED
/// to pin, OK (nothing pinned) to unpin.
pub async fn pins_rules_and_events(env: &Env) {
    let [owner, admin, member, eve] = env.users().await;
    let store = &env.store;
    for kind in [Kind::Group, Kind::Channel] {
        let group = env
            .group_at(kind, device(owner), &[admin, member], now())
            .await;
        make_admin(env, group.id, admin).await;
        let message = env.say(device(owner), group.id, "rules").await;
        let (g, m) = (group.id, message.id);
        let activity = env.conversation(g).await.last_activity_at;
        assert_refused(store.pin(device(member), g, m, now()).await, "member");
        assert!(matches!(
            store.pin(device(eve), g, m, now()).await,
            Err(MessageError::ConversationNotFound)
        ));
        assert!(matches!(
            store
                .pin(device(admin), g, MessageId::new_v7(), now())
                .await,
            Err(MessageError::MessageNotFound)
        ));
        let at = now();
        let (pin, created) = store.pin(device(admin), g, m, at).await.unwrap();
        assert!(created);
        assert_eq!(
            (
                pin.message_id,
                pin.conversation_id,
                pin.pinned_by,
                pin.pinned_at
            ),
            (m, g, admin, at)
        );
        let later = at + Duration::seconds(5);
        let (again, created) = store.pin(device(owner), g, m, later).await.unwrap();
        assert!(!created, "already pinned");
        assert_eq!(again, pin, "the existing pin answers");
        assert_eq!(
            store.pinned_among(&[m, MessageId::new_v7()]).await.unwrap(),
            [m]
        );
        assert_refused(store.unpin(device(member), g, m, now()).await, "member");
        assert!(store.unpin(device(owner), g, m, now()).await.unwrap());
        assert!(!store.unpin(device(owner), g, m, now()).await.unwrap());
        assert!(store.pinned_among(&[m]).await.unwrap().is_empty());
        let seq = message.seq;
        assert_eq!(
            pin_events(env, g).await,
            [
                (seq + 1, true, m.to_string()),
                (seq + 2, false, m.to_string())
            ]
        );
        let events = env.events_of(g).await;
        let actors: Vec<&str> = events[events.len() - 2..]
            .iter()
            .map(|e| e.actor_user_id.as_str())
            .collect();
        assert_eq!(actors, [admin.to_string(), owner.to_string()]);
        let after = env.conversation(g).await;
        assert_eq!(
            (after.last_seq, after.last_activity_at),
            (seq + 2, activity)
        );
    }

    let [ada, bob] = env.users().await;
    let direct = env.direct(device(ada), bob).await;
    let message = env.say(device(ada), direct.id, "remember this").await;
    env.set_block(ada, bob, true).await;
    let (pin, created) = store
        .pin(device(bob), direct.id, message.id, now())
        .await
        .unwrap();
    assert!(created && pin.pinned_by == bob);
    assert!(
        store
            .unpin(device(ada), direct.id, message.id, now())
            .await
            .unwrap()
    );
    store
        .pin(device(ada), direct.id, message.id, now())
        .await
        .unwrap();
    let deleted = "UPDATE messages SET deleted_at = $1, content = NULL WHERE message_id = $2";
    env.exec(
        deleted,
        &[Val::Time(Some(now())), Val::Id(message.id.into())],
    )
    .await;
    env.exec("DELETE FROM pins", &[]).await;
    assert!(matches!(
        store.pin(device(ada), direct.id, message.id, now()).await,
        Err(MessageError::MessageDeleted)
    ));
    let unpinned = store.unpin(device(ada), direct.id, message.id, now()).await;
    assert!(!unpinned.unwrap(), "nothing to unpin");
}

fn assert_refused<T: std::fmt::Debug>(outcome: Result<T, MessageError>, who: &str) {
    assert!(
        matches!(outcome, Err(MessageError::NotAllowed)),
        "{who}: {outcome:?}"
    );
}

/// Sends `n` messages into `conversation` as `user`.
async fn messages(env: &Env, user: UserId, conversation: ConversationId, n: usize) -> Vec<Message> {
    say_many(env, device(user), conversation, n, now()).await
}

/// At most 50 pins per conversation: the 51st is refused (no seq), a repeat at the cap is
/// OK, and unpinning one makes room.
pub async fn pin_cap(env: &Env) {
    let [ada, bob] = env.users().await;
    let direct = env.direct(device(ada), bob).await;
    let cap = usize::try_from(MAX_PINS).unwrap();
    assert_eq!(cap, 50);
    let sent = messages(env, ada, direct.id, cap + 1).await;
    for message in &sent[..cap] {
        let pinned = env
            .store
            .pin(device(bob), direct.id, message.id, now())
            .await;
        assert!(pinned.unwrap().1);
    }
    let seq = env.conversation(direct.id).await.last_seq;
    let last = sent[cap].id;
    assert!(matches!(
        env.store.pin(device(ada), direct.id, last, now()).await,
        Err(MessageError::LimitExceeded("pins"))
    ));
    let repeat = env
        .store
        .pin(device(ada), direct.id, sent[0].id, now())
        .await;
    assert!(!repeat.unwrap().1);
    assert_eq!(env.conversation(direct.id).await.last_seq, seq);
    // The cap counts this conversation only.
    let other = env.group(device(ada), &[bob]).await;
    let elsewhere = env.say(device(ada), other.id, "x").await;
    assert!(
        env.store
            .pin(device(ada), other.id, elsewhere.id, now())
            .await
            .unwrap()
            .1
    );
    assert!(
        env.store
            .unpin(device(ada), direct.id, sent[7].id, now())
            .await
            .unwrap()
    );
    assert!(
        env.store
            .pin(device(ada), direct.id, last, now())
            .await
            .unwrap()
            .1
    );
    assert_eq!(env.rows("pins").await, 51);
}

/// Pins list newest pin first, continue after a position, and show only messages from the
/// reader's join on.
pub async fn pin_pages_newest_first_from_join(env: &Env) {
    let [ada, bob] = env.users().await;
    let group = env.group(device(ada), &[bob]).await;
    let sent = messages(env, ada, group.id, 5).await;
    let start = now();
    // Pinned in the order 3, 0, 4, 1, 2: newest first is 2, 1, 4, 0, 3.
    for (k, n) in [3, 0, 4, 1, 2].into_iter().enumerate() {
        let at = start + Duration::seconds(i64::try_from(k).unwrap());
        env.store
            .pin(device(ada), group.id, sent[n].id, at)
            .await
            .unwrap();
    }
    let order: Vec<MessageId> = [2, 1, 4, 0, 3].iter().map(|&n| sent[n].id).collect();
    let listed = |above: i64, after: Option<PinPosition>, limit: usize| {
        let store = env.store.clone();
        async move {
            let pins = store
                .pins(group.id, above, after.as_ref(), limit)
                .await
                .unwrap();
            pins.into_iter().map(|p| p.message_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(0, None, 50).await, order);
    let page = env.store.pins(group.id, 0, None, 2).await.unwrap();
    let position = PinPosition {
        conversation_id: group.id,
        pinned_micros: page[1].pinned_at.timestamp_micros(),
        message_id: page[1].message_id,
    };
    assert_eq!(listed(0, Some(position), 2).await, order[2..4]);
    // A member who joined after message 1 sees pins of messages 2, 3, 4 only.
    let visible: Vec<MessageId> = order
        .iter()
        .copied()
        .filter(|id| sent[2..].iter().any(|m| m.id == *id))
        .collect();
    assert_eq!(listed(sent[1].seq, None, 50).await, visible);
    let elsewhere = env.group(device(ada), &[bob]).await;
    assert!(listed_in(env, elsewhere.id).await.is_empty());
}

async fn listed_in(env: &Env, conversation: ConversationId) -> Vec<MessageId> {
    let pins = env.store.pins(conversation, 0, None, 50).await.unwrap();
    pins.into_iter().map(|p| p.message_id).collect()
}

/// Racing pins of 60 messages at once stop at exactly 50 pins and 50 events.
pub async fn concurrent_pins_respect_the_cap(env: &Env) {
    let [ada, bob] = env.users().await;
    let direct = env.direct(device(ada), bob).await;
    let sent = messages(env, ada, direct.id, 60).await;
    let mut calls = JoinSet::new();
    for message in &sent {
        let store = env.store.clone();
        let (conversation, id) = (direct.id, message.id);
        calls.spawn(async move { store.pin(device(bob), conversation, id, now()).await });
    }
    let (mut pinned, mut refused) = (0, 0);
    while let Some(outcome) = calls.join_next().await {
        match outcome.unwrap() {
            Ok((_, true)) => pinned += 1,
            Err(MessageError::LimitExceeded("pins")) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((pinned, refused), (50, 10));
    assert_eq!(env.rows("pins").await, 50);
    assert_eq!(pin_events(env, direct.id).await.len(), 50);
}
