//! Blocks: what a block cancels, its events, and the blocked list.

use chrono::Duration;
use echo_user::error::UserError;
use echo_user::store::{BlockEntry, BlockPosition, RequestState};

use crate::common::*;

async fn send(env: &Env, sender: UserId, recipient: UserId) -> ContactRequestId {
    let request = env
        .store
        .send_contact_request(ContactRequestId::new_v7(), sender, recipient, "", now())
        .await
        .expect("send contact request");
    request.id
}

async fn state(env: &Env, id: ContactRequestId) -> RequestState {
    env.store.contact_request(id).await.unwrap().unwrap().state
}

/// A new block cancels the open requests between the two, both ways, and appends its event in
/// the same transaction; blocking again changes nothing and appends nothing.
pub async fn block_cancels_open_requests(env: &Env) {
    let [ada, bob, cy, dee, eve, fay] = env.users().await;
    let outgoing = send(env, ada, bob).await;
    let incoming = send(env, cy, ada).await;
    let declined = send(env, dee, ada).await;
    env.store
        .decline_contact_request(ada, declined, now())
        .await
        .unwrap();
    let accepted = send(env, eve, ada).await;
    env.store
        .accept_contact_request(ada, accepted, now())
        .await
        .unwrap();
    let unrelated = send(env, fay, ada).await;

    let at = now();
    let mut events = Vec::new();
    for blocked in [bob, cy, dee, eve] {
        let event = block_event("blocked", ada);
        assert!(env.store.block(ada, blocked, at, &event).await.unwrap());
        events.push(event.id);
    }
    assert_eq!(env.outbox_ids_of("echo.user.blocked.").await, events);
    for id in [outgoing, incoming, declined] {
        assert_eq!(state(env, id).await, RequestState::Cancelled);
        let request = env.store.contact_request(id).await.unwrap().unwrap();
        assert_eq!(request.updated_at, at);
    }
    // A block leaves contacts and settled requests alone.
    assert_eq!(state(env, accepted).await, RequestState::Accepted);
    assert_eq!(state(env, unrelated).await, RequestState::Pending);
    assert_eq!(env.rows("contacts").await, 2);

    let later = at + Duration::seconds(1);
    let repeated = env
        .store
        .block(ada, bob, later, &block_event("blocked", ada))
        .await;
    assert!(!repeated.unwrap());
    assert_eq!(env.outbox_ids_of("echo.user.blocked.").await, events);
    let listed = env.store.list_blocked(ada, None, 10).await.unwrap();
    assert!(listed.iter().all(|entry| entry.blocked_at == at));
    assert_eq!(env.rows("blocks").await, 4);

    let gone = env.register("Gone").await;
    env.erase(gone, now()).await;
    for nobody in [UserId::new_v7(), gone] {
        let refused = env
            .store
            .block(ada, nobody, now(), &block_event("blocked", ada))
            .await;
        assert!(
            matches!(refused, Err(UserError::UserNotFound)),
            "{refused:?}"
        );
    }
    assert_eq!(env.outbox_ids_of("echo.user.blocked.").await, events);
    assert_eq!(env.rows("blocks").await, 4);
}

/// A block leaves the contact entries between the two as they are (visibility applies the
/// block on top of them), so it publishes no `ContactRemoved`, only its own event; the entries
/// and their events stay in step.
pub async fn block_keeps_contacts_and_publishes_no_removal(env: &Env) {
    let [ada, bob, cy] = env.users().await;
    env.befriend(ada, bob).await;
    env.store.add_contact(cy, ada, "", now(), 10).await.unwrap();
    let added_before = env.contacts_added().await;
    assert_eq!(added_before.len(), 3);

    let blocked = block_event("blocked", ada);
    assert!(env.store.block(ada, bob, now(), &blocked).await.unwrap());
    let by_cy = block_event("blocked", ada);
    assert!(env.store.block(ada, cy, now(), &by_cy).await.unwrap());

    assert_eq!(env.rows("contacts").await, 3);
    assert!(env.contacts_removed().await.is_empty());
    assert_eq!(env.contacts_added().await, added_before);
    assert_eq!(
        env.outbox_ids_of("echo.user.blocked.").await,
        [blocked.id, by_cy.id]
    );

    // Removing an entry after the block publishes its removal as usual.
    env.store.remove_contact(bob, ada).await.unwrap();
    assert_eq!(env.contacts_removed().await, [(bob, ada)]);
}

/// Unblocking lifts the block and appends its event; without a block it does neither.
pub async fn unblock_appends_event_only_when_blocked(env: &Env) {
    let [ada, bob] = env.users().await;
    let blocked = block_event("blocked", ada);
    env.store.block(ada, bob, now(), &blocked).await.unwrap();

    let unblocked = block_event("unblocked", ada);
    assert!(env.store.unblock(ada, bob, &unblocked).await.unwrap());
    assert_eq!(env.outbox_ids().await, [blocked.id, unblocked.id]);
    assert_eq!(env.rows("blocks").await, 0);

    let again = block_event("unblocked", ada);
    assert!(!env.store.unblock(ada, bob, &again).await.unwrap());
    assert!(!env.store.unblock(bob, ada, &again).await.unwrap());
    assert_eq!(env.outbox_ids().await, [blocked.id, unblocked.id]);

    // Requests flow again.
    let request = env
        .store
        .send_contact_request(ContactRequestId::new_v7(), ada, bob, "", now())
        .await
        .unwrap();
    assert_eq!(request.state, RequestState::Pending);
}

/// The list is newest first, ties by user id descending, and pages continue after the last
/// entry.
pub async fn list_blocked_newest_first(env: &Env) {
    let owner = env.register("Owner").await;
    let blocked: [UserId; 5] = env.users().await;
    let base = now();
    let offsets = [0, 1, 1, 2, 3];
    let mut expected = Vec::new();
    for (id, offset) in blocked.iter().zip(offsets) {
        let at = base + Duration::milliseconds(offset) + Duration::microseconds(offset);
        env.store
            .block(owner, *id, at, &block_event("blocked", owner))
            .await
            .unwrap();
        expected.push(BlockEntry {
            user_id: *id,
            blocked_at: at,
        });
    }
    expected.sort_by_key(|entry| std::cmp::Reverse((entry.blocked_at, entry.user_id)));
    // Someone else's blocks are not the owner's.
    env.block(blocked[0], owner).await;

    assert_eq!(
        env.store.list_blocked(owner, None, 10).await.unwrap(),
        expected
    );
    for page_size in [1, 2] {
        let mut paged = Vec::new();
        let mut after: Option<BlockPosition> = None;
        loop {
            let page = env
                .store
                .list_blocked(owner, after.as_ref(), page_size)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(BlockPosition {
                blocked_at_micros: last.blocked_at.timestamp_micros(),
                user_id: last.user_id,
            });
            paged.extend(page);
        }
        assert_eq!(paged, expected, "page size {page_size}");
    }
}
