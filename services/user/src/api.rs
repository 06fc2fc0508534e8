//! The UserService gRPC handlers: parse and validate → take the caller → call `people` → map
//! the result. No rules live here.
//!
//! One file because it is the one proto service's boundary (STYLE 4): twenty short handlers
//! over the same parsing helpers; the protobuf builders they share are in `convert`.

mod convert;

use std::sync::Arc;

use echo_authn::{Caller, PhoneNumber};
use echo_ids::{ContactRequestId, UserId};
use echo_proto::echo::user::v1 as pb;
use echo_proto::echo::user::v1::user_service_server::UserService;
use echo_runtime::{Check, Failure};
use tonic::{Request, Response, Status};

use crate::error::UserError;
use crate::people::People;
use crate::rules::{self, LIST_PAGE, SEARCH_PAGE};
use crate::store::{Direction, PrivacyChange, ProfileChange};

/// The UserService handlers.
pub struct UserApi {
    people: Arc<People>,
}

impl UserApi {
    pub(crate) fn new(people: Arc<People>) -> Self {
        Self { people }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn caller<T>(request: &Request<T>) -> Result<UserId, Status> {
    Caller::of(request)
        .map(|caller| caller.user_id)
        .map_err(|e| Failure::from(e).into())
}

fn finish(check: Check) -> Result<(), Status> {
    check.finish().map_err(Status::from)
}

/// A required user id that must not be the caller's.
fn other_user(check: &mut Check, field: &str, input: &str, caller: UserId) -> Option<UserId> {
    let id = check.id_of(field, input)?;
    if id == caller {
        check.push(field, "must be another user, not yourself");
    }
    Some(id)
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_me(&self, request: Request<pb::GetMeRequest>) -> Reply<pb::GetMeResponse> {
        let profile = self.people.me(caller(&request)?).await?;
        Ok(Response::new(pb::GetMeResponse {
            profile: Some(convert::profile(profile)),
        }))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::GetUserResponse> {
        let caller = caller(&request)?;
        let mut check = Check::new();
        let user_id = check.id_of("user_id", &request.get_ref().user_id);
        finish(check)?;
        let view = self.people.user(caller, user_id.expect("checked")).await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(convert::public_profile(view)),
        }))
    }

