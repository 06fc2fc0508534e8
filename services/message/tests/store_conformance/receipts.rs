//! Read state: a member's private settings (the pinned cap, also under concurrency), the
//! forward-only read watermark with its exact recount, and per-device delivery receipts with
//! what other members see of them.
//! Over 400 lines as one piece: one feature (read state), its settings, watermark and receipts.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use echo_ids::{ConversationId, UserId};
use echo_message::error::MessageError;
use echo_message::store::{
    Actor, Kind, ListFilter, MemberReceipt, Message, MessageStore, SettingsChange, SettingsUpdate,
};
use echo_proto::echo::message::v1 as pb;

use crate::common::*;

/// Asserts that `$result` is the refusal `$pattern`.
macro_rules! assert_refused {
    ($result:expr, $pattern:pat) => {{
        let result = $result;
        assert!(matches!(result, Err($pattern)), "{result:?}");
    }};
}

/// Asserts that `result` is the refusal of a non-member.
fn not_found<T: std::fmt::Debug>(result: Result<T, MessageError>) {
    let not_found = matches!(result, Err(MessageError::ConversationNotFound));
    assert!(not_found, "{result:?}");
}

/// `user`'s per-user events, in append order.
async fn events_of_user(env: &Env, user: UserId) -> Vec<pb::UserEvent> {
    let id = user.to_string();
    let mut events = env.user_events().await;
    events.retain(|event| event.user_id == id);
    events
}

fn pin(pinned: bool) -> SettingsChange {
    SettingsChange {
        pinned: Some(pinned),
        ..SettingsChange::default()
    }
}

async fn settings(
    env: &Env,
    actor: Actor,
    conversation: ConversationId,
    change: SettingsChange,
) -> Result<SettingsUpdate, MessageError> {
    env.store
        .update_settings(actor, conversation, &change, now())
        .await
}

/// `actor`'s user event number `seq`, a MemberSettingsChanged from `actor`'s device, with the
/// paths of its mask.
async fn settings_event(
    env: &Env,
    actor: Actor,
    seq: i64,
) -> (pb::MemberSettingsChanged, Vec<String>) {
    let events = events_of_user(env, actor.user_id).await;
    let event = events.iter().find(|e| e.seq == seq).expect("event");
    assert_eq!(event.actor_device_id, actor.device_id.to_string());
    let Some(pb::user_event::Kind::MemberSettingsChanged(changed)) = event.kind.clone() else {
        panic!("{event:?}");
    };
    let paths = changed.update_mask.clone().unwrap_or_default().paths;
    (changed, paths)
}

/// Makes `user` a former member of `conversation` (leaving is another part of the store).
async fn leave(env: &Env, conversation: ConversationId, user: UserId) {
    let sql = "UPDATE members SET left_at_seq = 1 WHERE conversation_id = $1 AND user_id = $2";
    env.exec(sql, &[Val::Id(conversation.into()), Val::Id(user.into())])
        .await;
}

