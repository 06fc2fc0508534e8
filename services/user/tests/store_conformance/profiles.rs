//! Profile changes by their owner, privacy settings, and reads.
//!
//! One file because every case is about the one profile row: a change or a refusal, and the
//! event the change appends in its transaction (a split would cut the row's story in two).

use std::sync::Mutex;

use chrono::Duration;
use echo_bus::Event;
use echo_proto::echo::user::v1::{PrivacySettings, Visibility as WireVisibility};
use echo_user::error::UserError;
use echo_user::store::{Avatar, Privacy, PrivacyChange, Profile, ProfileChange, Visibility};

use crate::common::*;

/// Only the given fields change; the search terms follow; each change appends exactly one
/// event, built from the profile after it.
pub async fn update_profile_applies_given_fields_with_event(env: &Env) {
    let ada = env.register("Ada Lovelace").await;
    let registered = env.store.profile(ada).await.unwrap().unwrap();
    let built: Mutex<Vec<(Profile, Event)>> = Mutex::default();
    let event = |profile: &Profile| {
        let event = profile_event(profile);
        built.lock().unwrap().push((profile.clone(), event.clone()));
        event
    };
    let avatar = Avatar {
        url: "https://cdn.example/ada.png".to_owned(),
        mime_type: "image/png".to_owned(),
        size_bytes: 2048,
        width: 128,
        height: 96,
    };
    let changes = [
        rename("Ada King"),
        ProfileChange {
            about: Some("Analyst".to_owned()),
            avatar: Some(Some(avatar.clone())),
            ..ProfileChange::default()
        },
        ProfileChange {
            username: Some(Some("Ada_L".to_owned())),
            ..ProfileChange::default()
        },
        ProfileChange {
            username: Some(None),
            avatar: Some(None),
            ..ProfileChange::default()
        },
    ];
    let expected = [
        Profile {
            display_name: "Ada King".to_owned(),
            ..registered.clone()
        },
        Profile {
            display_name: "Ada King".to_owned(),
            about: "Analyst".to_owned(),
            avatar: Some(avatar.clone()),
            ..registered.clone()
        },
        Profile {
            display_name: "Ada King".to_owned(),
            username: Some("Ada_L".to_owned()),
            about: "Analyst".to_owned(),
            avatar: Some(avatar),
            ..registered.clone()
        },
        Profile {
            display_name: "Ada King".to_owned(),
            about: "Analyst".to_owned(),
            ..registered.clone()
        },
    ];
    let terms: [&[&str]; 4] = [
        &["ada", "ada king", "king"],
        &["ada", "ada king", "king"],
        &["ada", "ada king", "ada_l", "king"],
        &["ada", "ada king", "king"],
    ];
    for (n, (change, expected)) in changes.iter().zip(expected).enumerate() {
        let at = registered.created_at + Duration::seconds(n as i64 + 1);
        let after = env
            .store
            .update_profile(ada, change, at, &event)
            .await
            .unwrap();
        let expected = Profile {
            updated_at: at,
            ..expected
        };
        assert_eq!(after, expected, "change {n}");
        assert_eq!(env.store.profile(ada).await.unwrap(), Some(expected));
        assert_eq!(env.terms(ada).await, terms[n], "change {n}");
        let built = built.lock().unwrap();
        assert_eq!(built.len(), n + 1);
        assert_eq!(
            built[n].0, after,
            "the event is built from the profile after"
        );
    }
    let appended: Vec<uuid::Uuid> = built.lock().unwrap().iter().map(|(_, e)| e.id).collect();
    assert_eq!(env.outbox_ids().await, appended);
}

/// Usernames are unique case-insensitively. A refused change changes nothing (not its other
/// fields, not the profile it would have created, no event); removing a username frees it.
pub async fn usernames_are_unique_case_insensitively(env: &Env) {
    let ada = env.register("Ada").await;
    env.set_username(ada, "Ada_L").await;
    let bob = env.register("Bob").await;
    let bob_before = env.store.profile(bob).await.unwrap();
    let events_before = env.outbox_ids().await;

    let claim = |name: &str| ProfileChange {
        display_name: Some("Robert".to_owned()),
        username: Some(Some(name.to_owned())),
        ..ProfileChange::default()
    };
    let taken = env
        .store
        .update_profile(bob, &claim("ada_l"), now(), &profile_event)
        .await;
    assert!(matches!(taken, Err(UserError::UsernameTaken)), "{taken:?}");
    assert_eq!(env.store.profile(bob).await.unwrap(), bob_before);
    assert_eq!(env.terms(bob).await, ["bob"]);
    assert_eq!(env.outbox_ids().await, events_before);

    // Not even the profile the change would have created survives.
    let early = UserId::new_v7();
    let taken = env
        .store
        .update_profile(early, &claim("ADA_L"), now(), &profile_event)
        .await;
    assert!(matches!(taken, Err(UserError::UsernameTaken)), "{taken:?}");
    assert_eq!(env.store.profile(early).await.unwrap(), None);

    // The holder may change its case.
    let recased = env.set_username(ada, "ADA_l").await;
    assert_eq!(recased.username.as_deref(), Some("ADA_l"));

    let removal = ProfileChange {
        username: Some(None),
        ..ProfileChange::default()
    };
    env.store
        .update_profile(ada, &removal, now(), &profile_event)
        .await
        .unwrap();
    let claimed = env
        .store
        .update_profile(bob, &claim("ada_L"), now(), &profile_event)
        .await
        .unwrap();
    assert_eq!(claimed.username.as_deref(), Some("ada_L"));
    assert_eq!(claimed.display_name, "Robert");
    let taken = env
        .store
        .update_profile(ada, &claim("Ada_L"), now(), &profile_event)
        .await;
    assert!(matches!(taken, Err(UserError::UsernameTaken)), "{taken:?}");
}

