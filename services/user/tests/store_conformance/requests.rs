//! Contact requests: sending, the crossing auto-accept, refusals, accept, decline, cancel,
//! and the two lists.
//!
//! One file because every case is a step of the one request lifecycle (pending, accepted,
//! declined, cancelled, auto-accepted) over the same helpers (`send`, `state`,
//! `has_contact`).

use chrono::Duration;
use echo_user::error::UserError;
use echo_user::store::{ContactRequest, Direction, RequestState};

use crate::common::*;

async fn send(env: &Env, sender: UserId, recipient: UserId) -> ContactRequest {
    env.store
        .send_contact_request(ContactRequestId::new_v7(), sender, recipient, "", now())
        .await
        .expect("send contact request")
}

async fn state(env: &Env, id: ContactRequestId) -> RequestState {
    env.store.contact_request(id).await.unwrap().unwrap().state
}

async fn has_contact(env: &Env, owner: UserId, contact: UserId) -> Option<String> {
    let relations = env.store.relations(owner, &[contact]).await.unwrap();
    relations
        .get(&contact)
        .and_then(|r| r.contact_alias.clone())
}

/// A new request is pending; sending again while it is open (pending or declined) returns it
/// unchanged.
pub async fn send_request_and_resend(env: &Env) {
    let [ada, bob] = env.users().await;
    let id = ContactRequestId::new_v7();
    let at = now();
    let sent = env
        .store
        .send_contact_request(id, ada, bob, "hi, it's Ada", at)
        .await
        .unwrap();
    let expected = ContactRequest {
        id,
        sender_id: ada,
        recipient_id: bob,
        message: "hi, it's Ada".to_owned(),
        state: RequestState::Pending,
        created_at: at,
        updated_at: at,
    };
    assert_eq!(sent, expected);
    assert_eq!(
        env.store.contact_request(id).await.unwrap(),
        Some(expected.clone())
    );

    let later = at + Duration::seconds(1);
    let other_id = ContactRequestId::new_v7();
    let resent = env
        .store
        .send_contact_request(other_id, ada, bob, "again", later)
        .await
        .unwrap();
    assert_eq!(resent, expected);
    assert_eq!(env.store.contact_request(other_id).await.unwrap(), None);

    assert!(
        env.store
            .decline_contact_request(bob, id, later)
            .await
            .unwrap()
    );
    let declined = env.store.contact_request(id).await.unwrap().unwrap();
    let resent = env
        .store
        .send_contact_request(ContactRequestId::new_v7(), ada, bob, "again", later)
        .await
        .unwrap();
    assert_eq!(resent, declined);
    assert_eq!(env.rows("contact_requests").await, 1);
    assert_eq!(
        env.store
            .contact_request(ContactRequestId::new_v7())
            .await
            .unwrap(),
        None
    );
}

/// Sending to someone whose own request to the sender is open (pending or declined) accepts
/// that request: both become contacts, existing entries keep their alias.
pub async fn crossing_request_accepts(env: &Env) {
    let [ada, bob, cy, dee] = env.users().await;
    let first = send(env, ada, bob).await;
    env.store
        .add_contact(bob, ada, "Ann", now(), 10)
        .await
        .unwrap();
    let at = now() + Duration::seconds(1);
    let crossing = env
        .store
        .send_contact_request(ContactRequestId::new_v7(), bob, ada, "", at)
        .await
        .unwrap();
    assert_eq!(
        crossing,
        ContactRequest {
            state: RequestState::Accepted,
            updated_at: at,
            ..first.clone()
        }
    );
    assert_eq!(state(env, first.id).await, RequestState::Accepted);
    assert_eq!(has_contact(env, ada, bob).await.as_deref(), Some(""));
    assert_eq!(has_contact(env, bob, ada).await.as_deref(), Some("Ann"));
    assert_eq!(env.rows("contact_requests").await, 1);

    let declined = send(env, cy, dee).await;
    assert!(
        env.store
            .decline_contact_request(dee, declined.id, now())
            .await
            .unwrap()
    );
    let crossing = send(env, dee, cy).await;
    assert_eq!(crossing.id, declined.id);
    assert_eq!(crossing.state, RequestState::Accepted);
    assert!(has_contact(env, cy, dee).await.is_some());
    assert!(has_contact(env, dee, cy).await.is_some());
    assert_eq!(env.open_requests(cy, dee).await, 0);
    assert_eq!(env.open_requests(dee, cy).await, 0);
}

