//! UserService profile journeys end to end through the generated gRPC client, on both
//! backends: the profile born from auth's registration event (in-process bus and NATS),
//! profile changes, and search and phone look-up under privacy settings. Contacts, requests,
//! blocking and deletion are in `user_contacts.rs`.

use common::users::*;
use common::{outbox_events, reason};
use echo_proto::echo::user::v1 as pb;
use echo_testkit::{Backend, TestMesh};
use tonic::Code;

mod common;

#[tokio::test]
async fn profiles_come_from_registration_and_change_by_mask() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = mesh.sign_up().await;
        let me = registered_profile(&mesh, &ada).await;
        assert_eq!(me.user_id, ada.tokens.user_id, "{backend:?}");
        assert_eq!(me.phone_number, ada.phone);
        assert!(me.display_name.starts_with("Test "), "{}", me.display_name);
        assert_eq!(me.username, "");

        let change = pb::UpdateProfileRequest {
            profile: Some(pb::Profile {
                display_name: "  Ada Lovelace ".into(),
                username: "Ada_L".into(),
                about: "Poetical science".into(),
                avatar: Some(avatar()),
                // Not in the mask: ignored.
                phone_number: "+15550000000".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name", "username", "about", "avatar"]),
        };
        let updated = mesh
            .user_as(&ada)
            .update_profile(change)
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap();
        assert_eq!(updated.display_name, "Ada Lovelace");
        assert_eq!(updated.username, "Ada_L", "the case chosen is kept");
        assert_eq!(updated.about, "Poetical science");
        assert_eq!(updated.avatar, Some(avatar()));
        assert_eq!(updated.phone_number, ada.phone);
        assert_eq!(registered_profile(&mesh, &ada).await, updated);

        // Only masked fields change; an unset avatar in the mask removes it.
        let partial = pb::UpdateProfileRequest {
            profile: Some(pb::Profile {
                about: "Analyst".into(),
                display_name: "ignored".into(),
                ..Default::default()
            }),
            update_mask: mask(&["about", "avatar"]),
        };
        let after = mesh.user_as(&ada).update_profile(partial).await.unwrap();
        let after = after.into_inner().profile.unwrap();
        assert_eq!((after.about.as_str(), after.avatar), ("Analyst", None));
        assert_eq!(after.display_name, "Ada Lovelace");
        assert_eq!(
            outbox_events(&mesh, "user", "echo.events.v1.ProfileUpdated").await,
            2
        );

        // Another user sees the public view: no phone number, and the relation.
        let bob = known_user(&mesh).await;
        let seen = view_of(&mesh, &bob, &ada).await;
        assert_eq!(
            (seen.display_name.as_str(), seen.username.as_str()),
            ("Ada Lovelace", "Ada_L")
        );
        assert_eq!(seen.about, "Analyst");
        assert!(!seen.deleted);
        assert_eq!(seen.relationship, Some(pb::Relationship::default()));

        let batch = pb::BatchGetUsersRequest {
            user_ids: vec![
                ada.tokens.user_id.clone(),
                bob.tokens.user_id.clone(),
                ada.tokens.user_id.clone(),
                uuid::Uuid::now_v7().to_string(),
            ],
        };
        let users = mesh.user_as(&bob).batch_get_users(batch).await.unwrap();
        let mut ids: Vec<_> = users
            .into_inner()
            .users
            .into_iter()
            .map(|u| u.user_id)
            .collect();
        ids.sort();
        let mut expected = vec![ada.tokens.user_id.clone(), bob.tokens.user_id.clone()];
        expected.sort();
        assert_eq!(ids, expected, "duplicates folded, unknown ids omitted");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn get_me_answers_before_the_registration_event_arrives() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        // A valid token for a user whose registration the user service never heard of.
        let user_id = uuid::Uuid::now_v7();
        let token = mesh.mint_token(user_id);
        let mut client = pb::user_service_client::UserServiceClient::new(mesh.authed(&token));
        let profile = client.get_me(pb::GetMeRequest {}).await.unwrap();
        let profile = profile.into_inner().profile.unwrap();
        assert_eq!(profile.user_id, user_id.to_string(), "{backend:?}");
        assert_eq!(profile.phone_number, "");
        // The user can set up their profile already; the late event keeps their choices.
        let change = pb::UpdateProfileRequest {
            profile: Some(pb::Profile {
                display_name: "Early Bird".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
        };
        let changed = client.update_profile(change).await.unwrap().into_inner();
        assert_eq!(changed.profile.unwrap().display_name, "Early Bird");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn search_and_phone_lookup_honour_privacy_and_blocks() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cy = known_user(&mesh).await;
        let dee = known_user(&mesh).await;
        set_username(&mesh, &ada, "ada_lovelace").await;
        set_username(&mesh, &bob, "adamant_bob").await;
        let rename = pb::UpdateProfileRequest {
            profile: Some(pb::Profile {
                display_name: "Ada Byron".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
        };
        mesh.user_as(&dee).update_profile(rename).await.unwrap();

        // Username prefixes, display-name words and whole-name prefixes, case-insensitive;
        // Dee has no username, so only her contacts find her.
        let found = search_ids(&mesh, &cy, "ADA").await;
        assert!(found.contains(&ada.tokens.user_id), "{backend:?}");
        assert!(found.contains(&bob.tokens.user_id));
        assert!(!found.contains(&dee.tokens.user_id), "not discoverable");
        assert!(!found.contains(&cy.tokens.user_id), "never yourself");
        add_contact(&mesh, &cy, &dee, "").await;
        assert!(
            search_ids(&mesh, &cy, "byron")
                .await
                .contains(&dee.tokens.user_id)
        );
        assert!(
            search_ids(&mesh, &cy, "ada by")
                .await
                .contains(&dee.tokens.user_id)
        );
        // The exact username ranks first, then contacts, then the rest.
        let ranked = search_ids(&mesh, &cy, "@adamant_bob").await;
        assert_eq!(ranked, std::slice::from_ref(&bob.tokens.user_id));
        let ranked = search_ids(&mesh, &cy, "ada").await;
        assert_eq!(ranked[0], dee.tokens.user_id, "contacts before others");

        // Pages: every match once, across pages of one.
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = mesh
                .user_as(&cy)
                .search_users(pb::SearchUsersRequest {
                    query: "ada".into(),
                    page_size: 1,
                    page_token: token,
                })
                .await
                .unwrap()
                .into_inner();
            seen.extend(page.users.into_iter().map(|u| u.user_id));
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(seen, ranked);

        // A blocker disappears from the blocked user's search and phone look-up.
        let lookup = |viewer, phone: &str| {
            let mut client = mesh.user_as(viewer);
            let request = pb::LookupByPhoneRequest {
                phone_number: phone.into(),
            };
            async move { client.lookup_by_phone(request).await }
        };
        let hit = lookup(&bob, &ada.phone)
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        assert_eq!(hit.user_id, ada.tokens.user_id);
        mesh.user_as(&ada)
            .block_user(pb::BlockUserRequest {
                user_id: bob.tokens.user_id.clone(),
            })
            .await
            .unwrap();
        assert!(
            !search_ids(&mesh, &bob, "ada_l")
                .await
                .contains(&ada.tokens.user_id)
        );
        let hidden = lookup(&bob, &ada.phone).await.unwrap_err();
        assert_eq!(
            (hidden.code(), reason(&hidden).as_str()),
            (Code::NotFound, "USER_NOT_FOUND")
        );

        // find_by_phone: NOBODY hides, CONTACTS shows only to Ada's contacts.
        set_privacy(&mesh, &ada, "find_by_phone", pb::Visibility::Nobody).await;
        let unknown = lookup(&cy, "+14155550000").await.unwrap_err();
        let nobody = lookup(&cy, &ada.phone).await.unwrap_err();
        assert_eq!(nobody.code(), Code::NotFound);
        assert_eq!(
            reason(&nobody),
            reason(&unknown),
            "hidden looks like unknown"
        );
        set_privacy(&mesh, &ada, "find_by_phone", pb::Visibility::Contacts).await;
        assert_eq!(
            lookup(&cy, &ada.phone).await.unwrap_err().code(),
            Code::NotFound
        );
        add_contact(&mesh, &ada, &cy, "").await;
        assert!(lookup(&cy, &ada.phone).await.is_ok());

        // About and photo by setting: everyone / contacts / nobody.
        let dress = pb::UpdateProfileRequest {
            profile: Some(pb::Profile {
                about: "secret".into(),
                avatar: Some(avatar()),
                ..Default::default()
            }),
            update_mask: mask(&["about", "avatar"]),
        };
        mesh.user_as(&ada).update_profile(dress).await.unwrap();
        set_privacy(&mesh, &ada, "about", pb::Visibility::Contacts).await;
        set_privacy(&mesh, &ada, "profile_photo", pb::Visibility::Nobody).await;
        let by_contact = view_of(&mesh, &cy, &ada).await;
        assert_eq!(
            (by_contact.about.as_str(), by_contact.avatar),
            ("secret", None)
        );
        let by_stranger = view_of(&mesh, &dee, &ada).await;
        assert_eq!((by_stranger.about.as_str(), by_stranger.avatar), ("", None));
        let settings = mesh
            .user_as(&ada)
            .get_privacy_settings(pb::GetPrivacySettingsRequest {})
            .await
            .unwrap()
            .into_inner()
            .settings
            .unwrap();
        assert_eq!(
            settings,
            pb::PrivacySettings {
                last_seen: pb::Visibility::Contacts.into(),
                profile_photo: pb::Visibility::Nobody.into(),
                about: pb::Visibility::Contacts.into(),
                find_by_phone: pb::Visibility::Contacts.into(),
            }
        );
        // Each change published PrivacyChanged; setting a value again publishes nothing.
        let changed = "echo.events.v1.PrivacyChanged";
        assert_eq!(
            outbox_events(&mesh, "user", changed).await,
            4,
            "{backend:?}"
        );
        set_privacy(&mesh, &ada, "about", pb::Visibility::Contacts).await;
        assert_eq!(
            outbox_events(&mesh, "user", changed).await,
            4,
            "{backend:?}"
        );
        mesh.shutdown().await;
    }
}