/// A deleted account's profile and privacy settings cannot change.
pub async fn tombstones_refuse_changes(env: &Env) {
    let ada = env.register("Ada").await;
    env.erase(ada, now()).await;
    let tombstone = env.store.profile(ada).await.unwrap();

    let refused = env
        .store
        .update_profile(ada, &rename("Ghost"), now(), &profile_event)
        .await;
    assert!(
        matches!(refused, Err(UserError::UserNotFound)),
        "{refused:?}"
    );
    let privacy = PrivacyChange {
        about: Some(Visibility::Nobody),
        ..PrivacyChange::default()
    };
    let refused = env.store.update_privacy(ada, &privacy, now()).await;
    assert!(
        matches!(refused, Err(UserError::UserNotFound)),
        "{refused:?}"
    );

    assert_eq!(env.store.profile(ada).await.unwrap(), tombstone);
    assert!(env.outbox_ids().await.is_empty());
}

/// Only the given settings change; a missing profile is created (unregistered, unnamed); each
/// change appends its `PrivacyChanged`.
pub async fn update_privacy_applies_given_settings(env: &Env) {
    let ada = env.register("Ada").await;
    let at = now() + Duration::seconds(1);
    let first = PrivacyChange {
        last_seen: Some(Visibility::Nobody),
        about: Some(Visibility::Contacts),
        ..PrivacyChange::default()
    };
    let after = env.store.update_privacy(ada, &first, at).await.unwrap();
    let expected = Privacy {
        last_seen: Visibility::Nobody,
        about: Visibility::Contacts,
        ..Privacy::default()
    };
    assert_eq!(after.privacy, expected);
    assert_eq!(after.updated_at, at);
    assert_eq!(after.display_name, "Ada");

    let second = PrivacyChange {
        find_by_phone: Some(Visibility::Contacts),
        profile_photo: Some(Visibility::Nobody),
        ..PrivacyChange::default()
    };
    let after = env.store.update_privacy(ada, &second, at).await.unwrap();
    let expected = Privacy {
        find_by_phone: Visibility::Contacts,
        profile_photo: Visibility::Nobody,
        ..expected
    };
    assert_eq!(after.privacy, expected);
    assert_eq!(
        env.store.profile(ada).await.unwrap().unwrap().privacy,
        expected
    );

    let early = UserId::new_v7();
    let created = env.store.update_privacy(early, &first, at).await.unwrap();
    assert_eq!(
        created,
        Profile {
            user_id: early,
            display_name: String::new(),
            username: None,
            about: String::new(),
            avatar: None,
            phone_number: None,
            privacy: Privacy {
                last_seen: Visibility::Nobody,
                about: Visibility::Contacts,
                ..Privacy::default()
            },
            registered: false,
            created_at: at,
            updated_at: at,
            deleted_at: None,
        }
    );
    let published = env.privacy_changes().await;
    let users: Vec<String> = published.into_iter().map(|e| e.user_id).collect();
    assert_eq!(users, [ada, ada, early].map(|id| id.to_string()));
    assert_eq!(env.appended().await.len(), 3);
}