/// Unknown or deleted recipients, a block in either direction, and mutual contacts are
/// refused without storing anything; a one-sided contact may still ask.
pub async fn send_request_refusals(env: &Env) {
    let [ada, gone, blocked, blocker, friend, known] = env.users().await;
    env.erase(gone, now()).await;
    env.block(ada, blocked).await;
    env.block(blocker, ada).await;
    env.befriend(ada, friend).await;
    env.store
        .add_contact(ada, known, "", now(), 10)
        .await
        .unwrap();

    let attempts = [
        (ada, UserId::new_v7(), "unknown"),
        (ada, gone, "deleted"),
        (ada, blocked, "blocked by the sender"),
        (blocked, ada, "blocked by the recipient"),
        (ada, blocker, "the recipient blocked"),
        (ada, friend, "contacts"),
        (friend, ada, "contacts, other way"),
    ];
    for (sender, recipient, why) in attempts {
        let refused = env
            .store
            .send_contact_request(ContactRequestId::new_v7(), sender, recipient, "", now())
            .await;
        let expected_right = match why {
            "unknown" | "deleted" => matches!(refused, Err(UserError::UserNotFound)),
            "contacts" | "contacts, other way" => {
                matches!(refused, Err(UserError::AlreadyContacts))
            }
            _ => matches!(refused, Err(UserError::Blocked)),
        };
        assert!(expected_right, "{why}: {refused:?}");
    }
    assert_eq!(env.rows("contact_requests").await, 0);

    let sent = send(env, ada, known).await;
    assert_eq!(sent.state, RequestState::Pending);
}

