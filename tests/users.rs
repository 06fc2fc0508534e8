//! UserService journeys end to end through the generated gRPC client, on both backends: the
//! profile born from auth's registration event (in-process bus and NATS), profile changes,
//! search and phone look-up under privacy settings, contacts, contact requests, blocking, and
//! account deletion erasing the user.

use common::users::*;
use common::{outbox_events, reason};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::user::v1 as pb;
use echo_proto::echo::user::v1::ContactRequestDirection::{Incoming, Outgoing};
use echo_proto::echo::user::v1::ContactRequestState as State;
use echo_testkit::{Backend, PASSWORD, TestMesh};
use tonic::Code;

mod common;

fn avatar() -> Media {
    Media {
        url: "https://cdn.example/ada.jpg".into(),
        mime_type: "image/jpeg".into(),
        size_bytes: 48_213,
        width: 512,
        height: 512,
        ..Media::default()
    }
}

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
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn contacts_and_contact_requests() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cy = known_user(&mesh).await;

        // Contacts: one-sided, aliased, ordered by shown name, paged.
        add_contact(&mesh, &ada, &bob, "zz Bob").await;
        add_contact(&mesh, &ada, &cy, "aa Cy").await;
        add_contact(&mesh, &ada, &cy, "AA Cy").await; // idempotent: renames
        assert_eq!(
            contact_ids(&mesh, &ada).await,
            [cy.tokens.user_id.clone(), bob.tokens.user_id.clone()],
            "{backend:?}"
        );
        let first = mesh
            .user_as(&ada)
            .list_contacts(pb::ListContactsRequest {
                page_size: 1,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.contacts[0].alias, "AA Cy");
        let profile = first.contacts[0].profile.clone().unwrap();
        assert!(profile.relationship.unwrap().contact);
        let second = mesh
            .user_as(&ada)
            .list_contacts(pb::ListContactsRequest {
                page_size: 1,
                page_token: first.next_page_token,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(second.contacts[0].user_id, bob.tokens.user_id);
        assert_eq!(second.next_page_token, "");
        let renamed = mesh
            .user_as(&ada)
            .update_contact(pb::UpdateContactRequest {
                contact: Some(pb::Contact {
                    user_id: bob.tokens.user_id.clone(),
                    alias: "Bobby".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["alias"]),
            })
            .await
            .unwrap();
        assert_eq!(renamed.into_inner().contact.unwrap().alias, "Bobby");
        assert!(contact_ids(&mesh, &bob).await.is_empty(), "one-sided");
        for _ in 0..2 {
            mesh.user_as(&ada)
                .remove_contact(pb::RemoveContactRequest {
                    user_id: cy.tokens.user_id.clone(),
                })
                .await
                .expect("removing is idempotent");
        }
        assert_eq!(
            contact_ids(&mesh, &ada).await,
            std::slice::from_ref(&bob.tokens.user_id)
        );

        // Request → accept: both become contacts.
        let send = |from, to: &echo_testkit::SignedIn, note: &str| {
            let mut client = mesh.user_as(from);
            let request = pb::SendContactRequestRequest {
                user_id: to.tokens.user_id.clone(),
                message: note.into(),
            };
            async move {
                client
                    .send_contact_request(request)
                    .await
                    .map(|r| r.into_inner().contact_request.unwrap())
            }
        };
        let sent = send(&cy, &ada, "hi, it's Cy").await.unwrap();
        assert_eq!(sent.state, State::Pending as i32);
        assert_eq!(
            send(&cy, &ada, "again").await.unwrap().contact_request_id,
            sent.contact_request_id
        );
        let incoming = requests(&mesh, &ada, Incoming).await;
        assert_eq!(incoming.len(), 1);
        assert_eq!(incoming[0].message, "hi, it's Cy");
        assert_eq!(
            incoming[0].other_user.as_ref().unwrap().user_id,
            cy.tokens.user_id
        );
        let accepted = mesh
            .user_as(&ada)
            .accept_contact_request(pb::AcceptContactRequestRequest {
                contact_request_id: sent.contact_request_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .contact_request
            .unwrap();
        assert_eq!(accepted.state, State::Accepted as i32);
        assert!(contact_ids(&mesh, &cy).await.contains(&ada.tokens.user_id));
        assert!(contact_ids(&mesh, &ada).await.contains(&cy.tokens.user_id));
        let relation = view_of(&mesh, &cy, &ada).await.relationship.unwrap();
        assert!(relation.contact && relation.mutual_contact);
        let again = send(&cy, &ada, "").await.unwrap_err();
        assert_eq!(
            (again.code(), reason(&again).as_str()),
            (Code::AlreadyExists, "ALREADY_CONTACTS")
        );

        // Decline is silent: the sender still sees it pending; cancel withdraws it.
        let to_cy = send(&bob, &cy, "").await.unwrap();
        mesh.user_as(&cy)
            .decline_contact_request(pb::DeclineContactRequestRequest {
                contact_request_id: to_cy.contact_request_id.clone(),
            })
            .await
            .unwrap();
        assert!(requests(&mesh, &cy, Incoming).await.is_empty());
        let outgoing = requests(&mesh, &bob, Outgoing).await;
        assert_eq!(outgoing.len(), 1);
        assert_eq!(outgoing[0].state, State::Pending as i32, "silent decline");
        mesh.user_as(&bob)
            .cancel_contact_request(pb::CancelContactRequestRequest {
                contact_request_id: to_cy.contact_request_id.clone(),
            })
            .await
            .unwrap();
        assert!(requests(&mesh, &bob, Outgoing).await.is_empty());

        // Crossing requests: the second one accepts both.
        let dee = known_user(&mesh).await;
        send(&bob, &dee, "").await.unwrap();
        let crossed = send(&dee, &bob, "").await.unwrap();
        assert_eq!(crossed.state, State::Accepted as i32);
        assert!(contact_ids(&mesh, &dee).await.contains(&bob.tokens.user_id));
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn blocking_hides_details_stops_requests_and_publishes_events() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let dress = pb::UpdateProfileRequest {
            profile: Some(pb::Profile {
                about: "hello".into(),
                avatar: Some(avatar()),
                ..Default::default()
            }),
            update_mask: mask(&["about", "avatar"]),
        };
        mesh.user_as(&ada).update_profile(dress).await.unwrap();
        let pending = mesh
            .user_as(&bob)
            .send_contact_request(pb::SendContactRequestRequest {
                user_id: ada.tokens.user_id.clone(),
                message: String::new(),
            })
            .await
            .unwrap();
        assert!(pending.into_inner().contact_request.is_some());

        let block = |user_id: &str| pb::BlockUserRequest {
            user_id: user_id.into(),
        };
        for _ in 0..2 {
            mesh.user_as(&ada)
                .block_user(block(&bob.tokens.user_id))
                .await
                .expect("blocking is idempotent");
        }
        assert_eq!(
            outbox_events(&mesh, "user", "echo.events.v1.UserBlocked").await,
            1,
            "{backend:?}: one event for one block"
        );
        assert!(
            requests(&mesh, &ada, Incoming).await.is_empty(),
            "the block cancelled the pending request"
        );
        let listed = mesh
            .user_as(&ada)
            .list_blocked_users(pb::ListBlockedUsersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .blocked_users;
        assert_eq!(listed.len(), 1);
        let entry = listed[0].user.clone().unwrap();
        assert_eq!(entry.user_id, bob.tokens.user_id);
        assert!(entry.relationship.unwrap().blocked);

        // Bob sees only the public minimum, and cannot ask Ada for contact.
        let seen = view_of(&mesh, &bob, &ada).await;
        assert_eq!((seen.about.as_str(), seen.avatar), ("", None));
        assert!(!seen.display_name.is_empty());
        assert!(
            !seen.relationship.unwrap().blocked,
            "never says who blocked"
        );
        let refused = mesh
            .user_as(&bob)
            .send_contact_request(pb::SendContactRequestRequest {
                user_id: ada.tokens.user_id.clone(),
                message: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (refused.code(), reason(&refused).as_str()),
            (Code::PermissionDenied, "BLOCKED")
        );

        mesh.user_as(&ada)
            .unblock_user(pb::UnblockUserRequest {
                user_id: bob.tokens.user_id.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            outbox_events(&mesh, "user", "echo.events.v1.UserUnblocked").await,
            1
        );
        assert_eq!(view_of(&mesh, &bob, &ada).await.about, "hello");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn deleting_an_account_erases_the_user() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        set_username(&mesh, &bob, "bob_the_builder").await;
        add_contact(&mesh, &ada, &bob, "Bob").await;
        add_contact(&mesh, &bob, &ada, "").await;
        mesh.user_as(&bob)
            .block_user(pb::BlockUserRequest {
                user_id: ada.tokens.user_id.clone(),
            })
            .await
            .unwrap();

        mesh.auth_as(&bob)
            .delete_account(echo_proto::echo::auth::v1::DeleteAccountRequest {
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
        // The deletion event reaches the user service: Bob becomes a tombstone.
        let mut gone = None;
        for _ in 0..250 {
            let view = view_of(&mesh, &ada, &bob).await;
            if view.deleted {
                gone = Some(view);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let gone = gone.unwrap_or_else(|| panic!("{backend:?}: deletion never applied"));
        assert_eq!(
            (gone.display_name.as_str(), gone.username.as_str()),
            ("", "")
        );
        assert!(
            contact_ids(&mesh, &ada).await.is_empty(),
            "entries of Bob removed"
        );
        assert!(search_ids(&mesh, &ada, "bob_the").await.is_empty());
        // His username is free again.
        set_username(&mesh, &ada, "Bob_The_Builder").await;
        let lookup = mesh
            .user_as(&ada)
            .lookup_by_phone(pb::LookupByPhoneRequest {
                phone_number: bob.phone.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(lookup.code(), Code::NotFound);
        mesh.shutdown().await;
    }
}
