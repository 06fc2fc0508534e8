//! The badge from the projection counts: Σ unread over non-muted conversations, conversations
//! with unread (non-muted), mentions over all, unread inbox entries.

use chrono::TimeDelta;
use echo_ids::{ConversationId, UserId};
use echo_notification::badge::{self, Badge};
use echo_notification::inbox::MarkTarget;

use crate::common::{Env, now};

pub async fn no_counts_is_all_zero(env: &Env) {
    let user = UserId::new_v7();
    assert_eq!(
        env.store.badge(user, now()).await.unwrap(),
        Badge::default()
    );
    let reply = badge::get(&env.store, user).await.unwrap();
    assert_eq!(reply, Default::default());
}

pub async fn badge_sums_unread_over_unmuted_conversations(env: &Env) {
    let user = UserId::new_v7();
    let t = now();
    let [plain, muted, read, mute_ended, muted_forever] =
        [(); 5].map(|()| ConversationId::new_v7());
    env.counts(user, plain, 3, 1, None).await;
    env.counts(user, muted, 5, 2, Some(t + TimeDelta::hours(1)))
        .await;
    env.counts(user, read, 0, 0, None).await;
    env.counts(user, mute_ended, 2, 0, Some(t - TimeDelta::seconds(1)))
        .await;
    env.counts(
        user,
        muted_forever,
        4,
        1,
        Some(t + TimeDelta::days(365 * 100)),
    )
    .await;
    // another user's rows and inbox never count
    env.counts(UserId::new_v7(), plain, 50, 50, None).await;
    env.entries(UserId::new_v7(), 2).await;
    let entries = env.entries(user, 3).await;
    env.store
        .mark_read(user, MarkTarget::UpTo(entries[0].id))
        .await
        .unwrap();
    let expected = Badge {
        badge: 3 + 2,
        unread_conversations: 2,
        unread_mentions: 1 + 2 + 1,
        unread_inbox_entries: 2,
    };
    assert_eq!(env.store.badge(user, t).await.unwrap(), expected);
    // an hour later the first mute has ended too
    let later = env
        .store
        .badge(user, t + TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!((later.badge, later.unread_conversations), (3 + 5 + 2, 3));
    // the RPC's answer is the same at the wall clock's now
    let reply = badge::get(&env.store, user).await.unwrap();
    assert_eq!(
        (
            reply.badge_count,
            reply.unread_conversations,
            reply.unread_mentions,
            reply.unread_inbox_entries
        ),
        (5, 2, 4, 2)
    );
}

pub async fn counts_and_mute_are_set_independently(env: &Env) {
    let (user, conversation) = (UserId::new_v7(), ConversationId::new_v7());
    let t = now();
    let mut tx = env.store.database().begin().await.unwrap();
    badge::set_muted(&mut tx, user, conversation, Some(t + TimeDelta::hours(1)))
        .await
        .unwrap();
    badge::set_counts(&mut tx, user, conversation, 7, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let muted = env.store.badge(user, t).await.unwrap();
    assert_eq!(
        (muted.badge, muted.unread_mentions),
        (0, 1),
        "counts kept the mute"
    );
    // the authoritative values replace the counts (a read marker moved)
    let mut tx = env.store.database().begin().await.unwrap();
    badge::set_counts(&mut tx, user, conversation, 2, 0)
        .await
        .unwrap();
    badge::set_muted(&mut tx, user, conversation, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let unmuted = env.store.badge(user, t).await.unwrap();
    assert_eq!(
        (unmuted.badge, unmuted.unread_mentions),
        (2, 0),
        "the mute kept the counts"
    );
    assert_eq!(env.rows("notify_counts").await, 1);
}