/// A change that changes a setting appends one `PrivacyChanged` in its transaction, carrying
/// every setting after it (the untouched ones with their defaults, none UNSPECIFIED) and the
/// change's time.
pub async fn update_privacy_publishes_every_setting(env: &Env) {
    let ada = env.register("Ada").await;
    let at = now() + Duration::seconds(1);
    let change = PrivacyChange {
        last_seen: Some(Visibility::Nobody),
        ..PrivacyChange::default()
    };
    env.store.update_privacy(ada, &change, at).await.unwrap();

    let published = env.privacy_changes().await;
    assert_eq!(published.len(), 1);
    let event = &published[0];
    assert_eq!(event.user_id, ada.to_string());
    assert_eq!(
        event.occurred_at,
        Some(std::time::SystemTime::from(at).into())
    );
    assert_eq!(
        event.settings,
        Some(PrivacySettings {
            last_seen: WireVisibility::Nobody.into(),
            profile_photo: WireVisibility::Everyone.into(),
            about: WireVisibility::Everyone.into(),
            find_by_phone: WireVisibility::Everyone.into(),
        })
    );

    // The next change carries the earlier one too.
    let later = at + Duration::seconds(1);
    let change = PrivacyChange {
        about: Some(Visibility::Contacts),
        find_by_phone: Some(Visibility::Nobody),
        ..PrivacyChange::default()
    };
    env.store.update_privacy(ada, &change, later).await.unwrap();
    let published = env.privacy_changes().await;
    assert_eq!(published.len(), 2);
    assert_eq!(
        published[1].settings,
        Some(PrivacySettings {
            last_seen: WireVisibility::Nobody.into(),
            profile_photo: WireVisibility::Everyone.into(),
            about: WireVisibility::Contacts.into(),
            find_by_phone: WireVisibility::Nobody.into(),
        })
    );
    assert_ne!(published[0].event_id, published[1].event_id);
    assert_eq!(env.appended().await.len(), 2);
}

/// Setting what is already set appends nothing: the defaults on a registered profile or on one
/// the call creates, an empty change, a repeat, and a refused change. One new value among
/// repeated ones is a change.
pub async fn unchanged_privacy_publishes_nothing(env: &Env) {
    let ada = env.register("Ada").await;
    let defaults = PrivacyChange {
        last_seen: Some(Visibility::Contacts),
        profile_photo: Some(Visibility::Everyone),
        about: Some(Visibility::Everyone),
        find_by_phone: Some(Visibility::Everyone),
    };
    env.store
        .update_privacy(ada, &defaults, now())
        .await
        .unwrap();
    let nothing = PrivacyChange::default();
    env.store
        .update_privacy(ada, &nothing, now())
        .await
        .unwrap();
    let early = UserId::new_v7();
    env.store
        .update_privacy(early, &defaults, now())
        .await
        .unwrap();
    assert!(env.appended().await.is_empty());

    let hidden = PrivacyChange {
        last_seen: Some(Visibility::Nobody),
        ..PrivacyChange::default()
    };
    env.store.update_privacy(ada, &hidden, now()).await.unwrap();
    env.store.update_privacy(ada, &hidden, now()).await.unwrap();
    assert_eq!(env.privacy_changes().await.len(), 1);

    let mixed = PrivacyChange {
        about: Some(Visibility::Nobody),
        ..hidden
    };
    env.store.update_privacy(ada, &mixed, now()).await.unwrap();
    assert_eq!(env.privacy_changes().await.len(), 2);

    let gone = env.register("Gone").await;
    env.erase(gone, now()).await;
    let refused = env.store.update_privacy(gone, &hidden, now()).await;
    assert!(
        matches!(refused, Err(UserError::UserNotFound)),
        "{refused:?}"
    );
    assert_eq!(env.appended().await.len(), 2);
}

/// By id and in batches (tombstones included, unknown ids skipped), and by phone.
pub async fn profile_reads(env: &Env) {
    let [ada, bob, gone] = env.users().await;
    let gone_phone = env.store.profile(gone).await.unwrap().unwrap().phone_number;
    env.erase(gone, now()).await;
    let unknown = UserId::new_v7();

    let mut batch = env
        .store
        .profiles(&[bob, unknown, gone, ada, bob])
        .await
        .unwrap();
    batch.sort_by_key(|p| p.user_id);
    let mut expected = Vec::new();
    for id in [ada, bob, gone] {
        expected.push(env.store.profile(id).await.unwrap().unwrap());
    }
    expected.sort_by_key(|p| p.user_id);
    assert_eq!(batch, expected);
    assert!(batch.iter().any(|p| p.deleted_at.is_some()));
    assert!(env.store.profiles(&[]).await.unwrap().is_empty());
    assert_eq!(env.store.profile(unknown).await.unwrap(), None);

    let ada_profile = env.store.profile(ada).await.unwrap().unwrap();
    let by_phone = env
        .store
        .profile_by_phone(ada_profile.phone_number.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(by_phone, Some(ada_profile));
    let by_phone = env
        .store
        .profile_by_phone(&gone_phone.unwrap())
        .await
        .unwrap();
    assert_eq!(by_phone, None);
    assert_eq!(
        env.store.profile_by_phone("+10000000000").await.unwrap(),
        None
    );
}
