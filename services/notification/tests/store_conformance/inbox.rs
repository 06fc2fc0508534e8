//! The inbox: written once per message, listed newest first in pages (with `unread_only` in
//! the page token), marked read up to an entry or all at once.

use echo_ids::{MessageId, UserId};
use echo_notification::NotificationError;
use echo_notification::inbox::{self, EntryKind, MarkTarget, Marked};
use echo_proto::echo::notification::v1 as pb;
use echo_runtime::Failure;
use uuid::Uuid;

use crate::common::{Env, entry};

pub async fn entries_are_written_once_per_message(env: &Env) {
    let user = UserId::new_v7();
    let mut first = entry(user, 7);
    first.kind = EntryKind::Mention;
    first.conversation_title = "Team".into();
    assert!(env.write_entry(&first).await);
    // a redelivered event writes the same message again under a new id: kept as it was
    let mut again = entry(user, 7);
    again.message_id = first.message_id;
    assert!(!env.write_entry(&again).await);
    let listed = env.store.list_inbox(user, false, None, 10).await.unwrap();
    assert_eq!(listed, [first.clone()]);
    // another recipient of the same message has their own entry
    let mut theirs = entry(Uuid::now_v7(), 7);
    theirs.message_id = first.message_id;
    assert!(env.write_entry(&theirs).await);
}

/// A message's entries go in as one multi-row write (several INSERTs past 1,000 recipients):
/// only the recipients without an entry for it are reported written.
pub async fn a_batch_of_entries_reports_only_the_new_ones(env: &Env) {
    let message = MessageId::new_v7();
    let for_message = |user: UserId| {
        let mut e = entry(user, 3);
        e.message_id = message;
        e
    };
    let earlier = for_message(UserId::new_v7());
    assert!(env.write_entry(&earlier).await);
    let mut batch: Vec<_> = (0..1_203).map(|_| for_message(UserId::new_v7())).collect();
    batch.insert(600, for_message(earlier.user_id));
    let mut tx = env.store.database().begin().await.unwrap();
    let written = inbox::store::write_entries(&mut tx, &batch).await.unwrap();
    tx.commit().await.unwrap();
    let mut expected: Vec<UserId> = batch
        .iter()
        .filter(|e| e.user_id != earlier.user_id)
        .map(|e| e.user_id)
        .collect();
    let mut written = written;
    expected.sort();
    written.sort();
    assert_eq!(written, expected);
    let kept = env
        .store
        .list_inbox(earlier.user_id, false, None, 10)
        .await
        .unwrap();
    assert_eq!(kept, [earlier], "the existing entry is kept as it was");
}

/// Every entry id of `user`'s inbox through ListInbox pages of `size`.
async fn pages(env: &Env, user: UserId, size: i32, unread_only: bool) -> Vec<Uuid> {
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListInboxRequest {
            page_size: size,
            page_token,
            unread_only,
        };
        let page = inbox::list(&env.store, user, request).await.unwrap();
        let limit = if size == 0 { 50 } else { size as usize };
        assert!(page.entries.len() <= limit);
        for entry in &page.entries {
            assert!(!unread_only || !entry.read);
            seen.push(entry.inbox_entry_id.parse().unwrap());
        }
        if page.next_page_token.is_empty() {
            return seen;
        }
        page_token = page.next_page_token;
    }
}

pub async fn list_pages_newest_first(env: &Env) {
    let user = UserId::new_v7();
    let written = env.entries(user, 7).await;
    env.entries(Uuid::now_v7(), 2).await;
    let newest_first: Vec<Uuid> = written.iter().rev().map(|e| e.id).collect();
    assert_eq!(pages(env, user, 3, false).await, newest_first);
    assert_eq!(
        pages(env, user, 0, false).await,
        newest_first,
        "default size"
    );
    // the store's own keyset
    let below = env
        .store
        .list_inbox(user, false, Some(newest_first[2]), 2)
        .await
        .unwrap();
    let below: Vec<Uuid> = below.iter().map(|e| e.id).collect();
    assert_eq!(below, newest_first[3..5]);
}

pub async fn unread_only_is_part_of_the_page_token(env: &Env) {
    let user = UserId::new_v7();
    let written = env.entries(user, 6).await;
    // entries 0..=2 read
    env.store
        .mark_read(user, MarkTarget::UpTo(written[2].id))
        .await
        .unwrap();
    let unread: Vec<Uuid> = written[3..].iter().rev().map(|e| e.id).collect();
    assert_eq!(pages(env, user, 2, true).await, unread);
    assert_eq!(pages(env, user, 2, false).await.len(), 6);
    // a token issued with unread_only = true is refused with false, and the other way round
    for unread_only in [true, false] {
        let first = inbox::list(
            &env.store,
            user,
            pb::ListInboxRequest {
                page_size: 1,
                page_token: String::new(),
                unread_only,
            },
        )
        .await
        .unwrap();
        let mismatched = pb::ListInboxRequest {
            page_size: 1,
            page_token: first.next_page_token,
            unread_only: !unread_only,
        };
        match inbox::list(&env.store, user, mismatched).await {
            Err(NotificationError::Invalid(Failure::InvalidArgument(v))) => {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].field, "page_token");
            }
            other => panic!("expected page_token violation, got {other:?}"),
        }
    }
    // a token of another list is refused too
    let tokens_page = echo_runtime::page::encode(&serde_json::json!({
        "before_push_token_id": Uuid::now_v7()
    }));
    let foreign = pb::ListInboxRequest {
        page_size: 1,
        page_token: tokens_page,
        unread_only: false,
    };
    assert!(matches!(
        inbox::list(&env.store, user, foreign).await,
        Err(NotificationError::Invalid(_))
    ));
}

