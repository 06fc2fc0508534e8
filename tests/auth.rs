//! AuthService end to end through the generated gRPC client, on both backends: every journey,
//! and each denial with its code and google.rpc detail.

use std::time::{Duration, SystemTime};

use echo_auth::store::OtpPurpose;
use echo_proto::echo::auth::v1 as pb;
use echo_testkit::{Backend, PASSWORD, SignedIn, TestMesh, phone_number, test_device};
use tonic::Code;
use tonic_types::StatusExt;

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let bad = details
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    bad.into_iter().map(|v| v.field).collect()
}

async fn list_sessions(
    mesh: &TestMesh,
    access_token: &str,
) -> Result<Vec<pb::Session>, tonic::Status> {
    let mut client = pb::auth_service_client::AuthServiceClient::new(mesh.authed(access_token));
    let page = client
        .list_sessions(pb::ListSessionsRequest::default())
        .await?;
    Ok(page.into_inner().sessions)
}

/// Poll until `access_token` is refused (revocations must land within a second).
async fn refused_within_a_second(mesh: &TestMesh, access_token: &str) -> tonic::Status {
    let started = std::time::Instant::now();
    loop {
        match list_sessions(mesh, access_token).await {
            Err(status) => {
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "took {:?}",
                    started.elapsed()
                );
                return status;
            }
            Ok(_) if started.elapsed() > Duration::from_secs(1) => panic!("token still accepted"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn login(
    mesh: &TestMesh,
    phone: &str,
    password: &str,
) -> Result<pb::TokenPair, tonic::Status> {
    let request = pb::LoginWithPasswordRequest {
        phone_number: phone.into(),
        password: password.into(),
        device: Some(test_device()),
    };
    Ok(mesh
        .auth()
        .login_with_password(request)
        .await?
        .into_inner()
        .tokens
        .unwrap())
}

async fn refresh(mesh: &TestMesh, token: &str) -> Result<pb::TokenPair, tonic::Status> {
    let request = pb::RefreshTokensRequest {
        refresh_token: token.into(),
    };
    Ok(mesh
        .auth()
        .refresh_tokens(request)
        .await?
        .into_inner()
        .tokens
        .unwrap())
}

async fn outbox_events(mesh: &TestMesh, event_type: &str) -> i64 {
    let (_, db) = mesh
        .mesh
        .databases
        .iter()
        .find(|(t, _)| t.name() == "auth")
        .unwrap();
    let sql = "SELECT count(*) FROM outbox WHERE event_type = $1";
    match db {
        echo_store::Database::Postgres(pg) => sqlx::query_scalar(sql)
            .bind(event_type)
            .fetch_one(&pg.pool)
            .await
            .unwrap(),
        echo_store::Database::Sqlite(lite) => sqlx::query_scalar(sql)
            .bind(event_type)
            .fetch_one(&lite.reader)
            .await
            .unwrap(),
    }
}

#[tokio::test]
async fn every_journey_on_both_backends() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let phone = phone_number();

        // Register → code → verify: the account exists and the first session is signed in.
        let register = pb::RegisterRequest {
            phone_number: phone.clone(),
            password: PASSWORD.into(),
            display_name: "Ada".into(),
        };
        let challenge = mesh
            .auth()
            .register(register)
            .await
            .unwrap()
            .into_inner()
            .challenge;
        assert_eq!(challenge.unwrap().code_length, 6);
        let code = mesh.code_for(&phone, OtpPurpose::Register).await;
        let verify = pb::VerifyPhoneRequest {
            phone_number: phone.clone(),
            code,
            device: Some(test_device()),
        };
        let verified = mesh.auth().verify_phone(verify).await.unwrap().into_inner();
        assert!(verified.account_created, "{backend:?}");
        let first = verified.tokens.unwrap();
        assert_eq!(
            outbox_events(&mesh, "echo.events.v1.UserRegistered").await,
            1
        );
        let sessions = list_sessions(&mesh, &first.access_token).await.unwrap();
        assert_eq!(sessions.len(), 1);
        assert!(sessions[0].current);
        assert_eq!(sessions[0].device_id, first.device_id);

        // Password login and OTP login each open a session on a new server-issued device.
        let second = login(&mesh, &phone, PASSWORD).await.unwrap();
        assert_ne!(second.device_id, first.device_id);
        mesh.auth()
            .request_login_otp(pb::RequestLoginOtpRequest {
                phone_number: phone.clone(),
            })
            .await
            .unwrap();
        let code = mesh.code_for(&phone, OtpPurpose::Login).await;
        let otp_login = pb::LoginWithOtpRequest {
            phone_number: phone.clone(),
            code,
            device: Some(test_device()),
        };
        let third = mesh
            .auth()
            .login_with_otp(otp_login)
            .await
            .unwrap()
            .into_inner()
            .tokens
            .unwrap();
        assert_eq!(
            list_sessions(&mesh, &third.access_token)
                .await
                .unwrap()
                .len(),
            3
        );

        // Refresh rotates; repeating it within the grace returns the very same pair.
        let rotated = refresh(&mesh, &first.refresh_token).await.unwrap();
        assert_ne!(rotated.refresh_token, first.refresh_token);
        let retried = refresh(&mesh, &first.refresh_token).await.unwrap();
        assert_eq!(
            retried, rotated,
            "a retry within the grace gets the same pair"
        );
        let again = refresh(&mesh, &rotated.refresh_token).await.unwrap();
        assert_eq!(again.session_id, first.session_id);

        // Revoking another session ends its tokens within a second.
        let me = SignedIn {
            phone: phone.clone(),
            tokens: again.clone(),
        };
        let revoke = pb::RevokeSessionRequest {
            session_id: second.session_id.clone(),
        };
        mesh.auth_as(&me).revoke_session(revoke).await.unwrap();
        let refused = refused_within_a_second(&mesh, &second.access_token).await;
        assert_eq!(refused.code(), Code::Unauthenticated);
        assert_eq!(reason(&refused), "SESSION_REVOKED");
        let gone = refresh(&mesh, &second.refresh_token).await.unwrap_err();
        assert_eq!(reason(&gone), "REFRESH_TOKEN_INVALID");

        // Change password: the current one is required.
        let wrong = pb::ChangePasswordRequest {
            current_password: "not my password at all".into(),
            new_password: "a brand new passphrase".into(),
            revoke_other_sessions: false,
        };
        let status = mesh.auth_as(&me).change_password(wrong).await.unwrap_err();
        assert_eq!(reason(&status), "INVALID_CREDENTIALS");
        let change = pb::ChangePasswordRequest {
            current_password: PASSWORD.into(),
            new_password: "a brand new passphrase".into(),
            revoke_other_sessions: true,
        };
        mesh.auth_as(&me).change_password(change).await.unwrap();
        let refused = refused_within_a_second(&mesh, &third.access_token).await;
        assert_eq!(reason(&refused), "SESSION_REVOKED", "other sessions ended");
        assert_eq!(
            reason(&login(&mesh, &phone, PASSWORD).await.unwrap_err()),
            "INVALID_CREDENTIALS"
        );
        login(&mesh, &phone, "a brand new passphrase")
            .await
            .unwrap();

        // Reset by code: every session ends, the new password works.
        let reset_request = pb::RequestPasswordResetRequest {
            phone_number: phone.clone(),
        };
        mesh.auth()
            .request_password_reset(reset_request)
            .await
            .unwrap();
        let code = mesh.code_for(&phone, OtpPurpose::PasswordReset).await;
        let reset = pb::ResetPasswordRequest {
            phone_number: phone.clone(),
            code,
            new_password: "reset to this passphrase".into(),
        };
        mesh.auth().reset_password(reset).await.unwrap();
        assert_eq!(
            reason(&refused_within_a_second(&mesh, &again.access_token).await),
            "SESSION_REVOKED"
        );
        let latest = login(&mesh, &phone, "reset to this passphrase")
            .await
            .unwrap();

        // Logout ends the session within a second.
        let me = SignedIn {
            phone: phone.clone(),
            tokens: latest.clone(),
        };
        mesh.auth_as(&me)
            .logout(pb::LogoutRequest {})
            .await
            .unwrap();
        assert_eq!(
            reason(&refused_within_a_second(&mesh, &latest.access_token).await),
            "SESSION_REVOKED"
        );

        // Delete the account: it is gone, and `user deleted` went out with the deletion.
        let me = SignedIn {
            phone: phone.clone(),
            tokens: login(&mesh, &phone, "reset to this passphrase")
                .await
                .unwrap(),
        };
        let wrong = pb::DeleteAccountRequest {
            password: "not the password".into(),
        };
        assert_eq!(
            reason(&mesh.auth_as(&me).delete_account(wrong).await.unwrap_err()),
            "INVALID_CREDENTIALS"
        );
        let delete = pb::DeleteAccountRequest {
            password: "reset to this passphrase".into(),
        };
        mesh.auth_as(&me).delete_account(delete).await.unwrap();
        assert_eq!(outbox_events(&mesh, "echo.events.v1.UserDeleted").await, 1);
        let status = login(&mesh, &phone, "reset to this passphrase")
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "INVALID_CREDENTIALS");
        assert_eq!(
            reason(&refused_within_a_second(&mesh, &me.tokens.access_token).await),
            "SESSION_REVOKED"
        );

        // The public keys verifiers need.
        let keys = mesh
            .auth()
            .get_signing_keys(pb::GetSigningKeysRequest {})
            .await
            .unwrap();
        let key = &keys.into_inner().keys[0];
        assert_eq!((key.alg.as_str(), key.crv.as_str()), ("EdDSA", "Ed25519"));
        mesh.shutdown().await;
    }
}

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
        device: None,
    };
    assert_eq!(
        violated_fields(&mesh.auth().verify_phone(code).await.unwrap_err()),
        ["code"]
    );
    mesh.shutdown().await;
}

