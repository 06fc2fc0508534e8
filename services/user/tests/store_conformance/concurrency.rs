//! What must hold when calls race: unique usernames, crossing requests, the contact quota.

use echo_user::error::UserError;
use echo_user::store::{ProfileChange, RequestState};
use tokio::task::JoinSet;

use crate::common::*;

/// Twenty users claim one username, each in another case, at once: exactly one gets it.
pub async fn concurrent_username_claims(env: &Env) {
    let users: [UserId; 20] = env.users().await;
    let mut claims = JoinSet::new();
    for (n, user) in users.into_iter().enumerate() {
        let store = env.store.clone();
        // "popular" with the letters whose bit is set in n uppercased: 20 spellings.
        let username: String = "popular"
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if n >> i & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        claims.spawn(async move {
            let change = ProfileChange {
                username: Some(Some(username)),
                ..ProfileChange::default()
            };
            store
                .update_profile(user, &change, now(), &profile_event)
                .await
        });
    }
    let mut won = Vec::new();
    while let Some(claim) = claims.join_next().await {
        match claim.unwrap() {
            Ok(profile) => won.push(profile.user_id),
            Err(UserError::UsernameTaken) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won.len(), 1, "winners: {won:?}");
    let holders = env
        .count(
            "SELECT count(*) FROM profiles WHERE username_key = $1",
            &["popular".to_owned()],
        )
        .await;
    assert_eq!(holders, 1);
    assert_eq!(env.outbox_ids().await.len(), 1);
    let winner = env.store.profile(won[0]).await.unwrap().unwrap();
    assert_eq!(
        winner.username.map(|u| u.to_lowercase()).as_deref(),
        Some("popular")
    );
}

/// Pairs of users sending each other a request at the same moment end as mutual contacts with
/// no open request left: one call stores the request, the other accepts it.
pub async fn crossing_requests_race(env: &Env) {
    const PAIRS: usize = 10;
    let mut pairs = Vec::new();
    for _ in 0..PAIRS {
        let [a, b] = env.users().await;
        pairs.push((a, b));
    }
    let mut sends = JoinSet::new();
    for &(a, b) in &pairs {
        for (sender, recipient) in [(a, b), (b, a)] {
            let store = env.store.clone();
            sends.spawn(async move {
                let request = store
                    .send_contact_request(ContactRequestId::new_v7(), sender, recipient, "", now())
                    .await;
                (sender, recipient, request)
            });
        }
    }
    let mut outcomes = Vec::new();
    while let Some(sent) = sends.join_next().await {
        let (sender, recipient, request) = sent.unwrap();
        outcomes.push((sender, recipient, request.expect("send contact request")));
    }

    for (a, b) in pairs {
        let relations = env.store.relations(a, &[b]).await.unwrap();
        let relation = relations.get(&b).cloned().unwrap_or_default();
        assert!(
            relation.is_contact() && relation.in_their_contacts,
            "{relation:?}"
        );
        assert_eq!(env.open_requests(a, b).await, 0);
        assert_eq!(env.open_requests(b, a).await, 0);
        let mut states: Vec<(ContactRequestId, RequestState)> = outcomes
            .iter()
            .filter(|(s, r, _)| (*s, *r) == (a, b) || (*s, *r) == (b, a))
            .map(|(_, _, request)| (request.id, request.state))
            .collect();
        states.sort_by_key(|(_, state)| state.code());
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].0, states[1].0, "both calls name one request");
        assert_eq!(
            [states[0].1, states[1].1],
            [RequestState::Pending, RequestState::Accepted]
        );
    }
    assert_eq!(env.rows("contact_requests").await, PAIRS as i64);
}

/// Concurrent additions to one list respect the limit exactly.
pub async fn concurrent_adds_respect_contact_limit(env: &Env) {
    let owner = env.register("Owner").await;
    let contacts: [UserId; 20] = env.users().await;
    let mut adds = JoinSet::new();
    for contact in contacts {
        let store = env.store.clone();
        adds.spawn(async move { store.add_contact(owner, contact, "", now(), 5).await });
    }
    let mut added = 0;
    while let Some(add) = adds.join_next().await {
        match add.unwrap() {
            Ok(_) => added += 1,
            Err(UserError::LimitExceeded {
                limit: "contacts", ..
            }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, 5);
    assert_eq!(env.rows("contacts").await, 5);
}
