//! Address books, and how a viewer relates to others.

use chrono::Duration;
use echo_user::error::UserError;
use echo_user::store::{ContactEntry, ContactPosition, Relation};

use crate::common::*;

/// Adding is idempotent and sets the alias of an existing entry (keeping when it was added);
/// updating or removing an absent entry does nothing; only live users can be added.
pub async fn add_update_remove_contact(env: &Env) {
    let owner = env.register("Owner").await;
    let ada = env.register("Ada Lovelace").await;
    let added_at = now();

    let added = env
        .store
        .add_contact(owner, ada, "Mum", added_at, 10)
        .await
        .unwrap();
    let expected = ContactEntry {
        user_id: ada,
        alias: "Mum".to_owned(),
        created_at: added_at,
        sort_key: "mum".to_owned(),
    };
    assert_eq!(added, expected);

    let later = added_at + Duration::seconds(1);
    let again = env
        .store
        .add_contact(owner, ada, "", later, 10)
        .await
        .unwrap();
    let unaliased = ContactEntry {
        alias: String::new(),
        sort_key: "ada lovelace".to_owned(),
        ..expected.clone()
    };
    assert_eq!(again, unaliased);
    assert_eq!(env.rows("contacts").await, 1);

    let renamed = env.store.update_contact(owner, ada, "Countess").await;
    let aliased = ContactEntry {
        alias: "Countess".to_owned(),
        sort_key: "countess".to_owned(),
        ..expected
    };
    assert_eq!(renamed.unwrap(), Some(aliased.clone()));
    let listed = env.store.list_contacts(owner, None, 10).await.unwrap();
    assert_eq!(listed, [aliased]);

    let stranger = env.register("Stranger").await;
    let missing = env.store.update_contact(owner, stranger, "X").await;
    assert_eq!(missing.unwrap(), None);
    let gone = env.register("Gone").await;
    env.erase(gone, now()).await;
    for nobody in [UserId::new_v7(), gone] {
        let refused = env.store.add_contact(owner, nobody, "", now(), 10).await;
        assert!(
            matches!(refused, Err(UserError::UserNotFound)),
            "{refused:?}"
        );
    }
    assert_eq!(env.rows("contacts").await, 1);

    env.store.remove_contact(owner, ada).await.unwrap();
    env.store.remove_contact(owner, ada).await.unwrap();
    assert_eq!(env.rows("contacts").await, 0);
    let missing = env.store.update_contact(owner, ada, "Mum").await;
    assert_eq!(missing.unwrap(), None);
}