pub async fn mark_up_to_marks_that_entry_and_older(env: &Env) {
    let user = UserId::new_v7();
    let written = env.entries(user, 5).await;
    let other = env.entries(Uuid::now_v7(), 2).await;
    let marked = env
        .store
        .mark_read(user, MarkTarget::UpTo(written[2].id))
        .await
        .unwrap();
    assert_eq!(
        marked,
        Marked {
            marked: 3,
            unread_left: 2
        }
    );
    let listed = env.store.list_inbox(user, false, None, 10).await.unwrap();
    let read: Vec<bool> = listed.iter().rev().map(|e| e.read).collect();
    assert_eq!(read, [true, true, true, false, false]);
    // again: nothing new to mark
    let again = env
        .store
        .mark_read(user, MarkTarget::UpTo(written[1].id))
        .await
        .unwrap();
    assert_eq!(
        again,
        Marked {
            marked: 0,
            unread_left: 2
        }
    );
    // another user's entries are untouched
    assert_eq!(env.store.unread_inbox(other[0].user_id).await.unwrap(), 2);
    // through the RPC mapping
    let request = pb::MarkInboxReadRequest {
        target: Some(pb::mark_inbox_read_request::Target::UpToInboxEntryId(
            written[4].id.to_string(),
        )),
    };
    let reply = inbox::mark_read(&env.store, user, request).await.unwrap();
    assert_eq!((reply.marked_count, reply.unread_inbox_entries), (2, 0));
}

pub async fn mark_all_marks_everything(env: &Env) {
    let user = UserId::new_v7();
    env.entries(user, 4).await;
    let other = UserId::new_v7();
    env.entries(other, 1).await;
    let request = pb::MarkInboxReadRequest {
        target: Some(pb::mark_inbox_read_request::Target::All(true)),
    };
    let reply = inbox::mark_read(&env.store, user, request.clone())
        .await
        .unwrap();
    assert_eq!((reply.marked_count, reply.unread_inbox_entries), (4, 0));
    let reply = inbox::mark_read(&env.store, user, request).await.unwrap();
    assert_eq!((reply.marked_count, reply.unread_inbox_entries), (0, 0));
    assert_eq!(env.store.unread_inbox(other).await.unwrap(), 1);
    // an empty inbox is fine too
    let empty = env
        .store
        .mark_read(UserId::new_v7(), MarkTarget::All)
        .await
        .unwrap();
    assert_eq!(
        empty,
        Marked {
            marked: 0,
            unread_left: 0
        }
    );
}

pub async fn foreign_and_unknown_entries_are_not_found(env: &Env) {
    let (ada, bob) = (UserId::new_v7(), UserId::new_v7());
    env.entries(ada, 2).await;
    let bobs = env.entries(bob, 2).await;
    for id in [bobs[1].id, Uuid::now_v7()] {
        let refused = env.store.mark_read(ada, MarkTarget::UpTo(id)).await;
        assert!(
            matches!(refused, Err(NotificationError::InboxEntryNotFound)),
            "{refused:?}"
        );
    }
    assert_eq!(env.store.unread_inbox(ada).await.unwrap(), 2);
    assert_eq!(env.store.unread_inbox(bob).await.unwrap(), 2);
}

pub async fn trim_drops_old_entries_and_each_users_oldest_past_the_cap(env: &Env) {
    let (ada, bob) = (UserId::new_v7(), UserId::new_v7());
    let mut old = entry(ada, 1);
    old.created_at = crate::common::now() - chrono::Duration::days(91);
    env.write_entry(&old).await;
    let mut adas = Vec::new();
    for seq in 2..=6 {
        let e = entry(ada, seq);
        env.write_entry(&e).await;
        adas.push(e.id);
    }
    let bobs = entry(bob, 1);
    env.write_entry(&bobs).await;
    let before = crate::common::now() - chrono::Duration::days(90);
    let gone = inbox::store::trim(env.store.database(), before, 3)
        .await
        .unwrap();
    assert_eq!(gone, 3, "the old entry and Ada's two oldest past 3");
    let kept: Vec<Uuid> = env
        .store
        .list_inbox(ada, false, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    adas.reverse();
    assert_eq!(kept, adas[..3], "Ada keeps her 3 newest");
    assert_eq!(
        env.store
            .list_inbox(bob, false, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}