/// Settings change only what differs, each change takes the user's next seq with one
/// MemberSettingsChanged (settings after, mask of what changed); a repeat changes nothing and
/// writes nothing; every kind of conversation works; non-members are refused.
async fn settings_change_once_with_their_event(env: &Env) {
    let [owner, me, stranger] = env.users().await;
    let mine = device(me);
    let group = env.group(device(owner), &[me]).await;
    let until = now() + Duration::days(1);
    let at = now();
    let all = SettingsChange {
        mute_until: Some(Some(until)),
        pinned: Some(true),
        archived: Some(true),
    };
    let update = env
        .store
        .update_settings(mine, group.id, &all, at)
        .await
        .unwrap();
    assert_eq!(update.changed, ["mute_until", "pinned", "archived"]);
    let row = env.member(group.id, me).await;
    assert_eq!(update.member, row);
    assert_eq!(
        (row.mute_until, row.pinned_at, row.archived),
        (Some(until), Some(at), true)
    );
    assert_eq!(
        events_of_user(env, me).await.len(),
        2,
        "joined, then the change"
    );
    let (changed, paths) = settings_event(env, mine, 2).await;
    assert_eq!(changed.conversation_id, group.id.to_string());
    let wire = changed.settings.unwrap();
    assert!(wire.pinned && wire.archived && wire.mute_until.is_some());
    assert_eq!(paths, ["mute_until", "pinned", "archived"]);

    // The same again: nothing changes, pinned_at stays, no seq, no event.
    let later = now() + Duration::seconds(5);
    let again = env
        .store
        .update_settings(mine, group.id, &all, later)
        .await
        .unwrap();
    assert!(again.changed.is_empty());
    assert_eq!(again.member, row);
    assert_eq!(events_of_user(env, me).await.len(), 2);

    // Only what differs is named: unmute and unarchive, pin untouched.
    let some = SettingsChange {
        mute_until: Some(None),
        pinned: Some(true),
        archived: Some(false),
    };
    let update = settings(env, mine, group.id, some).await.unwrap();
    assert_eq!(update.changed, ["mute_until", "archived"]);
    assert_eq!(update.member.pinned_at, Some(at));
    assert_eq!(
        (update.member.mute_until, update.member.archived),
        (None, false)
    );
    let (changed, paths) = settings_event(env, mine, 3).await;
    assert_eq!(paths, ["mute_until", "archived"]);
    let wire = changed.settings.unwrap();
    assert_eq!(
        (wire.mute_until, wire.pinned, wire.archived),
        (None, true, false)
    );
    let unpinned = settings(env, mine, group.id, pin(false)).await.unwrap();
    assert_eq!(unpinned.member.pinned_at, None);
    assert_eq!(events_of_user(env, me).await.len(), 4);

    // Direct conversations and channels (as a plain MEMBER) alike.
    let direct = env.direct(mine, stranger).await;
    let channel = env
        .group_at(Kind::Channel, device(owner), &[me], now())
        .await;
    for conversation in [direct.id, channel.id] {
        let update = settings(env, mine, conversation, pin(true)).await.unwrap();
        assert_eq!(update.changed, ["pinned"]);
    }
    let filter = ListFilter {
        archived: None,
        pinned_only: true,
    };
    let pinned = env.store.list_conversations(me, filter, None, 10).await;
    assert_eq!(pinned.unwrap().len(), 2);

    // Strangers, unknown conversations and former members are refused alike, with nothing
    // written.
    let before = env.user_events().await.len();
    not_found(settings(env, device(stranger), group.id, pin(true)).await);
    not_found(settings(env, mine, ConversationId::new_v7(), pin(true)).await);
    leave(env, group.id, me).await;
    not_found(settings(env, mine, group.id, pin(true)).await);
    assert_eq!(env.user_events().await.len(), before);
}

/// Twelve groups of `owner` with `me` as a member.
async fn twelve_groups(env: &Env, owner: UserId, me: UserId) -> Vec<ConversationId> {
    let mut groups = Vec::new();
    for _ in 0..12 {
        groups.push(env.group(device(owner), &[me]).await.id);
    }
    groups
}

/// At most ten current conversations pinned per user: the eleventh is refused (nothing
/// written); re-pinning a pinned one at the cap is a no-op; unpinning or leaving frees a slot.
async fn pinned_conversations_are_capped_at_ten(env: &Env) {
    let [owner, me] = env.users().await;
    let mine = device(me);
    let groups = twelve_groups(env, owner, me).await;
    for group in &groups[..10] {
        settings(env, mine, *group, pin(true)).await.unwrap();
    }
    let events = events_of_user(env, me).await.len();
    assert_refused!(
        settings(env, mine, groups[10], pin(true)).await,
        MessageError::LimitExceeded("pinned conversations")
    );
    assert_eq!(env.member(groups[10], me).await.pinned_at, None);
    assert_eq!(events_of_user(env, me).await.len(), events, "no event");
    // Other settings of an unpinned conversation still change at the cap.
    let archive = SettingsChange {
        archived: Some(true),
        ..SettingsChange::default()
    };
    settings(env, mine, groups[10], archive).await.unwrap();
    let again = settings(env, mine, groups[0], pin(true)).await.unwrap();
    assert!(again.changed.is_empty(), "already pinned: no-op at the cap");

    settings(env, mine, groups[0], pin(false)).await.unwrap();
    settings(env, mine, groups[10], pin(true)).await.unwrap();
    assert_refused!(
        settings(env, mine, groups[11], pin(true)).await,
        MessageError::LimitExceeded(_)
    );
    // A conversation the user left no longer counts.
    leave(env, groups[1], me).await;
    settings(env, mine, groups[11], pin(true)).await.unwrap();
}

