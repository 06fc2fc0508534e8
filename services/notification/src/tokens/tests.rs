//! RegisterPushToken requests: every bad field is named, before any per-element work.

use echo_runtime::Failure;

use super::*;

fn caller() -> Caller {
    Caller {
        user_id: UserId::new_v7(),
        session_id: SessionId::new_v7(),
        device_id: DeviceId::new_v7(),
    }
}

fn request(platform: i32, token: &str, app_id: &str) -> pb::RegisterPushTokenRequest {
    pb::RegisterPushTokenRequest {
        platform,
        token: token.to_owned(),
        app_id: app_id.to_owned(),
        sandbox: true,
    }
}

fn violations(request: pb::RegisterPushTokenRequest) -> Vec<(String, String)> {
    match registration(caller(), &request, true) {
        Err(NotificationError::Invalid(Failure::InvalidArgument(violations))) => violations
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect(),
        other => panic!("expected violations, got {other:?}"),
    }
}

fn fields(request: pb::RegisterPushTokenRequest) -> Vec<String> {
    violations(request)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

const FCM: i32 = pb::PushPlatform::Fcm as i32;
const APNS: i32 = pb::PushPlatform::Apns as i32;

#[test]
fn a_good_request_becomes_the_callers_registration() {
    let caller = caller();
    let apns = "ab".repeat(32);
    let apns_registration =
        registration(caller, &request(APNS, &apns, "  com.example.app "), true).unwrap();
    assert_eq!(apns_registration.user_id, caller.user_id);
    assert_eq!(apns_registration.device_id, caller.device_id);
    assert_eq!(apns_registration.session_id, caller.session_id);
    assert_eq!(apns_registration.platform, Platform::Apns);
    assert_eq!(apns_registration.app_id, "com.example.app");
    assert_eq!(apns_registration.token, apns);
    assert!(apns_registration.sandbox);
    // sandbox means something for APNs only
    let fcm = registration(caller, &request(FCM, "tok", ""), true).unwrap();
    assert!(!fcm.sandbox);
}

#[test]
fn platform_must_be_given_and_known() {
    assert_eq!(fields(request(0, "tok", "")), ["platform"]);
    assert_eq!(fields(request(42, "tok", "")), ["platform"]);
    // the token is still checked for what every platform shares
    assert_eq!(fields(request(0, "", "")), ["platform", "token"]);
}

#[test]
fn every_bad_field_is_named_at_once() {
    let found = fields(request(APNS, "NOT-HEX", &"x".repeat(256)));
    assert_eq!(found, ["app_id", "token"]);
    assert_eq!(fields(request(FCM, "tok", "a\u{7}b")), ["app_id"]);
    assert_eq!(fields(request(FCM, "", "")), ["token"]);
}

#[test]
fn huge_fields_are_refused_on_their_size() {
    let huge = "x".repeat(4 * 1024 * 1024);
    let found = violations(request(FCM, &huge, &huge));
    assert_eq!(
        found,
        [
            (
                "app_id".to_owned(),
                "must be at most 255 characters".to_owned()
            ),
            ("token".to_owned(), "must be at most 4096 bytes".to_owned()),
        ]
    );
    let found = violations(request(0, &huge, ""));
    assert_eq!(found[1].1, "must be at most 4096 bytes");
}

#[test]
fn an_app_id_of_255_characters_is_fine() {
    let app_id = "é".repeat(255);
    assert!(registration(caller(), &request(FCM, "tok", &app_id), true).is_ok());
}
