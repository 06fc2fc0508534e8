//! UserService denials and bad input, each with the code and reason a client branches on, on
//! both backends: nothing is changed by a refused call.
//!
//! One piece: the refusals of profile, contacts, search and lookup side by side, so the answers
//! that must agree across RPCs (USER_NOT_FOUND for an unknown id everywhere,
//! CONTACT_REQUEST_NOT_FOUND for whoever may not act on a request) are compared in one place; split
//! by feature, nothing would compare them.

use common::users::*;
use common::{reason, violated_fields};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::user::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tonic::Code;
use tonic_types::StatusExt;

mod common;

fn profile_change(profile: pb::Profile, paths: &[&str]) -> pb::UpdateProfileRequest {
    pb::UpdateProfileRequest {
        profile: Some(profile),
        update_mask: mask(paths),
    }
}

async fn update(
    mesh: &TestMesh,
    user: &SignedIn,
    request: pb::UpdateProfileRequest,
) -> tonic::Status {
    mesh.user_as(user)
        .update_profile(request)
        .await
        .expect_err("the update must be refused")
}

#[tokio::test]
async fn profile_updates_refuse_bad_values_collisions_and_other_users() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        set_username(&mesh, &ada, "ada_lovelace").await;

        // Case-insensitive collision: ALREADY_EXISTS, and Bob's profile is unchanged.
        let taken = update(
            &mesh,
            &bob,
            profile_change(
                pb::Profile {
                    username: "ADA_Lovelace".into(),
                    about: "would be lost".into(),
                    ..Default::default()
                },
                &["username", "about"],
            ),
        )
        .await;
        assert_eq!(
            (taken.code(), reason(&taken).as_str()),
            (Code::AlreadyExists, "USERNAME_TAKEN"),
            "{backend:?}"
        );
        let bob_now = registered_profile(&mesh, &bob).await;
        assert_eq!(
            (bob_now.username.as_str(), bob_now.about.as_str()),
            ("", "")
        );

        // Every malformed field is reported at once.
        let bad = update(
            &mesh,
            &bob,
            profile_change(
                pb::Profile {
                    display_name: "x".repeat(65),
                    username: "9lives".into(),
                    about: "y".repeat(141),
                    avatar: Some(Media {
                        url: "javascript:alert(1)".into(),
                        mime_type: "text/html".into(),
                        ..Media::default()
                    }),
                    ..Default::default()
                },
                &["display_name", "username", "about", "avatar"],
            ),
        )
        .await;
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert_eq!(
            violated_fields(&bad),
            [
                "profile.display_name",
                "profile.username",
                "profile.about",
                "profile.avatar.url",
                "profile.avatar.mime_type"
            ]
        );
        for (username, why) in [
            ("abc", "short"),
            ("ada lovelace", "space"),
            ("admin", "reserved"),
        ] {
            let refused = update(
                &mesh,
                &bob,
                profile_change(
                    pb::Profile {
                        username: username.into(),
                        ..Default::default()
                    },
                    &["username"],
                ),
            )
            .await;
            assert_eq!(refused.code(), Code::InvalidArgument, "{why}");
        }
        let empty_name = update(
            &mesh,
            &bob,
            profile_change(pb::Profile::default(), &["display_name"]),
        )
        .await;
        assert_eq!(violated_fields(&empty_name), ["profile.display_name"]);

        // Masks: required, known paths only.
        let no_mask = update(&mesh, &bob, profile_change(pb::Profile::default(), &[])).await;
        assert_eq!(violated_fields(&no_mask), ["update_mask"]);
        let unknown = update(
            &mesh,
            &bob,
            profile_change(pb::Profile::default(), &["about", "phone_number"]),
        )
        .await;
        assert_eq!(violated_fields(&unknown), ["update_mask.paths[1]"]);

        // Naming another user's id is refused, not silently applied to the caller.
        let other = update(
            &mesh,
            &bob,
            profile_change(
                pb::Profile {
                    user_id: ada.tokens.user_id.clone(),
                    about: "hijacked".into(),
                    ..Default::default()
                },
                &["about"],
            ),
        )
        .await;
        assert_eq!(
            (other.code(), reason(&other).as_str()),
            (Code::PermissionDenied, "NOT_ALLOWED")
        );
        assert_eq!(registered_profile(&mesh, &ada).await.about, "");

        // Privacy: UNSPECIFIED for a masked path is refused.
        let privacy = mesh
            .user_as(&bob)
            .update_privacy_settings(pb::UpdatePrivacySettingsRequest {
                settings: Some(pb::PrivacySettings::default()),
                update_mask: mask(&["about"]),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&privacy), ["settings.about"]);
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn unknown_ids_malformed_input_and_pages_are_refused_clearly() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let nobody = uuid::Uuid::now_v7().to_string();
        let not_found = |status: tonic::Status, expected: &str| {
            assert_eq!(
                (status.code(), reason(&status).as_str()),
                (Code::NotFound, expected),
                "{backend:?}: {status:?}"
            );
        };
        let mut client = mesh.user_as(&ada);
        let id = |user_id: &str| user_id.to_owned();
        not_found(
            client
                .get_user(pb::GetUserRequest {
                    user_id: id(&nobody),
                })
                .await
                .unwrap_err(),
            "USER_NOT_FOUND",
        );
        not_found(
            client
                .add_contact(pb::AddContactRequest {
                    user_id: id(&nobody),
                    alias: String::new(),
                })
                .await
                .unwrap_err(),
            "USER_NOT_FOUND",
        );
        not_found(
            client
                .send_contact_request(pb::SendContactRequestRequest {
                    user_id: id(&nobody),
                    message: String::new(),
                })
                .await
                .unwrap_err(),
            "USER_NOT_FOUND",
        );
        not_found(
            client
                .block_user(pb::BlockUserRequest {
                    user_id: id(&nobody),
                })
                .await
                .unwrap_err(),
            "USER_NOT_FOUND",
        );
        not_found(
            client
                .update_contact(pb::UpdateContactRequest {
                    contact: Some(pb::Contact {
                        user_id: id(&nobody),
                        alias: "x".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["alias"]),
                })
                .await
                .unwrap_err(),
            "CONTACT_NOT_FOUND",
        );
        not_found(
            client
                .accept_contact_request(pb::AcceptContactRequestRequest {
                    contact_request_id: id(&nobody),
                })
                .await
                .unwrap_err(),
            "CONTACT_REQUEST_NOT_FOUND",
        );

        // Malformed ids, yourself, lists too long, page sizes out of range, foreign tokens.
        let bad = client
            .get_user(pb::GetUserRequest {
                user_id: "not-a-uuid".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&bad), ["user_id"]);
        let me = ada.tokens.user_id.clone();
        let yourself = client
            .send_contact_request(pb::SendContactRequestRequest {
                user_id: me.clone(),
                message: "z".repeat(201),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&yourself), ["user_id", "message"]);
        let yourself = client
            .block_user(pb::BlockUserRequest { user_id: me })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&yourself), ["user_id"]);
        let too_many = client
            .batch_get_users(pb::BatchGetUsersRequest {
                user_ids: (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect(),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&too_many), ["user_ids"]);
        let negative = client
            .list_contacts(pb::ListContactsRequest {
                page_size: -1,
                page_token: "%%%".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&negative), ["page_size", "page_token"]);
        let no_direction = client
            .list_contact_requests(pb::ListContactRequestsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&no_direction), ["direction"]);
        let short = client
            .search_users(pb::SearchUsersRequest {
                query: "@a".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&short), ["query"]);
        // A search token only continues the query it came from.
        for n in 0..3 {
            let user = known_user(&mesh).await;
            set_username(&mesh, &user, &format!("zed_{n}_{}", &user.phone[8..])).await;
        }
        let first = client
            .search_users(pb::SearchUsersRequest {
                query: "zed".into(),
                page_size: 1,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!first.next_page_token.is_empty());
        let foreign = client
            .search_users(pb::SearchUsersRequest {
                query: "zed_".into(),
                page_size: 1,
                page_token: first.next_page_token,
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&foreign), ["page_token"]);
        let bad_phone = client
            .lookup_by_phone(pb::LookupByPhoneRequest {
                phone_number: "555".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&bad_phone), ["phone_number"]);
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn contact_requests_are_only_acted_on_by_their_parties() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let eve = known_user(&mesh).await;
        let sent = mesh
            .user_as(&ada)
            .send_contact_request(pb::SendContactRequestRequest {
                user_id: bob.tokens.user_id.clone(),
                message: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .contact_request
            .unwrap();
        let id = sent.contact_request_id;
        // Eve, a third party, and Ada, the sender, cannot accept; Bob cannot cancel Ada's.
        for intruder in [&eve, &ada] {
            let refused = mesh
                .user_as(intruder)
                .accept_contact_request(pb::AcceptContactRequestRequest {
                    contact_request_id: id.clone(),
                })
                .await
                .unwrap_err();
            assert_eq!(reason(&refused), "CONTACT_REQUEST_NOT_FOUND", "{backend:?}");
        }
        let refused = mesh
            .user_as(&bob)
            .cancel_contact_request(pb::CancelContactRequestRequest {
                contact_request_id: id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "CONTACT_REQUEST_NOT_FOUND");
        let refused = mesh
            .user_as(&eve)
            .decline_contact_request(pb::DeclineContactRequestRequest {
                contact_request_id: id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "CONTACT_REQUEST_NOT_FOUND");
        assert_eq!(
            requests(&mesh, &bob, pb::ContactRequestDirection::Incoming)
                .await
                .len(),
            1
        );

        // A request to someone who blocked you is refused; so is one to someone you blocked.
        mesh.user_as(&eve)
            .block_user(pb::BlockUserRequest {
                user_id: ada.tokens.user_id.clone(),
            })
            .await
            .unwrap();
        for (from, to) in [(&ada, &eve), (&eve, &ada)] {
            let refused = mesh
                .user_as(from)
                .send_contact_request(pb::SendContactRequestRequest {
                    user_id: to.tokens.user_id.clone(),
                    message: String::new(),
                })
                .await
                .unwrap_err();
            assert_eq!(
                (refused.code(), reason(&refused).as_str()),
                (Code::PermissionDenied, "BLOCKED")
            );
        }
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn phone_lookups_are_rate_limited_per_caller() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let mut client = mesh.user_as(&ada);
        let mut limited = None;
        for attempt in 0..=echo_user::rules::PHONE_LOOKUP.limit.capacity {
            let request = pb::LookupByPhoneRequest {
                phone_number: format!("+1415555{:04}", 9000 + attempt),
            };
            match client.lookup_by_phone(request).await {
                Err(status) if status.code() == Code::ResourceExhausted => {
                    limited = Some(status);
                    break;
                }
                Err(status) => assert_eq!(status.code(), Code::NotFound),
                Ok(_) => {}
            }
        }
        let limited = limited.expect("the lookup limit must bite");
        assert_eq!(reason(&limited), "RATE_LIMITED", "{backend:?}");
        assert!(limited.get_error_details().retry_info().is_some());
        // Another caller has a bucket of their own.
        let found = mesh
            .user_as(&bob)
            .lookup_by_phone(pb::LookupByPhoneRequest {
                phone_number: ada.phone.clone(),
            })
            .await;
        assert!(found.is_ok());
        mesh.shutdown().await;
    }
}