/// Twelve pins by one user at once, in twelve conversations: exactly ten succeed.
async fn concurrent_pins_stop_at_ten(env: &Env) {
    let [owner, me] = env.users().await;
    let groups = twelve_groups(env, owner, me).await;
    let store: Arc<MessageStore> = env.store.clone();
    let tasks: Vec<_> = groups
        .iter()
        .map(|&group| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .update_settings(device(me), group, &pin(true), now())
                    .await
            })
        })
        .collect();
    let (mut pinned, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(update) => {
                assert_eq!(update.changed, ["pinned"]);
                pinned += 1;
            }
            Err(MessageError::LimitExceeded(_)) => refused += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!((pinned, refused), (10, 2));
    let sql = "SELECT count(*) FROM members WHERE CAST(user_id AS TEXT) = $1 \
               AND pinned_at IS NOT NULL";
    assert_eq!(env.count(sql, &[me.to_string()]).await, 10);
    assert_eq!(
        events_of_user(env, me).await.len(),
        12 + 10,
        "joins and pins"
    );
}

/// Sends `text` as `actor` mentioning `mentioned`.
async fn say_mentioning(
    env: &Env,
    actor: Actor,
    conversation: ConversationId,
    mentioned: &[UserId],
) -> Message {
    let mut new = text_message(conversation, "hello");
    new.mentioned = mentioned.to_vec();
    env.send_at(actor, &new, now()).await
}

async fn read(
    env: &Env,
    actor: Actor,
    conversation: ConversationId,
    up_to: i64,
) -> (i64, i32, i32, bool) {
    let mark = env
        .store
        .mark_read(actor, conversation, up_to, now())
        .await
        .unwrap();
    let m = &mark.member;
    assert_eq!(*m, env.member(conversation, actor.user_id).await);
    (m.last_read_seq, m.unread_count, m.mention_count, mark.moved)
}