#[tokio::test]
async fn codes_are_single_use_expire_and_cap_attempts_on_both_backends() {
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
        mesh.auth().register(register.clone()).await.unwrap();
        let code = mesh.code_for(&phone, OtpPurpose::Register).await;
        let verify = |code: &str| pb::VerifyPhoneRequest {
            phone_number: phone.clone(),
            code: code.into(),
            device: Some(test_device()),
        };
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..4 {
            let status = mesh.auth().verify_phone(verify(wrong)).await.unwrap_err();
            assert_eq!(reason(&status), "OTP_INVALID");
        }
        let status = mesh.auth().verify_phone(verify(wrong)).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(reason(&status), "OTP_ATTEMPTS_EXCEEDED");
        assert!(status.get_error_details().retry_info().is_some());
        // The capped code is gone: even the right one no longer works.
        assert_eq!(
            reason(&mesh.auth().verify_phone(verify(&code)).await.unwrap_err()),
            "OTP_INVALID"
        );

        // Expiry: age the stored code past its deadline.
        let later = pb::RequestLoginOtpRequest {
            phone_number: phone.clone(),
        };
        let _ = later; // (register again to get a fresh code once the resend pause has passed)
        expire_codes(&mesh).await;
        mesh.auth().register(register.clone()).await.unwrap();
        let fresh = mesh.code_for(&phone, OtpPurpose::Register).await;
        expire_codes(&mesh).await;
        let status = mesh.auth().verify_phone(verify(&fresh)).await.unwrap_err();
        assert_eq!(reason(&status), "OTP_EXPIRED", "{backend:?} {status:?}");

        // Single use.
        mesh.auth().register(register).await.unwrap();
        let last = mesh.code_for(&phone, OtpPurpose::Register).await;
        mesh.auth().verify_phone(verify(&last)).await.unwrap();
        assert_eq!(
            reason(&mesh.auth().verify_phone(verify(&last)).await.unwrap_err()),
            "OTP_INVALID"
        );
        mesh.shutdown().await;
    }
}

/// Move every stored code's creation and expiry into the past.
async fn expire_codes(mesh: &TestMesh) {
    let (_, db) = mesh
        .mesh
        .databases
        .iter()
        .find(|(t, _)| t.name() == "auth")
        .unwrap();
    match db {
        echo_store::Database::Postgres(pg) => {
            sqlx::query("UPDATE otp_codes SET expires_at = now() - interval '1 minute', created_at = now() - interval '10 minutes'")
                .execute(&pg.pool)
                .await
                .unwrap();
        }
        echo_store::Database::Sqlite(lite) => {
            let past = chrono::Utc::now().timestamp_micros() - 600_000_000;
            sqlx::query("UPDATE otp_codes SET expires_at = $1, created_at = $1")
                .bind(past)
                .execute(&lite.writer)
                .await
                .unwrap();
        }
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
    let real = echo_authn::SigningKey::load_or_generate(&mesh.config.data_dir).unwrap();
    let issuer = echo_authn::TokenIssuer::new(&real, "echo").unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let (expired, _) = issuer
        .issue_at(
            user,
            session,
            device,
            an_hour_ago,
            Duration::from_secs(60),
            uuid::Uuid::now_v7(),
        )
        .unwrap();
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