    async fn batch_get_users(
        &self,
        request: Request<pb::BatchGetUsersRequest>,
    ) -> Reply<pb::BatchGetUsersResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        // An oversized list is one violation: its elements are not looked at one by one.
        let listed = match body.user_ids.len() {
            1..=rules::MAX_BATCH => &body.user_ids[..],
            _ => {
                check.push(
                    "user_ids",
                    format!("must name 1-{} users", rules::MAX_BATCH),
                );
                &[]
            }
        };
        let mut ids: Vec<UserId> = listed
            .iter()
            .enumerate()
            .filter_map(|(i, id)| check.id_of(&format!("user_ids[{i}]"), id))
            .collect();
        finish(check)?;
        ids.sort();
        ids.dedup();
        let users = self.people.users(caller, &ids).await?;
        Ok(Response::new(pb::BatchGetUsersResponse {
            users: users.into_iter().map(convert::public_profile).collect(),
        }))
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Reply<pb::UpdateProfileResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let profile = body.profile.unwrap_or_default();
        if !profile.user_id.is_empty() && profile.user_id.parse::<UserId>().ok() != Some(caller) {
            return Err(UserError::NotAllowed("you can only change your own profile").into());
        }
        let mut check = Check::new();
        let paths = check.mask(
            body.update_mask,
            &["display_name", "username", "about", "avatar"],
        );
        let mut change = ProfileChange::default();
        for path in &paths {
            match path.as_str() {
                "display_name" => {
                    let name = &profile.display_name;
                    change.display_name =
                        Some(check.text("profile.display_name", name, rules::MAX_NAME, true));
                }
                "username" => {
                    change.username = Some(match profile.username.trim() {
                        "" => None,
                        name => Some(rules::username(&mut check, "profile.username", name)),
                    });
                }
                "about" => {
                    let about = &profile.about;
                    change.about =
                        Some(check.text("profile.about", about, rules::MAX_ABOUT, false));
                }
                _ => {
                    let avatar = profile.avatar.as_ref();
                    change.avatar = Some(
                        avatar.map(|media| rules::avatar(&mut check, "profile.avatar", media)),
                    );
                }
            }
        }
        finish(check)?;
        let profile = self.people.update_profile(caller, change, paths).await?;
        Ok(Response::new(pb::UpdateProfileResponse {
            profile: Some(convert::profile(profile)),
        }))
    }

    async fn search_users(
        &self,
        request: Request<pb::SearchUsersRequest>,
    ) -> Reply<pb::SearchUsersResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        let query = rules::search_query(&mut check, &body.query);
        let page = check.page(body.page_size, &body.page_token, SEARCH_PAGE);
        finish(check)?;
        let (users, next_page_token) = self.people.search(caller, &query, &page).await?;
        Ok(Response::new(pb::SearchUsersResponse {
            users: users.into_iter().map(convert::public_profile).collect(),
            next_page_token,
        }))
    }

    async fn lookup_by_phone(
        &self,
        request: Request<pb::LookupByPhoneRequest>,
    ) -> Reply<pb::LookupByPhoneResponse> {
        let caller = caller(&request)?;
        let mut check = Check::new();
        let phone = check.parse(
            "phone_number",
            PhoneNumber::parse(&request.get_ref().phone_number),
        );
        finish(check)?;
        let view = self
            .people
            .lookup_phone(caller, &phone.expect("checked"))
            .await?;
        Ok(Response::new(pb::LookupByPhoneResponse {
            user: Some(convert::public_profile(view)),
        }))
    }

    async fn add_contact(
        &self,
        request: Request<pb::AddContactRequest>,
    ) -> Reply<pb::AddContactResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        let contact = other_user(&mut check, "user_id", &body.user_id, caller);
        let alias = check.text("alias", &body.alias, rules::MAX_NAME, false);
        finish(check)?;
        let (entry, view) = self
            .people
            .add_contact(caller, contact.expect("checked"), &alias)
            .await?;
        Ok(Response::new(pb::AddContactResponse {
            contact: Some(convert::contact(entry, view)),
        }))
    }

    async fn update_contact(
        &self,
        request: Request<pb::UpdateContactRequest>,
    ) -> Reply<pb::UpdateContactResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let contact = body.contact.unwrap_or_default();
        let mut check = Check::new();
        // `alias` is the only path, so a valid mask needs no further reading.
        check.mask(body.update_mask, &["alias"]);
        let user_id = check.id_of("contact.user_id", &contact.user_id);
        let alias = check.text("contact.alias", &contact.alias, rules::MAX_NAME, false);
        finish(check)?;
        let (entry, view) = self
            .people
            .update_contact(caller, user_id.expect("checked"), &alias)
            .await?;
        Ok(Response::new(pb::UpdateContactResponse {
            contact: Some(convert::contact(entry, view)),
        }))
    }

    async fn remove_contact(
        &self,
        request: Request<pb::RemoveContactRequest>,
    ) -> Reply<pb::RemoveContactResponse> {
        let caller = caller(&request)?;
        let mut check = Check::new();
        let user_id = check.id_of("user_id", &request.get_ref().user_id);
        finish(check)?;
        self.people
            .remove_contact(caller, user_id.expect("checked"))
            .await?;
        Ok(Response::new(pb::RemoveContactResponse {}))
    }

    async fn list_contacts(
        &self,
        request: Request<pb::ListContactsRequest>,
    ) -> Reply<pb::ListContactsResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        let page = check.page(body.page_size, &body.page_token, LIST_PAGE);
        finish(check)?;
        let (contacts, next_page_token) = self.people.contacts(caller, &page).await?;
        Ok(Response::new(pb::ListContactsResponse {
            contacts: contacts
                .into_iter()
                .map(|(entry, view)| convert::contact(entry, view))
                .collect(),
            next_page_token,
        }))
    }

    async fn send_contact_request(
        &self,
        request: Request<pb::SendContactRequestRequest>,
    ) -> Reply<pb::SendContactRequestResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        let recipient = other_user(&mut check, "user_id", &body.user_id, caller);
        let message = check.text("message", &body.message, rules::MAX_REQUEST_MESSAGE, false);
        finish(check)?;
        let view = self
            .people
            .send_request(caller, recipient.expect("checked"), &message)
            .await?;
        Ok(Response::new(pb::SendContactRequestResponse {
            contact_request: Some(convert::contact_request(view)),
        }))
    }

    async fn accept_contact_request(
        &self,
        request: Request<pb::AcceptContactRequestRequest>,
    ) -> Reply<pb::AcceptContactRequestResponse> {
        let (caller, id) = request_id(&request, &request.get_ref().contact_request_id)?;
        let view = self.people.accept_request(caller, id).await?;
        Ok(Response::new(pb::AcceptContactRequestResponse {
            contact_request: Some(convert::contact_request(view)),
        }))
    }

    async fn decline_contact_request(
        &self,
        request: Request<pb::DeclineContactRequestRequest>,
    ) -> Reply<pb::DeclineContactRequestResponse> {
        let (caller, id) = request_id(&request, &request.get_ref().contact_request_id)?;
        self.people.decline_request(caller, id).await?;
        Ok(Response::new(pb::DeclineContactRequestResponse {}))
    }

    async fn cancel_contact_request(
        &self,
        request: Request<pb::CancelContactRequestRequest>,
    ) -> Reply<pb::CancelContactRequestResponse> {
        let (caller, id) = request_id(&request, &request.get_ref().contact_request_id)?;
        self.people.cancel_request(caller, id).await?;
        Ok(Response::new(pb::CancelContactRequestResponse {}))
    }

    async fn list_contact_requests(
        &self,
        request: Request<pb::ListContactRequestsRequest>,
    ) -> Reply<pb::ListContactRequestsResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        let direction = match pb::ContactRequestDirection::try_from(body.direction) {
            Ok(pb::ContactRequestDirection::Incoming) => Some(Direction::Incoming),
            Ok(pb::ContactRequestDirection::Outgoing) => Some(Direction::Outgoing),
            _ => {
                check.push("direction", "must be INCOMING or OUTGOING");
                None
            }
        };
        let page = check.page(body.page_size, &body.page_token, LIST_PAGE);
        finish(check)?;
        let (requests, next_page_token) = self
            .people
            .requests(caller, direction.expect("checked"), &page)
            .await?;
        Ok(Response::new(pb::ListContactRequestsResponse {
            contact_requests: requests.into_iter().map(convert::contact_request).collect(),
            next_page_token,
        }))
    }

    async fn block_user(
        &self,
        request: Request<pb::BlockUserRequest>,
    ) -> Reply<pb::BlockUserResponse> {
        let caller = caller(&request)?;
        let mut check = Check::new();
        let blocked = other_user(&mut check, "user_id", &request.get_ref().user_id, caller);
        finish(check)?;
        self.people.block(caller, blocked.expect("checked")).await?;
        Ok(Response::new(pb::BlockUserResponse {}))
    }

    async fn unblock_user(
        &self,
        request: Request<pb::UnblockUserRequest>,
    ) -> Reply<pb::UnblockUserResponse> {
        let caller = caller(&request)?;
        let mut check = Check::new();
        let blocked = other_user(&mut check, "user_id", &request.get_ref().user_id, caller);
        finish(check)?;
        self.people
            .unblock(caller, blocked.expect("checked"))
            .await?;
        Ok(Response::new(pb::UnblockUserResponse {}))
    }

    async fn list_blocked_users(
        &self,
        request: Request<pb::ListBlockedUsersRequest>,
    ) -> Reply<pb::ListBlockedUsersResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let mut check = Check::new();
        let page = check.page(body.page_size, &body.page_token, LIST_PAGE);
        finish(check)?;
        let (blocked, next_page_token) = self.people.blocked(caller, &page).await?;
        Ok(Response::new(pb::ListBlockedUsersResponse {
            blocked_users: blocked
                .into_iter()
                .map(|(entry, view)| convert::blocked_user(entry, view))
                .collect(),
            next_page_token,
        }))
    }

    async fn get_privacy_settings(
        &self,
        request: Request<pb::GetPrivacySettingsRequest>,
    ) -> Reply<pb::GetPrivacySettingsResponse> {
        let privacy = self.people.privacy(caller(&request)?).await?;
        Ok(Response::new(pb::GetPrivacySettingsResponse {
            settings: Some(rules::privacy_settings(privacy)),
        }))
    }

    async fn update_privacy_settings(
        &self,
        request: Request<pb::UpdatePrivacySettingsRequest>,
    ) -> Reply<pb::UpdatePrivacySettingsResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let settings = body.settings.unwrap_or_default();
        let mut check = Check::new();
        let paths = check.mask(
            body.update_mask,
            &["last_seen", "profile_photo", "about", "find_by_phone"],
        );
        let mut change = PrivacyChange::default();
        for path in &paths {
            let (value, slot) = match path.as_str() {
                "last_seen" => (settings.last_seen, &mut change.last_seen),
                "profile_photo" => (settings.profile_photo, &mut change.profile_photo),
                "about" => (settings.about, &mut change.about),
                _ => (settings.find_by_phone, &mut change.find_by_phone),
            };
            *slot = convert::visibility(value);
            if slot.is_none() {
                check.push(
                    format!("settings.{path}"),
                    "must be EVERYONE, CONTACTS or NOBODY",
                );
            }
        }
        finish(check)?;
        let privacy = self.people.update_privacy(caller, change).await?;
        Ok(Response::new(pb::UpdatePrivacySettingsResponse {
            settings: Some(rules::privacy_settings(privacy)),
        }))
    }
}

/// The caller and the required contact request id of a request about one contact request.
fn request_id<T>(request: &Request<T>, id: &str) -> Result<(UserId, ContactRequestId), Status> {
    let caller = caller(request)?;
    let mut check = Check::new();
    let id = check.id_of("contact_request_id", id);
    finish(check)?;
    Ok((caller, id.expect("checked")))
}