/// MarkRead moves the watermark forward only, lowered to last_seq, and recounts exactly: only
/// others' messages above it and after the join, not deleted for everyone nor hidden for the
/// reader; mentions of those with a mention row. Each move is one ReadMarkerMoved; a
/// non-move writes nothing.
async fn mark_read_recounts_forward_only(env: &Env) {
    let [ada, bea, cy] = env.users().await;
    let (a, b, c) = (device(ada), device(bea), device(cy));
    let group = env.group(a, &[bea, cy]).await; // seqs 1-4
    let id = group.id;
    assert_eq!(say_mentioning(env, a, id, &[]).await.seq, 5);
    assert_eq!(say_mentioning(env, c, id, &[bea]).await.seq, 6);
    // Bea joined at 6: seqs 5 and 6 are before her view begins.
    let sql = "UPDATE members SET joined_at_seq = 6 WHERE conversation_id = $1 AND user_id = $2";
    env.exec(sql, &[Val::Id(id.into()), Val::Id(bea.into())])
        .await;
    say_mentioning(env, a, id, &[bea]).await; // 7: counts, mention
    say_mentioning(env, b, id, &[]).await; // 8: her own
    let deleted = say_mentioning(env, c, id, &[bea]).await.seq; // 9: deleted for everyone
    let hidden = say_mentioning(env, a, id, &[bea]).await; // 10: hidden for her
    say_mentioning(env, c, id, &[bea]).await; // 11: counts, mention
    say_mentioning(env, a, id, &[]).await; // 12
    say_mentioning(env, c, id, &[]).await; // 13
    let sql = "UPDATE messages SET deleted_at = $1 WHERE conversation_id = $2 AND seq = $3";
    env.exec(
        sql,
        &[
            Val::Time(Some(now())),
            Val::Id(id.into()),
            Val::Int(deleted),
        ],
    )
    .await;
    let sql = "INSERT INTO hidden_messages (user_id, message_id, conversation_id, seq, hidden_at) \
               VALUES ($1, $2, $3, $4, $5)";
    let args = [
        Val::Id(bea.into()),
        Val::Id(hidden.id.into()),
        Val::Id(id.into()),
        Val::Int(hidden.seq),
        Val::Time(Some(now())),
    ];
    env.exec(sql, &args).await;
    // Her watermark back to 0 with wrong counters: the recount must not trust them.
    let sql = "UPDATE members SET last_read_seq = 0, unread_count = 99, mention_count = 99 \
               WHERE conversation_id = $1 AND user_id = $2";
    env.exec(sql, &[Val::Id(id.into()), Val::Id(bea.into())])
        .await;
    let joined_events = events_of_user(env, bea).await.len();

    assert_eq!(read(env, b, id, 1).await, (1, 4, 2, true), "7, 11, 12, 13");
    assert_eq!(read(env, b, id, 7).await, (7, 3, 1, true), "11, 12, 13");
    assert_eq!(read(env, b, id, 5).await, (7, 3, 1, false), "never back");
    assert_eq!(
        read(env, b, id, 7).await,
        (7, 3, 1, false),
        "same: no change"
    );
    assert_eq!(read(env, b, id, 11).await, (11, 2, 0, true));
    assert_eq!(
        read(env, b, id, 1000).await,
        (13, 0, 0, true),
        "lowered to last_seq"
    );
    assert_eq!(read(env, b, id, 1000).await, (13, 0, 0, false));
    let sql = "SELECT count(*) FROM members WHERE CAST(conversation_id AS TEXT) = $1 \
               AND CAST(user_id AS TEXT) = $2 AND read_at IS NOT NULL";
    assert_eq!(env.count(sql, &[id.to_string(), bea.to_string()]).await, 1);

    let events = events_of_user(env, bea).await;
    let moved: Vec<(i64, i64, i32, i32)> = events[joined_events..]
        .iter()
        .map(|event| {
            assert_eq!(event.actor_device_id, b.device_id.to_string());
            let Some(pb::user_event::Kind::ReadMarkerMoved(m)) = &event.kind else {
                panic!("{event:?}");
            };
            assert_eq!(m.conversation_id, id.to_string());
            (event.seq, m.last_read_seq, m.unread_count, m.mention_count)
        })
        .collect();
    let s = i64::try_from(joined_events).unwrap() + 1;
    let expected = [
        (s, 1, 4, 2),
        (s + 1, 7, 3, 1),
        (s + 2, 11, 2, 0),
        (s + 3, 13, 0, 0),
    ];
    assert_eq!(moved, expected);

    // A later message counts on top of the recount.
    say_mentioning(env, c, id, &[bea]).await;
    let row = env.member(id, bea).await;
    assert_eq!(
        (row.last_read_seq, row.unread_count, row.mention_count),
        (13, 1, 1)
    );

    for (actor, conversation) in [
        (device(UserId::new_v7()), id),
        (b, ConversationId::new_v7()),
    ] {
        not_found(env.store.mark_read(actor, conversation, 1, now()).await);
    }
    leave(env, id, cy).await;
    not_found(env.store.mark_read(c, id, 14, now()).await);
}

