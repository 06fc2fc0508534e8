//! Live delivery's part of the store: membership periods (who sees the event at seq s, exactly,
//! also long after they left or came back) and `postable` (SendMessage's checks, no write).
//! Position order = seq order under concurrent writers is in `live_order.rs`.
//! Over 400 lines as one piece: the store's whole surface for live delivery, case by case.

use chrono::Duration;
use echo_ids::{ConversationId, UserId};
use echo_message::error::MessageError;
use echo_message::members::new_code;
use echo_message::store::{Kind, MembershipPeriod, NewInvite};
use uuid::Uuid;

use crate::common::*;

#[path = "live_order.rs"]
mod order;
use order::{position_order_is_seq_order, slow_writer_keeps_position_order};

/// The period of `user` in `conversation` from `from_seq` until `until_seq`.
fn period(
    conversation: ConversationId,
    user: UserId,
    from_seq: i64,
    until_seq: Option<i64>,
) -> MembershipPeriod {
    MembershipPeriod {
        conversation_id: conversation,
        user_id: user,
        from_seq,
        until_seq,
    }
}

/// Every period of `conversation`.
async fn all_periods(env: &Env, conversation: ConversationId) -> Vec<MembershipPeriod> {
    env.store
        .periods_of_conversation(conversation, 0)
        .await
        .expect("periods of conversation")
}

/// `periods` in the order the store answers for a conversation: (user, from_seq).
fn by_user(mut periods: Vec<MembershipPeriod>) -> Vec<MembershipPeriod> {
    periods.sort_by_key(|p| (p.user_id, p.from_seq));
    periods
}

/// Who the periods of `conversation` let see the event at `seq`, sorted.
fn audience(periods: &[MembershipPeriod], seq: i64) -> Vec<UserId> {
    let mut users: Vec<UserId> = periods
        .iter()
        .filter(|p| p.covers(seq))
        .map(|p| p.user_id)
        .collect();
    users.sort();
    users.dedup();
    users
}

fn sorted(mut users: Vec<UserId>) -> Vec<UserId> {
    users.sort();
    users
}

/// Create, add, remove, add back, leave: one period per stretch of membership, initial members
/// from seq 1, each closing at the seq of the event that ended it (which is still theirs), and
/// the periods give every event of the conversation exactly the audience its members had.
async fn periods_follow_membership(env: &Env) {
    let [ada, bea, cy, dee] = env.users().await;
    let owner = device(ada);
    let group = env.group(owner, &[bea, cy]).await;
    let id = group.id;
    // Initial members see ConversationCreated (seq 1) though they joined at 2, 3, 4.
    assert_eq!(env.member(id, bea).await.joined_at_seq, 3);
    let initial = vec![
        period(id, ada, 1, None),
        period(id, bea, 1, None),
        period(id, cy, 1, None),
    ];
    assert_eq!(all_periods(env, id).await, by_user(initial.clone()));

    env.say(owner, id, "before dee").await; // 5
    let added = env
        .store
        .add_members(owner, id, &[dee], now())
        .await
        .unwrap();
    let first_join = added[0].joined_at_seq;
    assert_eq!(first_join, 6);
    env.say(owner, id, "with dee").await; // 7
    let removed = env
        .store
        .remove_member(owner, id, dee, now())
        .await
        .unwrap();
    assert_eq!(removed, 8);
    env.say(owner, id, "without dee").await; // 9
    let added = env
        .store
        .add_members(owner, id, &[dee], now())
        .await
        .unwrap();
    let second_join = added[0].joined_at_seq;
    assert_eq!(second_join, 10);
    let left = env.store.leave(device(dee), id, now()).await.unwrap();
    assert_eq!(left, 11);
    env.say(owner, id, "after dee").await; // 12

    let mut expected = initial;
    expected.push(period(id, dee, first_join, Some(removed)));
    expected.push(period(id, dee, second_join, Some(left)));
    let periods = all_periods(env, id).await;
    assert_eq!(periods, by_user(expected));

    let (everyone, three) = (sorted(vec![ada, bea, cy, dee]), sorted(vec![ada, bea, cy]));
    let expected_audience = |seq: i64| match seq {
        6..=8 | 10 | 11 => everyone.clone(),
        _ => three.clone(),
    };
    let last = env.conversation(id).await.last_seq;
    assert_eq!(last, 12);
    for seq in 1..=last {
        assert_eq!(audience(&periods, seq), expected_audience(seq), "seq {seq}");
    }
    // The member row keeps the latest stretch only; the periods keep all of them.
    let row = env.member(id, dee).await;
    assert_eq!(
        (row.joined_at_seq, row.left_at_seq),
        (second_join, Some(left))
    );
}