/// A new entry appends `ContactAdded` for its owner in its transaction; adding it again,
/// renaming it and a refused add append nothing. Removing an entry appends `ContactRemoved`
/// for that direction only (the other side keeps theirs), and removing an absent one nothing.
pub async fn contact_entries_publish_added_and_removed(env: &Env) {
    let [owner, ada, bob] = env.users().await;
    env.store
        .add_contact(owner, ada, "", now(), 1)
        .await
        .unwrap();
    assert_eq!(env.contacts_added().await, [(owner, ada)]);
    env.store
        .add_contact(owner, ada, "Mum", now(), 1)
        .await
        .unwrap();
    let renamed = env.store.update_contact(owner, ada, "Countess").await;
    assert!(renamed.unwrap().is_some());
    let refused = env.store.add_contact(owner, bob, "", now(), 1).await;
    assert!(
        matches!(
            refused,
            Err(UserError::LimitExceeded {
                limit: "contacts",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(env.contacts_added().await, [(owner, ada)]);

    env.store
        .add_contact(ada, owner, "", now(), 10)
        .await
        .unwrap();
    assert_eq!(env.contacts_added().await, [(owner, ada), (ada, owner)]);

    env.store.remove_contact(owner, ada).await.unwrap();
    assert_eq!(env.contacts_removed().await, [(owner, ada)]);
    assert_eq!(env.rows("contacts").await, 1);
    env.store.remove_contact(owner, ada).await.unwrap();
    env.store.remove_contact(owner, bob).await.unwrap();
    assert_eq!(env.contacts_removed().await, [(owner, ada)]);

    env.store.remove_contact(ada, owner).await.unwrap();
    assert_eq!(env.contacts_removed().await, [(owner, ada), (ada, owner)]);
    assert_eq!(env.rows("contacts").await, 0);
    assert_eq!(env.appended().await.len(), 4);
}

/// A new entry beyond `max_contacts` is refused; renaming an entry at the limit is not.
pub async fn contact_limit(env: &Env) {
    let [owner, a, b, c] = env.users().await;
    for id in [a, b] {
        env.store
            .add_contact(owner, id, "", now(), 2)
            .await
            .unwrap();
    }
    let refused = env.store.add_contact(owner, c, "", now(), 2).await;
    assert!(
        matches!(
            refused,
            Err(UserError::LimitExceeded {
                limit: "contacts",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(env.rows("contacts").await, 2);
    let renamed = env.store.add_contact(owner, a, "Al", now(), 2).await;
    assert_eq!(renamed.unwrap().alias, "Al");

    env.store.remove_contact(owner, b).await.unwrap();
    env.store.add_contact(owner, c, "", now(), 2).await.unwrap();
    // Others' lists do not count.
    env.store.add_contact(a, c, "", now(), 1).await.unwrap();
}

/// The list is ordered by alias, else display name, case-insensitively, then by id; pages
/// continue after their last entry.
pub async fn list_contacts_in_order_with_pages(env: &Env) {
    let owner = env.register("Owner").await;
    let bob = env.register("bob").await;
    let alice = env.register("Alice").await;
    let carol = env.register("Carol").await;
    let dave = env.register("Dave").await;
    let eve_1 = env.register("Eve").await;
    let eve_2 = env.register("eve").await;
    let (eve_1, eve_2) = (eve_1.min(eve_2), eve_1.max(eve_2));
    for (id, alias) in [
        (bob, ""),
        (alice, "Zed"),
        (carol, ""),
        (dave, "aaron"),
        (eve_2, ""),
        (eve_1, ""),
    ] {
        env.store
            .add_contact(owner, id, alias, now(), 100)
            .await
            .unwrap();
    }
    let expected = [
        (dave, "aaron"),
        (bob, "bob"),
        (carol, "carol"),
        (eve_1, "eve"),
        (eve_2, "eve"),
        (alice, "zed"),
    ];

    let all = env.store.list_contacts(owner, None, 100).await.unwrap();
    let order: Vec<(UserId, &str)> = all
        .iter()
        .map(|e| (e.user_id, e.sort_key.as_str()))
        .collect();
    assert_eq!(order, expected);

    for page_size in [1, 2, 4] {
        let mut paged = Vec::new();
        let mut after: Option<ContactPosition> = None;
        loop {
            let page = env
                .store
                .list_contacts(owner, after.as_ref(), page_size)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(ContactPosition {
                sort_key: last.sort_key.clone(),
                user_id: last.user_id,
            });
            paged.extend(page);
        }
        assert_eq!(paged, all, "page size {page_size}");
    }
    assert!(
        env.store
            .list_contacts(bob, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// All four flags, for a batch of users in one call; users without any relation read as the
/// default.
pub async fn relations_report_every_flag(env: &Env) {
    let [viewer, mine, theirs, mutual, blocked, blocker, stranger] = env.users().await;
    env.store
        .add_contact(viewer, mine, "Mine", now(), 100)
        .await
        .unwrap();
    env.store
        .add_contact(theirs, viewer, "", now(), 100)
        .await
        .unwrap();
    env.befriend(viewer, mutual).await;
    env.block(viewer, blocked).await;
    env.block(blocker, viewer).await;
    // Relations between others are not the viewer's.
    env.befriend(stranger, mine).await;
    env.block(stranger, theirs).await;
    let unknown = UserId::new_v7();

    let others = [
        mine, theirs, mutual, blocked, blocker, stranger, unknown, mine,
    ];
    let relations = env.store.relations(viewer, &others).await.unwrap();
    let of = |id: UserId| relations.get(&id).cloned().unwrap_or_default();
    assert_eq!(
        of(mine),
        Relation {
            contact_alias: Some("Mine".to_owned()),
            ..Relation::default()
        }
    );
    assert_eq!(
        of(theirs),
        Relation {
            in_their_contacts: true,
            ..Relation::default()
        }
    );
    assert_eq!(
        of(mutual),
        Relation {
            contact_alias: Some(String::new()),
            in_their_contacts: true,
            ..Relation::default()
        }
    );
    assert!(of(mutual).is_contact());
    assert_eq!(
        of(blocked),
        Relation {
            blocked: true,
            ..Relation::default()
        }
    );
    assert_eq!(
        of(blocker),
        Relation {
            blocked_by: true,
            ..Relation::default()
        }
    );
    assert_eq!(of(stranger), Relation::default());
    assert_eq!(of(unknown), Relation::default());
    assert!(relations.keys().all(|id| others.contains(id)));
    assert!(env.store.relations(viewer, &[]).await.unwrap().is_empty());
}
