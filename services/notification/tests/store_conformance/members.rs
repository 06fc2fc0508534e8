//! Membership comes from two streams (the conversation's events and the member's user events),
//! so every join and leave arrives twice, in either order: each is recorded once, a late join
//! never brings back a member who left, and a message is for the members at its seq.

use echo_ids::{ConversationId, UserId};
use echo_notification::pipeline::store;

use crate::common::Env;

async fn members_at(env: &Env, conversation: ConversationId, seq: i64) -> Vec<UserId> {
    let mut tx = env.store.database().begin().await.unwrap();
    let sender = UserId::new_v7();
    let members = store::recipients(&mut tx, (conversation, seq, sender), None, usize::MAX)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    members.into_iter().map(|r| r.user).collect()
}

pub async fn a_join_and_a_leave_heard_twice_are_recorded_once(env: &Env) {
    let (conversation, user) = (ConversationId::new_v7(), UserId::new_v7());
    let mut tx = env.store.database().begin().await.unwrap();
    assert!(store::join(&mut tx, conversation, user, 5).await.unwrap());
    assert!(
        !store::join(&mut tx, conversation, user, 5).await.unwrap(),
        "the other stream"
    );
    assert!(store::leave(&mut tx, conversation, user, 10).await.unwrap());
    assert!(
        !store::leave(&mut tx, conversation, user, 10).await.unwrap(),
        "the other stream"
    );
    assert!(
        !store::join(&mut tx, conversation, user, 5).await.unwrap(),
        "a late join of the ended membership"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        members_at(env, conversation, 5).await,
        Vec::<UserId>::new(),
        "joined after seq 5"
    );
    assert_eq!(
        members_at(env, conversation, 8).await,
        [user],
        "a member at seq 8"
    );
    assert_eq!(
        members_at(env, conversation, 12).await,
        Vec::<UserId>::new(),
        "left at seq 10"
    );

    let mut tx = env.store.database().begin().await.unwrap();
    assert!(
        store::join(&mut tx, conversation, user, 20).await.unwrap(),
        "a rejoin"
    );
    assert!(
        !store::leave(&mut tx, conversation, user, 10).await.unwrap(),
        "a late leave of the earlier membership"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        members_at(env, conversation, 15).await,
        Vec::<UserId>::new(),
        "between the two"
    );
    assert_eq!(
        members_at(env, conversation, 25).await,
        [user],
        "member again"
    );
}