/// `covers` is inclusive at both ends and open-ended while a member.
async fn covers_is_inclusive(env: &Env) {
    let [ada, bea] = env.users().await;
    let owner = device(ada);
    let id = env.group(owner, &[]).await.id; // 1, 2
    env.say(owner, id, "one").await; // 3
    env.store
        .add_members(owner, id, &[bea], now())
        .await
        .unwrap(); // 4
    env.say(owner, id, "two").await; // 5
    env.store
        .remove_member(owner, id, bea, now())
        .await
        .unwrap(); // 6
    let periods = all_periods(env, id).await;
    let bea_period = periods.iter().find(|p| p.user_id == bea).copied().unwrap();
    assert_eq!(bea_period, period(id, bea, 4, Some(6)));
    let covered: Vec<bool> = (1..=8).map(|seq| bea_period.covers(seq)).collect();
    assert_eq!(
        covered,
        [false, false, false, true, true, true, false, false]
    );
    let ada_period = periods.iter().find(|p| p.user_id == ada).copied().unwrap();
    assert!(ada_period.covers(1) && ada_period.covers(i64::MAX));
    assert!(!ada_period.covers(0));
}

/// periods_of_conversation(from_seq): the periods covering from_seq or later; a period that
/// ended exactly at from_seq still counts; i64::MAX leaves the current members.
async fn periods_of_conversation_from_seq(env: &Env) {
    let [ada, bea, cy] = env.users().await;
    let owner = device(ada);
    let id = env.group(owner, &[bea]).await.id; // 1..=3
    env.store
        .add_members(owner, id, &[cy], now())
        .await
        .unwrap(); // 4
    env.store
        .remove_member(owner, id, bea, now())
        .await
        .unwrap(); // 5
    env.store.remove_member(owner, id, cy, now()).await.unwrap(); // 6
    env.store
        .add_members(owner, id, &[cy], now())
        .await
        .unwrap(); // 7
    env.say(owner, id, "later").await; // 8

    let users_from = |from: i64| async move {
        let periods = env.store.periods_of_conversation(id, from).await.unwrap();
        assert!(periods.iter().all(|p| p.conversation_id == id));
        assert!(
            periods
                .windows(2)
                .all(|w| (w[0].user_id, w[0].from_seq) < (w[1].user_id, w[1].from_seq))
        );
        periods
            .iter()
            .map(|p| (p.user_id, p.from_seq))
            .collect::<Vec<_>>()
    };
    let sorted_pairs = |mut pairs: Vec<(UserId, i64)>| {
        pairs.sort();
        pairs
    };
    let all = sorted_pairs(vec![(ada, 1), (bea, 1), (cy, 4), (cy, 7)]);
    assert_eq!(users_from(0).await, all);
    assert_eq!(users_from(5).await, all);
    assert_eq!(
        users_from(6).await,
        sorted_pairs(vec![(ada, 1), (cy, 4), (cy, 7)])
    );
    assert_eq!(users_from(7).await, sorted_pairs(vec![(ada, 1), (cy, 7)]));
    assert_eq!(
        users_from(i64::MAX).await,
        sorted_pairs(vec![(ada, 1), (cy, 7)])
    );
    // No conversation, no periods.
    let none = env
        .store
        .periods_of_conversation(ConversationId::new_v7(), 0)
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// periods_of_user(closed_since): every open period of the user, and the closed ones whose
/// closing event happened at or after `closed_since`, in (conversation, from_seq) order.
async fn periods_of_user_closed_since(env: &Env) {
    let [ada, bea] = env.users().await;
    let owner = device(ada);
    let long_ago = now() - Duration::hours(2);
    let recently = now() - Duration::minutes(5);
    // Bea: removed long ago from `old`; removed recently from `recent` (after an earlier
    // stretch that ended long ago); still a member of `current` and of a direct conversation.
    let old = env.group(owner, &[bea]).await.id;
    let old_removal = env
        .store
        .remove_member(owner, old, bea, long_ago)
        .await
        .unwrap();
    let recent = env.group(owner, &[bea]).await.id;
    let first_removal = env
        .store
        .remove_member(owner, recent, bea, long_ago)
        .await
        .unwrap();
    let back = env
        .store
        .add_members(owner, recent, &[bea], long_ago)
        .await
        .unwrap();
    let rejoined = back[0].joined_at_seq;
    let removed = env
        .store
        .remove_member(owner, recent, bea, recently)
        .await
        .unwrap();
    let current = env.group(owner, &[bea]).await.id;
    let direct = env.direct(device(bea), ada).await.id;
    // Someone else's periods never show.
    env.group(owner, &[]).await;

    let of_bea = |since| async move { env.store.periods_of_user(bea, since).await.unwrap() };
    let in_order = |mut periods: Vec<MembershipPeriod>| {
        periods.sort_by_key(|p| (p.conversation_id, p.from_seq));
        periods
    };
    let open = vec![period(current, bea, 1, None), period(direct, bea, 1, None)];
    let mut expected = open.clone();
    expected.push(period(recent, bea, rejoined, Some(removed)));
    assert_eq!(
        of_bea(recently - Duration::seconds(1)).await,
        in_order(expected.clone())
    );
    // At exactly the closing time: included.
    assert_eq!(of_bea(recently).await, in_order(expected.clone()));
    assert_eq!(
        of_bea(recently + Duration::seconds(1)).await,
        in_order(open.clone())
    );
    // Far enough back: every period bea ever had.
    expected.push(period(old, bea, 1, Some(old_removal)));
    expected.push(period(recent, bea, 1, Some(first_removal)));
    let everything = of_bea(long_ago - Duration::seconds(1)).await;
    assert_eq!(everything, in_order(expected));
    assert!(everything.iter().all(|p| p.user_id == bea));
}

/// Joining by invite opens a period at the join; leaving and joining again by invite opens a
/// new one.
async fn invite_joins_open_periods(env: &Env) {
    let [ada, bea] = env.users().await;
    let owner = device(ada);
    let id = env.group(owner, &[]).await.id;
    let invite = NewInvite {
        id: Uuid::now_v7(),
        conversation_id: id,
        code: new_code(),
        expires_at: None,
        max_uses: 0,
    };
    env.store
        .create_invite(owner, &invite, now())
        .await
        .unwrap();
    let joiner = device(bea);
    let (joined, new) = env
        .store
        .join_by_invite(joiner, &invite.code, now())
        .await
        .unwrap();
    assert_eq!((joined, new), (id, true));
    let first = env.member(id, bea).await.joined_at_seq;
    let left = env.store.leave(joiner, id, now()).await.unwrap();
    env.store
        .join_by_invite(joiner, &invite.code, now())
        .await
        .unwrap();
    let second = env.member(id, bea).await.joined_at_seq;
    assert!(first < left && left < second);
    let bea_periods: Vec<MembershipPeriod> = all_periods(env, id)
        .await
        .into_iter()
        .filter(|p| p.user_id == bea)
        .collect();
    assert_eq!(
        bea_periods,
        vec![
            period(id, bea, first, Some(left)),
            period(id, bea, second, None)
        ]
    );
}

/// Asserts `outcome` is refused with a `MessageError` matching `$pattern`.
macro_rules! assert_refused {
    ($outcome:expr, $pattern:pat) => {{
        let outcome = $outcome;
        assert!(matches!(outcome, Err($pattern)), "{outcome:?}");
    }};
}

/// postable answers what SendMessage would refuse, with the conversation when it would not,
/// and writes nothing.
async fn postable_is_send_without_writing(env: &Env) {
    let [ada, bea, cy, outsider] = env.users().await;
    let (owner, member) = (device(ada), device(bea));
    let group = env.group(owner, &[bea, cy]).await;
    let channel = env.group_at(Kind::Channel, owner, &[bea], now()).await;
    let direct = env.direct(owner, bea).await;
    env.store.leave(device(cy), group.id, now()).await.unwrap();
    let before = (
        env.rows("outbox").await,
        seqs(env, &[group.id, channel.id, direct.id]).await,
    );

    let found = env.store.postable(member, group.id).await.unwrap();
    assert_eq!((found.id, found.kind), (group.id, Kind::Group));
    assert_eq!(
        env.store.postable(owner, channel.id).await.unwrap().id,
        channel.id
    );
    assert_refused!(
        env.store.postable(member, channel.id).await,
        MessageError::NotAllowed
    );
    assert_refused!(
        env.store.postable(device(outsider), group.id).await,
        MessageError::ConversationNotFound
    );
    // A former member is no member.
    assert_refused!(
        env.store.postable(device(cy), group.id).await,
        MessageError::ConversationNotFound
    );
    assert_refused!(
        env.store.postable(owner, ConversationId::new_v7()).await,
        MessageError::ConversationNotFound
    );
    let found = env.store.postable(member, direct.id).await.unwrap();
    assert_eq!(found.direct_pair, direct.direct_pair);
    // A block either way closes the direct conversation, and only it.
    for (blocker, blocked) in [(bea, ada), (ada, bea)] {
        env.set_block(blocker, blocked, true).await;
        for actor in [owner, member] {
            assert_refused!(
                env.store.postable(actor, direct.id).await,
                MessageError::Blocked(_)
            );
            // Send agrees.
            let new = text_message(direct.id, "blocked");
            assert_refused!(
                env.store.send(actor, &new, now()).await,
                MessageError::Blocked(_)
            );
        }
        assert!(env.store.postable(member, group.id).await.is_ok());
        env.set_block(blocker, blocked, false).await;
    }
    assert!(env.store.postable(member, direct.id).await.is_ok());
    // Send agrees with every refusal above.
    let refused = text_message(channel.id, "members may not post");
    assert_refused!(
        env.store.send(member, &refused, now()).await,
        MessageError::NotAllowed
    );
    let refused = text_message(group.id, "former member");
    assert_refused!(
        env.store.send(device(cy), &refused, now()).await,
        MessageError::ConversationNotFound
    );

    let after = (
        env.rows("outbox").await,
        seqs(env, &[group.id, channel.id, direct.id]).await,
    );
    assert_eq!(before, after, "postable wrote something");
}

/// The last seqs of `conversations`.
async fn seqs(env: &Env, conversations: &[ConversationId]) -> Vec<i64> {
    let mut seqs = Vec::new();
    for &id in conversations {
        seqs.push(env.conversation(id).await.last_seq);
    }
    seqs
}

conformance!(
    periods_follow_membership,
    covers_is_inclusive,
    periods_of_conversation_from_seq,
    periods_of_user_closed_since,
    invite_joins_open_periods,
    postable_is_send_without_writing,
    position_order_is_seq_order,
    slow_writer_keeps_position_order,
);