/// Only the recipient accepts a pending request (both become contacts, aliases kept);
/// accepting again returns it unchanged; declined and cancelled requests cannot be accepted.
pub async fn accept_request(env: &Env) {
    let [ada, bob, stranger, cy, dee] = env.users().await;
    let request = send(env, ada, bob).await;
    env.store
        .add_contact(bob, ada, "Ann", now(), 10)
        .await
        .unwrap();
    for (who, id) in [
        (ada, request.id),
        (stranger, request.id),
        (bob, ContactRequestId::new_v7()),
    ] {
        let refused = env.store.accept_contact_request(who, id, now()).await;
        assert_eq!(refused.unwrap(), None);
    }
    assert_eq!(state(env, request.id).await, RequestState::Pending);
    assert_eq!(has_contact(env, ada, bob).await, None);

    let at = now() + Duration::seconds(1);
    let accepted = env
        .store
        .accept_contact_request(bob, request.id, at)
        .await
        .unwrap();
    let expected = ContactRequest {
        state: RequestState::Accepted,
        updated_at: at,
        ..request.clone()
    };
    assert_eq!(accepted, Some(expected.clone()));
    assert_eq!(has_contact(env, ada, bob).await.as_deref(), Some(""));
    assert_eq!(has_contact(env, bob, ada).await.as_deref(), Some("Ann"));

    let again = env
        .store
        .accept_contact_request(bob, request.id, at + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(again, Some(expected));
    assert_eq!(env.rows("contacts").await, 2);

    let declined = send(env, cy, dee).await;
    assert!(
        env.store
            .decline_contact_request(dee, declined.id, now())
            .await
            .unwrap()
    );
    let refused = env.store.accept_contact_request(dee, declined.id, now());
    assert_eq!(refused.await.unwrap(), None);
    assert!(
        env.store
            .cancel_contact_request(cy, declined.id, now())
            .await
            .unwrap()
    );
    let refused = env.store.accept_contact_request(dee, declined.id, now());
    assert_eq!(refused.await.unwrap(), None);
    assert_eq!(state(env, declined.id).await, RequestState::Cancelled);
    assert_eq!(has_contact(env, dee, cy).await, None);
}

/// Accepting appends one `ContactAdded` per direction it added, in its transaction: two for
/// strangers, one when the other direction already existed, none for a repeat. A crossing
/// request does the same; sending, declining and cancelling publish nothing.
pub async fn accepted_requests_publish_contact_added(env: &Env) {
    let [ada, bob, cy, dee, eve] = env.users().await;
    let request = send(env, ada, bob).await;
    assert!(env.contacts_added().await.is_empty());

    env.store
        .accept_contact_request(bob, request.id, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sorted(env.contacts_added().await),
        sorted(vec![(ada, bob), (bob, ada)])
    );
    env.store
        .accept_contact_request(bob, request.id, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(env.contacts_added().await.len(), 2);

    // Crossing requests: the second send accepts both ways.
    send(env, ada, cy).await;
    let crossed = send(env, cy, ada).await;
    assert_eq!(crossed.state, RequestState::Accepted);
    let mut expected = vec![(ada, bob), (bob, ada), (ada, cy), (cy, ada)];
    assert_eq!(sorted(env.contacts_added().await), sorted(expected.clone()));

    // Dee already has Ada: accepting adds (and publishes) only Ada's side.
    env.store
        .add_contact(dee, ada, "", now(), 10)
        .await
        .unwrap();
    let request = send(env, ada, dee).await;
    env.store
        .accept_contact_request(dee, request.id, now())
        .await
        .unwrap()
        .unwrap();
    expected.extend([(dee, ada), (ada, dee)]);
    assert_eq!(sorted(env.contacts_added().await), sorted(expected.clone()));

    let declined = send(env, eve, ada).await;
    assert!(
        env.store
            .decline_contact_request(ada, declined.id, now())
            .await
            .unwrap()
    );
    assert!(
        env.store
            .cancel_contact_request(eve, declined.id, now())
            .await
            .unwrap()
    );
    assert_eq!(sorted(env.contacts_added().await), sorted(expected));
    assert!(env.contacts_removed().await.is_empty());
    assert_eq!(env.appended().await.len(), 6);
}

fn sorted(mut pairs: Vec<(UserId, UserId)>) -> Vec<(UserId, UserId)> {
    pairs.sort();
    pairs
}

/// Only the recipient declines, and only a pending request; only the sender cancels, a
/// pending or declined request.
pub async fn decline_and_cancel(env: &Env) {
    let [ada, bob, cy, dee] = env.users().await;
    let request = send(env, ada, bob).await;
    let at = now() + Duration::seconds(1);
    assert!(
        !env.store
            .decline_contact_request(ada, request.id, at)
            .await
            .unwrap()
    );
    assert!(
        env.store
            .decline_contact_request(bob, request.id, at)
            .await
            .unwrap()
    );
    let declined = env.store.contact_request(request.id).await.unwrap();
    let expected = ContactRequest {
        state: RequestState::Declined,
        updated_at: at,
        ..request.clone()
    };
    assert_eq!(declined, Some(expected));
    assert!(
        !env.store
            .decline_contact_request(bob, request.id, now())
            .await
            .unwrap()
    );

    assert!(
        !env.store
            .cancel_contact_request(bob, request.id, now())
            .await
            .unwrap()
    );
    let later = at + Duration::seconds(1);
    assert!(
        env.store
            .cancel_contact_request(ada, request.id, later)
            .await
            .unwrap()
    );
    let cancelled = env
        .store
        .contact_request(request.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (cancelled.state, cancelled.updated_at),
        (RequestState::Cancelled, later)
    );
    assert!(
        !env.store
            .cancel_contact_request(ada, request.id, now())
            .await
            .unwrap()
    );

    // Nothing is open any more: a new request can be sent, and cancelled while pending.
    let renewed = send(env, ada, bob).await;
    assert_ne!(renewed.id, request.id);
    assert!(
        env.store
            .cancel_contact_request(ada, renewed.id, now())
            .await
            .unwrap()
    );

    let accepted = send(env, cy, dee).await;
    env.store
        .accept_contact_request(dee, accepted.id, now())
        .await
        .unwrap();
    assert!(
        !env.store
            .cancel_contact_request(cy, accepted.id, now())
            .await
            .unwrap()
    );
    assert!(
        !env.store
            .decline_contact_request(dee, accepted.id, now())
            .await
            .unwrap()
    );
    assert_eq!(state(env, accepted.id).await, RequestState::Accepted);
}

/// Incoming: pending requests to the user. Outgoing: pending and declined requests from
/// them. Newest (highest id) first, pages below the last id.
pub async fn list_requests_newest_first(env: &Env) {
    let me = env.register("Me").await;
    let senders: [UserId; 5] = env.users().await;
    let mut incoming = Vec::new();
    for sender in senders {
        incoming.push(send(env, sender, me).await);
    }
    let [s1, s2, s3, s4, s5] = [0, 1, 2, 3, 4].map(|n| incoming[n].clone());
    env.store
        .decline_contact_request(me, s2.id, now())
        .await
        .unwrap();
    env.store
        .cancel_contact_request(s3.sender_id, s3.id, now())
        .await
        .unwrap();
    env.store
        .accept_contact_request(me, s4.id, now())
        .await
        .unwrap();

    let recipients: [UserId; 5] = env.users().await;
    let mut outgoing = Vec::new();
    for recipient in recipients {
        outgoing.push(send(env, me, recipient).await);
    }
    let [r1, r2, r3, r4, r5] = [0, 1, 2, 3, 4].map(|n| outgoing[n].clone());
    env.store
        .decline_contact_request(r2.recipient_id, r2.id, now())
        .await
        .unwrap();
    env.store
        .cancel_contact_request(me, r3.id, now())
        .await
        .unwrap();
    env.store
        .accept_contact_request(r4.recipient_id, r4.id, now())
        .await
        .unwrap();

    let newest_first = |requests: &[&ContactRequest]| -> Vec<ContactRequestId> {
        let mut ids: Vec<ContactRequestId> = requests.iter().map(|r| r.id).collect();
        ids.sort_by_key(|&id| std::cmp::Reverse(id));
        ids
    };
    let list = |direction, before, limit| async move {
        let page = env
            .store
            .list_contact_requests(me, direction, before, limit)
            .await
            .unwrap();
        page.iter().map(|r| r.id).collect::<Vec<ContactRequestId>>()
    };
    let expected_in = newest_first(&[&s1, &s5]);
    let expected_out = newest_first(&[&r1, &r2, &r5]);
    assert_eq!(list(Direction::Incoming, None, 10).await, expected_in);
    assert_eq!(list(Direction::Outgoing, None, 10).await, expected_out);

    for (direction, expected) in [
        (Direction::Incoming, &expected_in),
        (Direction::Outgoing, &expected_out),
    ] {
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let page = list(direction, before, 1).await;
            let Some(last) = page.last() else { break };
            before = Some(*last);
            paged.extend(page);
        }
        assert_eq!(&paged, expected, "{direction:?}");
    }
    // The declined request still reads as the real state to the store's callers.
    let full = env
        .store
        .list_contact_requests(me, Direction::Outgoing, None, 10)
        .await
        .unwrap();
    assert!(
        full.iter()
            .any(|r| r.id == r2.id && r.state == RequestState::Declined)
    );
    let seen_by_r1 = env
        .store
        .list_contact_requests(r1.recipient_id, Direction::Incoming, None, 10)
        .await
        .unwrap();
    assert_eq!(seen_by_r1, [r1]);
}
