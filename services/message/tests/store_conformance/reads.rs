//! Reads: a user's conversation list (order, filters, keyset pages) and windows of history.

use chrono::{DateTime, Duration, Utc};
use echo_ids::{ConversationId, UserId};
use echo_message::store::{
    Conversation, ConversationPosition, Kind, ListFilter, Message, SeqWindow,
};

use crate::common::*;

fn ids(list: &[(Conversation, echo_message::store::Member)]) -> Vec<ConversationId> {
    list.iter().map(|(c, _)| c.id).collect()
}

fn seqs(messages: &[Message]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

/// Every page of `user`'s list under `filter`, `limit` at a time, joined.
async fn pages(env: &Env, user: UserId, filter: ListFilter, limit: usize) -> Vec<ConversationId> {
    let mut listed = Vec::new();
    let mut after: Option<ConversationPosition> = None;
    loop {
        let page = env
            .store
            .list_conversations(user, filter, after.as_ref(), limit)
            .await
            .unwrap();
        assert!(page.len() <= limit);
        listed.extend(ids(&page));
        let Some((last, _)) = page.last() else { break };
        after = Some(ConversationPosition {
            last_activity_micros: last.last_activity_at.timestamp_micros(),
            conversation_id: last.id,
        });
        if page.len() < limit {
            break;
        }
    }
    listed
}

/// A user's current conversations come newest activity first (ties by id, descending), each
/// with their own member row; keyset pages join up without gaps or repeats; the archive and
/// pin filters select by the member's settings; conversations they left or never joined are
/// not listed.
pub async fn list_conversations_order_filters_pages(env: &Env) {
    let [me, ada, bob, cy, dee] = env.users().await;
    let my_device = device(me);
    let t0 = now();
    let at = |seconds: i64| -> DateTime<Utc> { t0 + Duration::seconds(seconds) };
    let direct_at = |actor, peer, at| {
        let store = env.store.clone();
        async move {
            let (conversation, _) = store
                .create_direct(actor, peer, ConversationId::new_v7(), at)
                .await
                .unwrap();
            conversation
        }
    };
    let c1 = direct_at(my_device, ada, at(1)).await;
    let c2 = env.group_at(Kind::Group, my_device, &[bob], at(2)).await;
    let c3 = env.group_at(Kind::Channel, device(cy), &[me], at(3)).await;
    let c4 = direct_at(device(dee), me, at(4)).await;
    let c5 = env.group_at(Kind::Group, my_device, &[], at(5)).await;
    let c6 = env.group_at(Kind::Group, my_device, &[ada], at(6)).await;
    let c7 = env.group_at(Kind::Group, my_device, &[bob], at(6)).await;
    let theirs = env.group_at(Kind::Group, device(ada), &[bob], at(7)).await;
    env.send_at(my_device, &text_message(c1.id, "bump"), at(8))
        .await;

    let (low, high) = if c6.id < c7.id {
        (c6.id, c7.id)
    } else {
        (c7.id, c6.id)
    };
    let expected = vec![c1.id, high, low, c5.id, c4.id, c3.id, c2.id];
    let listed = env
        .store
        .list_conversations(me, ListFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(ids(&listed), expected);
    for (conversation, member) in &listed {
        assert_eq!(member.user_id, me);
        assert_eq!(member.conversation_id, conversation.id);
        assert_eq!(*conversation, env.conversation(conversation.id).await);
        assert_eq!(*member, env.member(conversation.id, me).await);
    }
    assert_eq!(listed[0].0.last_activity_at, at(8));
    for limit in [1, 2, 3] {
        assert_eq!(pages(env, me, ListFilter::default(), limit).await, expected);
    }
    let limited = env
        .store
        .list_conversations(me, ListFilter::default(), None, 0)
        .await
        .unwrap();
    assert!(limited.is_empty());
    let ada_list = pages(env, ada, ListFilter::default(), 10).await;
    assert_eq!(ada_list, [c1.id, theirs.id, c6.id]);

    for archived in [c4.id, c2.id] {
        let changed = env
            .exec(
                "UPDATE members SET archived = $1 WHERE conversation_id = $2 AND user_id = $3",
                &[
                    Val::Bool(true),
                    Val::Id(archived.into()),
                    Val::Id(me.into()),
                ],
            )
            .await;
        assert_eq!(changed, 1);
    }
    for pinned in [c1.id, c2.id] {
        let changed = env
            .exec(
                "UPDATE members SET pinned_at = $1 WHERE conversation_id = $2 AND user_id = $3",
                &[
                    Val::Time(Some(now())),
                    Val::Id(pinned.into()),
                    Val::Id(me.into()),
                ],
            )
            .await;
        assert_eq!(changed, 1);
    }
    // Another member's settings are theirs alone.
    env.exec(
        "UPDATE members SET archived = $1 WHERE conversation_id = $2 AND user_id = $3",
        &[Val::Bool(true), Val::Id(c6.id.into()), Val::Id(ada.into())],
    )
    .await;
    let filtered = |archived, pinned_only| ListFilter {
        archived,
        pinned_only,
    };
    let cases = [
        (filtered(Some(true), false), vec![c4.id, c2.id]),
        (
            filtered(Some(false), false),
            vec![c1.id, high, low, c5.id, c3.id],
        ),
        (filtered(None, false), expected.clone()),
        (filtered(None, true), vec![c1.id, c2.id]),
        (filtered(Some(false), true), vec![c1.id]),
        (filtered(Some(true), true), vec![c2.id]),
    ];
    for (filter, expected) in cases {
        assert_eq!(pages(env, me, filter, 2).await, expected, "{filter:?}");
    }

    // Leaving (behind the store's back: the trait cannot yet) takes it off the list.
    let left = env
        .exec(
            "UPDATE members SET left_at_seq = $1 WHERE conversation_id = $2 AND user_id = $3",
            &[
                Val::Int(c3.last_seq),
                Val::Id(c3.id.into()),
                Val::Id(me.into()),
            ],
        )
        .await;
    assert_eq!(left, 1);
    let listed = pages(env, me, ListFilter::default(), 100).await;
    assert!(!listed.contains(&c3.id));
    assert_eq!(listed.len(), expected.len() - 1);
    let nobody = env
        .store
        .list_conversations(UserId::new_v7(), ListFilter::default(), None, 10)
        .await
        .unwrap();
    assert!(nobody.is_empty());
}

/// Windows hold the conversation's messages strictly between `after` and `before`, in the
/// asked order, at most `limit`, thread replies left out when asked.
pub async fn message_windows(env: &Env) {
    let [ada, bob] = env.users().await;
    let ada_device = device(ada);
    let direct = env.direct(ada_device, bob).await;
    let other = env.group(ada_device, &[bob]).await;
    let top = say_many(env, ada_device, direct.id, 10, now()).await;
    say_many(env, ada_device, other.id, 3, now()).await;
    assert_eq!(seqs(&top), (4..=13).collect::<Vec<_>>());
    for _ in 0..2 {
        let mut reply = text_message(direct.id, "in thread");
        reply.thread_root_message_id = Some(top[0].id);
        env.send_at(device(bob), &reply, now()).await;
    }
    env.say(ada_device, direct.id, "last").await;

    let window = |after, before, newest_first, limit, top_level_only| SeqWindow {
        after,
        before,
        newest_first,
        limit,
        top_level_only,
    };
    let cases: Vec<(SeqWindow, Vec<i64>)> = vec![
        (all(), (4..=16).collect()),
        (window(5, 10, false, 100, false), vec![6, 7, 8, 9]),
        (window(5, 10, true, 100, false), vec![9, 8, 7, 6]),
        (window(5, 10, false, 2, false), vec![6, 7]),
        (window(5, 10, true, 2, false), vec![9, 8]),
        (window(0, i64::MAX, true, 4, false), vec![16, 15, 14, 13]),
        (window(0, i64::MAX, true, 3, true), vec![16, 13, 12]),
        (
            window(0, i64::MAX, false, 100, true),
            (4..=13).chain([16]).collect(),
        ),
        (window(12, 16, false, 100, true), vec![13]),
        (window(16, i64::MAX, false, 100, false), vec![]),
        (window(0, 4, true, 100, false), vec![]),
        (window(0, i64::MAX, false, 0, false), vec![]),
    ];
    for (window, expected) in cases {
        let messages = env.store.messages(direct.id, window).await.unwrap();
        assert_eq!(seqs(&messages), expected, "{window:?}");
        assert!(messages.iter().all(|m| m.conversation_id == direct.id));
    }
    let listed = env.store.messages(direct.id, all()).await.unwrap();
    for message in &listed {
        let read = env.store.message(direct.id, message.id).await.unwrap();
        assert_eq!(read.as_ref(), Some(message));
    }
    let root = &listed[0];
    assert_eq!((root.id, root.reply_count), (top[0].id, 2));
}
