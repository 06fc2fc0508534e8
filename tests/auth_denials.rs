//! AuthService denials and attacks, each with its code and google.rpc detail.
//!
//! One piece: what a careless or hostile client can try against sign-in, each with the answer it
//! gets; the journeys that succeed are in tests/auth.rs. Split by RPC, the cases that compare
//! answers across RPCs (a malformed device refused alike by VerifyPhone and both logins, an unknown
//! phone and a wrong password answering the same) would belong to no one file.

use std::time::Duration;

use common::*;
use echo_auth::OtpPurpose;
use echo_proto::echo::auth::v1 as pb;
use echo_testkit::{Backend, PASSWORD, TestMesh, phone_number, test_device};
use tonic::Code;
use tonic_types::StatusExt;

mod common;

#[tokio::test]
async fn malformed_fields_are_reported_together() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    let register = pb::RegisterRequest {
        phone_number: "0700 123".into(),
        password: "password123".into(),
        display_name: " ".into(),
    };
    let status = mesh.auth().register(register).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        ["phone_number", "password", "display_name"]
    );
    let short = pb::RegisterRequest {
        phone_number: phone_number(),
        password: "short".into(),
        display_name: "Ada".into(),
    };
    let status = mesh.auth().register(short).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["password"]);
    assert!(
        status.message().contains("at least"),
        "{}",
        status.message()
    );
    let code = pb::VerifyPhoneRequest {
        phone_number: phone_number(),
        code: "12ab".into(),
        device: Some(test_device()),
    };
    assert_eq!(
        violated_fields(&mesh.auth().verify_phone(code).await.unwrap_err()),
        ["code"]
    );
    mesh.shutdown().await;
}

/// Devices auth.proto's `DeviceInfo` refuses, each with the field it names.
fn malformed_devices() -> Vec<(Option<pb::DeviceInfo>, &'static str)> {
    let named = |name: &str| pb::DeviceInfo {
        name: name.into(),
        ..test_device()
    };
    vec![
        (None, "device"),
        (
            Some(pb::DeviceInfo {
                name: "x".into(),
                ..Default::default()
            }),
            "device.platform",
        ),
        (Some(named("")), "device.name"),
        (Some(named("   ")), "device.name"),
        (Some(named(&"d".repeat(65))), "device.name"),
    ]
}

