//! What the consumer applies from auth's events: registrations and erasures.

use chrono::Duration;
use echo_user::store::{
    Avatar, Privacy, PrivacyChange, Profile, ProfileChange, Registration, Visibility, search_terms,
};

use crate::common::*;

/// A registration creates a registered, searchable profile with the default privacy and no
/// event of its own.
pub async fn registration_creates_profile(env: &Env) {
    let registration = registration("Ada Lovelace");
    env.record(&registration).await;

    let profile = env.store.profile(registration.user_id).await.unwrap();
    let expected = Profile {
        user_id: registration.user_id,
        display_name: "Ada Lovelace".to_owned(),
        username: None,
        about: String::new(),
        avatar: None,
        phone_number: Some(registration.phone_number.clone()),
        privacy: Privacy::default(),
        registered: true,
        created_at: registration.registered_at,
        updated_at: registration.registered_at,
        deleted_at: None,
    };
    assert_eq!(profile, Some(expected.clone()));
    assert_eq!(
        env.terms(registration.user_id).await,
        ["ada", "ada lovelace", "lovelace"]
    );
    assert_eq!(
        env.store
            .profile_by_phone(&registration.phone_number)
            .await
            .unwrap(),
        Some(expected)
    );
    assert_eq!(env.rows("outbox").await, 0);
}

/// A redelivered registration changes nothing, not even a display name chosen since.
pub async fn registration_is_idempotent(env: &Env) {
    let registration = registration("Ada Lovelace");
    env.record(&registration).await;
    let first = env.store.profile(registration.user_id).await.unwrap();
    env.record(&registration).await;
    assert_eq!(
        env.store.profile(registration.user_id).await.unwrap(),
        first
    );
    assert_eq!(env.rows("profiles").await, 1);
    assert_eq!(env.rows("profile_search_terms").await, 3);

    let renamed = env
        .store
        .update_profile(
            registration.user_id,
            &rename("Countess"),
            now() + Duration::seconds(1),
            &profile_event,
        )
        .await
        .unwrap();
    env.record(&registration).await;
    assert_eq!(
        env.store.profile(registration.user_id).await.unwrap(),
        Some(renamed)
    );
    assert_eq!(env.terms(registration.user_id).await, ["countess"]);
}

/// A profile the user's own calls created before the registration arrived is completed: phone,
/// `registered` and `created_at` from the registration, the display name only if none was
/// chosen.
pub async fn registration_completes_profile_created_first(env: &Env) {
    let registration = registration("Ada Lovelace");
    let early = registration.registered_at + Duration::seconds(5);
    let change = ProfileChange {
        display_name: Some("Countess".to_owned()),
        username: Some(Some("Countess_L".to_owned())),
        ..ProfileChange::default()
    };
    let before = env
        .store
        .update_profile(registration.user_id, &change, early, &profile_event)
        .await
        .unwrap();
    assert!(!before.registered);
    assert_eq!(before.phone_number, None);
    assert_eq!(before.created_at, early);

    env.record(&registration).await;
    let completed = env
        .store
        .profile(registration.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        completed,
        Profile {
            phone_number: Some(registration.phone_number.clone()),
            registered: true,
            created_at: registration.registered_at,
            ..before
        }
    );
    assert_eq!(
        env.terms(registration.user_id).await,
        search_terms("Countess", Some("Countess_L"))
    );

    // A profile created by a privacy change has no display name yet: it takes the registered one.
    let unnamed = crate::common::registration("Grace Hopper");
    let privacy = PrivacyChange {
        last_seen: Some(Visibility::Nobody),
        ..PrivacyChange::default()
    };
    env.store
        .update_privacy(unnamed.user_id, &privacy, early)
        .await
        .unwrap();
    env.record(&unnamed).await;
    let completed = env.store.profile(unnamed.user_id).await.unwrap().unwrap();
    assert_eq!(completed.display_name, "Grace Hopper");
    assert_eq!(completed.privacy.last_seen, Visibility::Nobody);
    assert!(completed.registered);
    assert_eq!(
        env.terms(unnamed.user_id).await,
        ["grace", "grace hopper", "hopper"]
    );
}

/// A registration arriving after the deletion does not revive the account.
pub async fn registration_never_revives_tombstone(env: &Env) {
    let registration = registration("Ada Lovelace");
    let deleted_at = now();
    env.erase(registration.user_id, deleted_at).await;
    env.record(&registration).await;

    let profile = env
        .store
        .profile(registration.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile.display_name, "");
    assert_eq!(profile.phone_number, None);
    assert!(!profile.registered);
    assert_eq!(profile.deleted_at, Some(deleted_at));
    assert!(env.terms(registration.user_id).await.is_empty());
    assert_eq!(
        env.store
            .profile_by_phone(&registration.phone_number)
            .await
            .unwrap(),
        None
    );
}