/// Delivery watermarks per device, forward only and lowered to last_seq, with no event;
/// others see the maximum over a member's devices (and when it was first reached), only
/// members who acknowledged anything, filtered by min_seq, by user id in pages.
async fn delivery_receipts_per_device(env: &Env) {
    let [ada, bea, cy, dee, eve] = env.users().await;
    let a = device(ada);
    let (b1, b2) = (device(bea), device(bea));
    let group = env.group(a, &[bea, cy, dee, eve]).await; // seqs 1-6
    let id = group.id;
    for _ in 0..3 {
        env.say(a, id, "hi").await; // 7, 8, 9
    }
    let events = env.outbox().await.len();
    let t0 = now();
    let at = |s: i64| -> DateTime<Utc> { t0 + Duration::seconds(s) };
    let deliver = |actor: Actor, up_to: i64, at: DateTime<Utc>| {
        let store = env.store.clone();
        async move {
            let done = store.mark_delivered(actor, id, up_to, at).await.unwrap();
            assert_eq!(done.receipt.device_id, actor.device_id);
            (done.receipt.delivered_up_to_seq, done.moved)
        }
    };
    assert_eq!(deliver(b1, 7, at(1)).await, (7, true));
    assert_eq!(deliver(b2, 9, at(2)).await, (9, true));
    assert_eq!(deliver(b1, 6, at(3)).await, (7, false), "never back");
    assert_eq!(
        deliver(b1, 1000, at(4)).await,
        (9, true),
        "lowered to last_seq"
    );
    assert_eq!(deliver(b1, 9, at(5)).await, (9, false));
    assert_eq!(deliver(device(cy), 8, at(6)).await, (8, true));
    assert_eq!(
        deliver(device(eve), 0, at(7)).await,
        (0, false),
        "nothing to record"
    );
    assert_eq!(env.outbox().await.len(), events, "receipts write no events");

    let mut mine = env.store.device_receipts(id, bea).await.unwrap();
    mine.sort_by_key(|r| r.device_id);
    let got: Vec<_> = mine
        .iter()
        .map(|r| (r.device_id, r.delivered_up_to_seq, r.delivered_at))
        .collect();
    assert_eq!(
        got,
        [
            (b1.device_id, 9, Some(at(4))),
            (b2.device_id, 9, Some(at(2)))
        ]
    );

    // Dee only read (no device acknowledged); Eve did nothing and is left out.
    let dee_read = env.store.mark_read(device(dee), id, 8, at(8)).await;
    assert!(dee_read.unwrap().moved);
    let list = |except: UserId, min_seq: i64, after: Option<UserId>, limit: usize| {
        let store = env.store.clone();
        async move {
            let page = store.member_receipts(id, except, min_seq, after, limit);
            page.await.unwrap()
        }
    };
    let receipts = list(ada, 0, None, 10).await;
    let mut expected = vec![
        (bea, 0, 9, Some(at(2))),
        (cy, 0, 8, Some(at(6))),
        (dee, 8, 0, None),
    ];
    expected.sort_by_key(|r| r.0);
    let got: Vec<_> = receipts
        .iter()
        .map(|r| {
            (
                r.user_id,
                r.last_read_seq,
                r.delivered_up_to_seq,
                r.delivered_at,
            )
        })
        .collect();
    assert_eq!(got, expected, "max over devices, first reached");
    let dees = receipts.iter().find(|r| r.user_id == dee).unwrap();
    assert_eq!(dees.read_at, Some(at(8)));

    let ids = |receipts: Vec<MemberReceipt>| -> Vec<UserId> {
        receipts.iter().map(|r| r.user_id).collect()
    };
    assert_eq!(ids(list(ada, 9, None, 10).await), [bea], "who got seq 9");
    // The caller is never listed; pages join up by user id.
    assert!(!ids(list(bea, 0, None, 10).await).contains(&bea));
    let first = ids(list(ada, 0, None, 2).await);
    let rest = ids(list(ada, 0, Some(first[1]), 2).await);
    let all: Vec<_> = expected.iter().map(|r| r.0).collect();
    assert_eq!([first, rest].concat(), all);
    // Former members drop out; strangers may not acknowledge.
    leave(env, id, cy).await;
    assert!(!ids(list(ada, 0, None, 10).await).contains(&cy));
    not_found(env.store.mark_delivered(device(cy), id, 9, now()).await);
    not_found(
        env.store
            .mark_delivered(a, ConversationId::new_v7(), 1, now())
            .await,
    );
}

conformance!(
    settings_change_once_with_their_event,
    pinned_conversations_are_capped_at_ten,
    concurrent_pins_stop_at_ten,
    mark_read_recounts_forward_only,
    delivery_receipts_per_device,
);