#[tokio::test]
async fn every_sign_in_refuses_a_malformed_device_on_both_backends() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let known = mesh.sign_up().await;
        let phone = phone_number();
        let register = pb::RegisterRequest {
            phone_number: phone.clone(),
            password: PASSWORD.into(),
            display_name: "Ada".into(),
        };
        mesh.auth().register(register).await.unwrap();
        let code = mesh.code_for(&phone, OtpPurpose::Register).await;
        let otp = pb::RequestLoginOtpRequest {
            phone_number: known.phone.clone(),
        };
        mesh.auth().request_login_otp(otp).await.unwrap();
        let login_code = mesh.code_for(&known.phone, OtpPurpose::Login).await;
        let verify = |device| pb::VerifyPhoneRequest {
            phone_number: phone.clone(),
            code: code.clone(),
            device,
        };
        let password = |device| pb::LoginWithPasswordRequest {
            phone_number: known.phone.clone(),
            password: PASSWORD.into(),
            device,
        };
        let with_otp = |device| pb::LoginWithOtpRequest {
            phone_number: known.phone.clone(),
            code: login_code.clone(),
            device,
        };
        for (device, field) in malformed_devices() {
            let refusals = [
                mesh.auth().verify_phone(verify(device.clone())).await.err(),
                mesh.auth()
                    .login_with_password(password(device.clone()))
                    .await
                    .err(),
                mesh.auth()
                    .login_with_otp(with_otp(device.clone()))
                    .await
                    .err(),
            ];
            for (rpc, status) in ["VerifyPhone", "LoginWithPassword", "LoginWithOtp"]
                .into_iter()
                .zip(refusals)
            {
                let status =
                    status.unwrap_or_else(|| panic!("{backend:?} {rpc} {device:?} signed in"));
                assert_eq!(
                    (status.code(), violated_fields(&status)),
                    (Code::InvalidArgument, vec![field.to_owned()]),
                    "{backend:?} {rpc} {device:?}"
                );
            }
        }
        // The refusals consumed nothing: a well-formed device signs in with the same codes.
        let device = Some(test_device());
        mesh.auth()
            .verify_phone(verify(device.clone()))
            .await
            .unwrap();
        mesh.auth()
            .login_with_password(password(device.clone()))
            .await
            .unwrap();
        mesh.auth().login_with_otp(with_otp(device)).await.unwrap();
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn known_and_unknown_phones_get_the_same_answers() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    let known = mesh.sign_up().await;
    let unknown = phone_number();
    let register = |phone: &str| pb::RegisterRequest {
        phone_number: phone.into(),
        password: PASSWORD.into(),
        display_name: "Eve".into(),
    };
    let a = mesh
        .auth()
        .register(register(&known.phone))
        .await
        .unwrap()
        .into_inner();
    let b = mesh
        .auth()
        .register(register(&unknown))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    let otp = |phone: &str| pb::RequestLoginOtpRequest {
        phone_number: phone.into(),
    };
    let stranger = phone_number();
    let a = mesh
        .auth()
        .request_login_otp(otp(&known.phone))
        .await
        .unwrap()
        .into_inner();
    let b = mesh
        .auth()
        .request_login_otp(otp(&stranger))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(
        mesh.otp.count(&stranger),
        0,
        "no SMS to a number without an account"
    );
    let status = login(&mesh, &stranger, PASSWORD).await.unwrap_err();
    let wrong = login(&mesh, &known.phone, "definitely wrong password")
        .await
        .unwrap_err();
    assert_eq!(
        (reason(&status), status.code()),
        (reason(&wrong), wrong.code())
    );
    assert_eq!(status.message(), wrong.message());
    mesh.shutdown().await;
}

#[tokio::test]
async fn code_requests_are_rate_limited_per_phone_with_retry_info() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    let me = mesh.sign_up().await; // one send already
    let request = pb::RequestLoginOtpRequest {
        phone_number: me.phone.clone(),
    };
    let mut limited = None;
    for _ in 0..6 {
        if let Err(status) = mesh.auth().request_login_otp(request.clone()).await {
            limited = Some(status);
            break;
        }
    }
    let status = limited.expect("the per-phone limit applies");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "RATE_LIMITED");
    assert!(
        status
            .get_error_details()
            .retry_info()
            .unwrap()
            .retry_delay
            .unwrap()
            > Duration::ZERO
    );
    mesh.shutdown().await;
}

