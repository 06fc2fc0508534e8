//! Domain values to their `echo.user.v1` messages, and the enums back.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use echo_proto::echo::user::v1 as pb;

use crate::people::RequestView;
use crate::rules;
use crate::store::{BlockEntry, ContactEntry, Profile, Visibility};
use crate::visibility::PublicView;

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    SystemTime::from(at).into()
}

pub fn profile(profile: Profile) -> pb::Profile {
    pb::Profile {
        user_id: profile.user_id.to_string(),
        display_name: profile.display_name,
        username: profile.username.unwrap_or_default(),
        about: profile.about,
        avatar: profile.avatar.as_ref().map(rules::media),
        phone_number: profile.phone_number.unwrap_or_default(),
        created_at: Some(timestamp(profile.created_at)),
        updated_at: Some(timestamp(profile.updated_at)),
    }
}

pub fn public_profile(view: PublicView) -> pb::PublicProfile {
    pb::PublicProfile {
        user_id: view.user_id.to_string(),
        display_name: view.display_name,
        username: view.username,
        about: view.about,
        avatar: view.avatar.as_ref().map(rules::media),
        created_at: view.created_at.map(timestamp),
        deleted: view.deleted,
        relationship: Some(pb::Relationship {
            contact: view.relationship.contact,
            mutual_contact: view.relationship.mutual_contact,
            alias: view.relationship.alias,
            blocked: view.relationship.blocked,
        }),
    }
}

pub fn contact(entry: ContactEntry, view: Option<PublicView>) -> pb::Contact {
    pb::Contact {
        user_id: entry.user_id.to_string(),
        alias: entry.alias,
        profile: view.map(public_profile),
        created_at: Some(timestamp(entry.created_at)),
    }
}

pub fn contact_request(view: RequestView) -> pb::ContactRequest {
    let request = view.request;
    pb::ContactRequest {
        contact_request_id: request.id.to_string(),
        sender_user_id: request.sender_id.to_string(),
        recipient_user_id: request.recipient_id.to_string(),
        message: request.message,
        state: i32::from(request.state.code()),
        other_user: view.other.map(public_profile),
        created_at: Some(timestamp(request.created_at)),
        updated_at: Some(timestamp(request.updated_at)),
    }
}

pub fn blocked_user(entry: BlockEntry, view: Option<PublicView>) -> pb::BlockedUser {
    pb::BlockedUser {
        user: view.map(public_profile),
        blocked_at: Some(timestamp(entry.blocked_at)),
    }
}

/// A wire Visibility; None for UNSPECIFIED and unknown values.
pub fn visibility(value: i32) -> Option<Visibility> {
    match pb::Visibility::try_from(value).ok()? {
        pb::Visibility::Unspecified => None,
        pb::Visibility::Everyone => Some(Visibility::Everyone),
        pb::Visibility::Contacts => Some(Visibility::Contacts),
        pb::Visibility::Nobody => Some(Visibility::Nobody),
    }
}