/// Erasure leaves a tombstone and removes the user's terms, contacts, requests and blocks in
/// both directions, and nobody else's.
pub async fn erase_user_removes_everything(env: &Env) {
    let ada = env.user("Ada Lovelace", "ada").await;
    let change = ProfileChange {
        about: Some("Analyst".to_owned()),
        avatar: Some(Some(Avatar {
            url: "https://cdn.example/ada.png".to_owned(),
            mime_type: "image/png".to_owned(),
            size_bytes: 1024,
            width: 64,
            height: 64,
        })),
        ..ProfileChange::default()
    };
    let alive = env
        .store
        .update_profile(ada, &change, now(), &profile_event)
        .await
        .unwrap();
    let [friend, fan, asked, asking, blocked, blocker, x, y] = env.users().await;
    env.befriend(ada, friend).await;
    env.store
        .add_contact(fan, ada, "", now(), 10)
        .await
        .unwrap();
    env.store
        .send_contact_request(ContactRequestId::new_v7(), ada, asked, "", now())
        .await
        .unwrap();
    env.store
        .send_contact_request(ContactRequestId::new_v7(), asking, ada, "", now())
        .await
        .unwrap();
    env.block(ada, blocked).await;
    env.block(blocker, ada).await;
    // Between others, untouched.
    env.befriend(x, y).await;
    env.store
        .send_contact_request(ContactRequestId::new_v7(), x, friend, "", now())
        .await
        .unwrap();
    env.block(y, friend).await;

    let at = now() + Duration::seconds(1);
    env.erase(ada, at).await;

    let tombstone = env.store.profile(ada).await.unwrap().unwrap();
    assert_eq!(
        tombstone,
        Profile {
            display_name: String::new(),
            username: None,
            about: String::new(),
            avatar: None,
            phone_number: None,
            updated_at: at,
            deleted_at: Some(at),
            ..alive.clone()
        }
    );
    assert!(env.terms(ada).await.is_empty());
    assert_eq!(
        env.rows_involving("contacts", "owner_id", "contact_id", ada)
            .await,
        0
    );
    let requests = env
        .rows_involving("contact_requests", "sender_id", "recipient_id", ada)
        .await;
    assert_eq!(requests, 0);
    let blocks = env
        .rows_involving("blocks", "blocker_id", "blocked_id", ada)
        .await;
    assert_eq!(blocks, 0);
    assert_eq!(env.rows("contacts").await, 2);
    assert_eq!(env.rows("contact_requests").await, 1);
    assert_eq!(env.rows("blocks").await, 1);
    assert_eq!(
        env.store
            .profile_by_phone(alive.phone_number.as_deref().unwrap())
            .await
            .unwrap(),
        None
    );
    // The username is free again.
    env.set_username(x, "ADA").await;

    // A redelivered deletion changes nothing.
    env.erase(ada, at + Duration::seconds(5)).await;
    assert_eq!(env.store.profile(ada).await.unwrap(), Some(tombstone));
}

/// Erasure appends, in the consumer's transaction, one `ContactRemoved` per entry that
/// existed: the erased user's own entries and each entry of them in another's list. Others'
/// entries publish nothing, nor does a redelivered deletion; a rolled-back erasure leaves
/// both the entries and the events out.
pub async fn erase_user_publishes_contact_removed(env: &Env) {
    let [ada, friend, fan, listed, x, y] = env.users().await;
    env.befriend(ada, friend).await;
    env.store
        .add_contact(fan, ada, "", now(), 10)
        .await
        .unwrap();
    env.store
        .add_contact(ada, listed, "", now(), 10)
        .await
        .unwrap();
    env.befriend(x, y).await;
    let added = env.appended().await.len();

    env.erase(ada, now()).await;
    let mut removed = env.contacts_removed().await;
    removed.sort();
    let mut expected = vec![(ada, friend), (friend, ada), (fan, ada), (ada, listed)];
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(env.appended().await.len(), added + 4);

    env.erase(ada, now()).await;
    assert_eq!(env.appended().await.len(), added + 4);

    let mut tx = env.test_db.db.begin().await.unwrap();
    env.store.erase_user(&mut tx, x, now()).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(env.appended().await.len(), added + 4);
    assert_eq!(env.rows("contacts").await, 2);

    let erased = UserId::new_v7();
    env.erase(erased, now()).await;
    assert_eq!(env.appended().await.len(), added + 4);
}

/// Erasing a user whose profile never existed leaves a tombstone.
pub async fn erase_user_without_profile(env: &Env) {
    let user = UserId::new_v7();
    let at = now();
    env.erase(user, at).await;
    let tombstone = env.store.profile(user).await.unwrap().unwrap();
    assert_eq!(tombstone.display_name, "");
    assert_eq!(tombstone.created_at, at);
    assert_eq!(tombstone.deleted_at, Some(at));
    assert!(env.terms(user).await.is_empty());
    let late = Registration {
        user_id: user,
        ..registration("Ada")
    };
    env.record(&late).await;
    assert_eq!(env.store.profile(user).await.unwrap(), Some(tombstone));
}