#[tokio::test]
async fn a_resend_before_resend_after_answers_ok_and_sends_nothing_on_both_backends() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let phone = phone_number();
        let register = pb::RegisterRequest {
            phone_number: phone.clone(),
            password: PASSWORD.into(),
            display_name: "Ada".into(),
        };
        let first = mesh.auth().register(register.clone()).await.unwrap();
        let code = mesh.code_for(&phone, OtpPurpose::Register).await;
        let again = mesh.auth().register(register).await.unwrap();
        assert_eq!(first.into_inner(), again.into_inner(), "{backend:?}");
        assert_eq!(mesh.otp.count(&phone), 1, "{backend:?}: no second code");
        let verify = pb::VerifyPhoneRequest {
            phone_number: phone.clone(),
            code,
            device: Some(test_device()),
        };
        mesh.auth().verify_phone(verify).await.unwrap();
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_session_on_both_backends() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start_with(backend, "all", |c| {
            c.auth.refresh_retry_grace = Duration::ZERO;
        })
        .await
        else {
            continue;
        };
        let me = mesh.sign_up().await;
        let rotated = refresh(&mesh, &me.tokens.refresh_token).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await; // past the (zero) grace
        let status = refresh(&mesh, &me.tokens.refresh_token).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(reason(&status), "REFRESH_TOKEN_REUSED");
        // The thief's and the owner's newer tokens all stop working.
        let refused = refused_within_a_second(&mesh, &rotated.access_token).await;
        assert_eq!(reason(&refused), "SESSION_REVOKED");
        let status = refresh(&mesh, &rotated.refresh_token).await.unwrap_err();
        assert_eq!(reason(&status), "REFRESH_TOKEN_INVALID");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    let me = mesh.sign_up().await;
    let expect = |status: tonic::Status, wanted: &str| {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(reason(&status), wanted, "{status:?}");
    };
    let ids = |t: &pb::TokenPair| {
        (
            t.user_id.parse().unwrap(),
            t.session_id.parse().unwrap(),
            t.device_id.parse().unwrap(),
        )
    };
    let (user, session, device) = ids(&me.tokens);

    // Expired: signed by the real key, an hour in the past.
    let expired = expired_token(&mesh, &me.tokens);
    expect(
        list_sessions(&mesh, &expired).await.unwrap_err(),
        "TOKEN_EXPIRED",
    );

    // Tampered payload: another user id under the original signature.
    let parts: Vec<&str> = me.tokens.access_token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = serde_json::Value::String(uuid::Uuid::now_v7().to_string());
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    expect(
        list_sessions(&mesh, &tampered).await.unwrap_err(),
        "TOKEN_INVALID",
    );

    // alg: none.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    expect(
        list_sessions(&mesh, &unsigned).await.unwrap_err(),
        "TOKEN_INVALID",
    );

    // Signed by a key the server does not know (so also an unknown kid).
    let stranger = echo_authn::SigningKey::generate().unwrap();
    let foreign = echo_authn::TokenIssuer::new(&stranger, "echo").unwrap();
    let (foreign, _) = foreign
        .issue(user, session, device, Duration::from_secs(60))
        .unwrap();
    expect(
        list_sessions(&mesh, &foreign).await.unwrap_err(),
        "TOKEN_INVALID",
    );

    // Garbage and a missing header.
    expect(
        list_sessions(&mesh, "not-a-jwt").await.unwrap_err(),
        "TOKEN_INVALID",
    );
    let status = mesh
        .auth()
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .unwrap_err();
    expect(status, "TOKEN_MISSING");
    // The real token still works.
    assert_eq!(
        list_sessions(&mesh, &me.tokens.access_token)
            .await
            .unwrap()
            .len(),
        1
    );
    mesh.shutdown().await;
}

/// `RequestLoginOtp` for `count` different numbers, each as if from a different client behind
/// one proxy (the test's loopback connection); how many the per-IP limit refused.
async fn login_codes_refused_per_ip(mesh: &TestMesh, count: u8) -> usize {
    let mut refused = 0;
    for client in 1..=count {
        let mut request = tonic::Request::new(pb::RequestLoginOtpRequest {
            phone_number: phone_number(),
        });
        let forwarded = format!("203.0.113.{client}");
        request
            .metadata_mut()
            .insert("x-forwarded-for", forwarded.parse().unwrap());
        if let Err(status) = mesh.auth().request_login_otp(request).await {
            assert_eq!(reason(&status), "RATE_LIMITED", "{status:?}");
            refused += 1;
        }
    }
    refused
}

#[tokio::test]
async fn a_proxy_inside_a_trusted_range_forwards_each_clients_ip_and_others_share_theirs() {
    // Loopback inside a trusted /8: 21 clients are 21 IP buckets (the limit is 20 an hour).
    let trusted = TestMesh::start_with(Backend::Embedded, "all", |config| {
        config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
    .unwrap();
    assert_eq!(login_codes_refused_per_ip(&trusted, 21).await, 0);
    trusted.shutdown().await;
    // The same proxy outside the trusted range: its header is ignored, one bucket for all.
    let untrusted = TestMesh::start_with(Backend::Embedded, "all", |config| {
        config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await
    .unwrap();
    assert_eq!(login_codes_refused_per_ip(&untrusted, 21).await, 1);
    untrusted.shutdown().await;
}
