//! UserService relationship journeys end to end through the generated gRPC client, on both
//! backends: contacts, contact requests, blocking (with its bus events), and account deletion
//! erasing the user.

use common::users::*;
use common::{outbox_events, reason};
use echo_proto::echo::user::v1 as pb;
use echo_proto::echo::user::v1::ContactRequestDirection::{Incoming, Outgoing};
use echo_proto::echo::user::v1::ContactRequestState as State;
use echo_testkit::{Backend, PASSWORD, TestMesh};
use tonic::Code;

mod common;

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
        // One event per entry added or removed: none for the rename or the repeated removal.
        assert_eq!(contact_events(&mesh).await, (2, 1), "{backend:?}");

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
        assert_eq!(
            contact_events(&mesh).await,
            (4, 1),
            "{backend:?}: both ways"
        );
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
        assert_eq!(contact_events(&mesh).await, (6, 1), "{backend:?}");
        mesh.shutdown().await;
    }
}

/// How many `ContactAdded` and `ContactRemoved` events the user service appended.
async fn contact_events(mesh: &TestMesh) -> (i64, i64) {
    (
        outbox_events(mesh, "user", "echo.events.v1.ContactAdded").await,
        outbox_events(mesh, "user", "echo.events.v1.ContactRemoved").await,
    )
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
        assert_eq!(
            contact_events(&mesh).await,
            (2, 2),
            "{backend:?}: both entries' removals, with the erasure"
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
