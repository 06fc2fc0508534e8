//! The events AuthService publishes (through its outbox), as `echo.events.v1` messages.

use chrono::Utc;
use echo_bus::Event;
use echo_ids::{DeviceId, SessionId, UserId};
use echo_proto::echo::events::v1::{SessionEndReason, SessionRevoked, UserDeleted, UserRegistered};
use prost::Message;
use uuid::Uuid;

use crate::store::Account;

fn timestamp(at: chrono::DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// `echo.auth.user_registered.<user_id>`: a verified account exists (its phone number for
/// the user service's profile and phone look-up; never a secret).
pub fn user_registered(account: &Account) -> Event {
    let id = Uuid::now_v7();
    let message = UserRegistered {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        user_id: account.user_id.to_string(),
        display_name: account.display_name.clone(),
        phone_verified_at: Some(timestamp(account.created_at)),
        phone_number: account.phone_number.clone(),
    };
    let subject = format!("echo.auth.user_registered.{}", account.user_id);
    Event::now(
        id,
        subject,
        "echo.events.v1.UserRegistered",
        message.encode_to_vec(),
    )
}

/// `echo.auth.user_deleted.<user_id>`: other services remove what they hold of the user.
pub fn user_deleted(user_id: UserId) -> Event {
    let id = Uuid::now_v7();
    let message = UserDeleted {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        user_id: user_id.to_string(),
    };
    let subject = format!("echo.auth.user_deleted.{user_id}");
    Event::now(
        id,
        subject,
        "echo.events.v1.UserDeleted",
        message.encode_to_vec(),
    )
}

/// `echo.auth.session_revoked.<user_id>`: a session ended (logout, revocation, password
/// reset, refresh-token reuse); other services drop what belongs to its device (push tokens,
/// presence entries). Keyed by user, so one user's sessions end in order.
pub fn session_revoked(
    user_id: UserId,
    session_id: SessionId,
    device_id: DeviceId,
    reason: SessionEndReason,
) -> Event {
    let id = Uuid::now_v7();
    let message = SessionRevoked {
        event_id: id.to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        user_id: user_id.to_string(),
        session_id: session_id.to_string(),
        device_id: device_id.to_string(),
        reason: reason as i32,
    };
    let subject = format!("echo.auth.session_revoked.{user_id}");
    Event::now(
        id,
        subject,
        "echo.events.v1.SessionRevoked",
        message.encode_to_vec(),
    )
}
