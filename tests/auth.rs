//! AuthService journeys end to end through the generated gRPC client, on both backends.

use common::*;
use echo_auth::OtpPurpose;
use echo_proto::echo::auth::v1 as pb;
use echo_testkit::{Backend, PASSWORD, SignedIn, TestMesh, phone_number, test_device};
use tonic::Code;
use tonic_types::StatusExt;

mod common;

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
            outbox_events(&mesh, "auth", "echo.events.v1.UserRegistered").await,
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
        assert_eq!(
            outbox_events(&mesh, "auth", "echo.events.v1.UserDeleted").await,
            1
        );
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

#[tokio::test]
async fn list_sessions_caps_large_page_sizes_on_both_backends() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let user = mesh.sign_up().await;
        for _ in 0..2 {
            login(&mesh, &user.phone, PASSWORD).await.unwrap();
        }
        let mut client =
            pb::auth_service_client::AuthServiceClient::new(mesh.authed(&user.tokens.access_token));
        let list = |page_size: i32, page_token: String| pb::ListSessionsRequest {
            page_size,
            page_token,
        };
        for size in [201, i32::MAX] {
            let page = client.list_sessions(list(size, String::new())).await;
            let page = page.unwrap_or_else(|s| panic!("{backend:?} page_size {size}: {s:?}"));
            assert_eq!(page.into_inner().sessions.len(), 3, "{backend:?}");
        }
        let first = client.list_sessions(list(2, String::new())).await.unwrap();
        let first = first.into_inner();
        assert_eq!(first.sessions.len(), 2);
        let rest = client
            .list_sessions(list(2, first.next_page_token))
            .await
            .unwrap();
        let rest = rest.into_inner();
        assert_eq!(
            (rest.sessions.len(), rest.next_page_token.as_str()),
            (1, "")
        );
        let negative = client
            .list_sessions(list(-1, String::new()))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&negative), ["page_size"]);
        mesh.shutdown().await;
    }
}
