//! Helpers for the UserService integration tests.

use echo_proto::echo::common::v1::Media;
use echo_proto::echo::user::v1 as pb;
use echo_testkit::{SignedIn, TestMesh};

/// A profile photo's metadata, as an app would send it.
pub fn avatar() -> Media {
    Media {
        url: "https://cdn.example/ada.jpg".into(),
        mime_type: "image/jpeg".into(),
        size_bytes: 48_213,
        width: 512,
        height: 512,
        ..Media::default()
    }
}

/// A field mask naming `paths`.
pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// The caller's profile once their registration event has been applied.
pub async fn registered_profile(mesh: &TestMesh, user: &SignedIn) -> pb::Profile {
    for _ in 0..250 {
        let profile = mesh
            .user_as(user)
            .get_me(pb::GetMeRequest {})
            .await
            .expect("GetMe never fails for a signed-in user")
            .into_inner()
            .profile
            .expect("profile");
        if !profile.phone_number.is_empty() {
            return profile;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "the registration of {} never reached the user service",
        user.tokens.user_id
    );
}

/// Sign up a user and wait until the user service knows them.
pub async fn known_user(mesh: &TestMesh) -> SignedIn {
    let user = mesh.sign_up().await;
    registered_profile(mesh, &user).await;
    user
}

/// Set `user`'s username.
pub async fn set_username(mesh: &TestMesh, user: &SignedIn, username: &str) -> pb::Profile {
    let request = pb::UpdateProfileRequest {
        profile: Some(pb::Profile {
            username: username.into(),
            ..Default::default()
        }),
        update_mask: mask(&["username"]),
    };
    mesh.user_as(user)
        .update_profile(request)
        .await
        .expect("set username")
        .into_inner()
        .profile
        .unwrap()
}

/// Change one of `user`'s privacy settings.
pub async fn set_privacy(mesh: &TestMesh, user: &SignedIn, path: &str, value: pb::Visibility) {
    let mut settings = pb::PrivacySettings::default();
    match path {
        "last_seen" => settings.last_seen = value.into(),
        "profile_photo" => settings.profile_photo = value.into(),
        "about" => settings.about = value.into(),
        "find_by_phone" => settings.find_by_phone = value.into(),
        other => panic!("no privacy path {other}"),
    }
    mesh.user_as(user)
        .update_privacy_settings(pb::UpdatePrivacySettingsRequest {
            settings: Some(settings),
            update_mask: mask(&[path]),
        })
        .await
        .expect("update privacy");
}

/// `viewer`'s view of `user`.
pub async fn view_of(mesh: &TestMesh, viewer: &SignedIn, user: &SignedIn) -> pb::PublicProfile {
    mesh.user_as(viewer)
        .get_user(pb::GetUserRequest {
            user_id: user.tokens.user_id.clone(),
        })
        .await
        .expect("get user")
        .into_inner()
        .user
        .unwrap()
}

/// The user ids `viewer` finds with `query` (first page of 50).
pub async fn search_ids(mesh: &TestMesh, viewer: &SignedIn, query: &str) -> Vec<String> {
    let found = mesh
        .user_as(viewer)
        .search_users(pb::SearchUsersRequest {
            query: query.into(),
            page_size: 50,
            page_token: String::new(),
        })
        .await
        .expect("search")
        .into_inner();
    found.users.into_iter().map(|u| u.user_id).collect()
}

/// Add `contact` to `owner`'s contacts.
pub async fn add_contact(mesh: &TestMesh, owner: &SignedIn, contact: &SignedIn, alias: &str) {
    mesh.user_as(owner)
        .add_contact(pb::AddContactRequest {
            user_id: contact.tokens.user_id.clone(),
            alias: alias.into(),
        })
        .await
        .expect("add contact");
}

/// The user ids in `owner`'s contact list, in list order.
pub async fn contact_ids(mesh: &TestMesh, owner: &SignedIn) -> Vec<String> {
    let page = mesh
        .user_as(owner)
        .list_contacts(pb::ListContactsRequest::default())
        .await
        .expect("list contacts")
        .into_inner();
    page.contacts.into_iter().map(|c| c.user_id).collect()
}

/// `user`'s open contact requests in `direction`.
pub async fn requests(
    mesh: &TestMesh,
    user: &SignedIn,
    direction: pb::ContactRequestDirection,
) -> Vec<pb::ContactRequest> {
    mesh.user_as(user)
        .list_contact_requests(pb::ListContactRequestsRequest {
            direction: direction.into(),
            ..Default::default()
        })
        .await
        .expect("list requests")
        .into_inner()
        .contact_requests
}

/// `blocker` blocks `blocked` (the message service learns of it later, through the bus).
pub async fn block(mesh: &TestMesh, blocker: &SignedIn, blocked: &SignedIn) {
    mesh.user_as(blocker)
        .block_user(pb::BlockUserRequest {
            user_id: blocked.tokens.user_id.clone(),
        })
        .await
        .unwrap();
}
