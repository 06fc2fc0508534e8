//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test file uses a different subset

pub mod frames;
pub mod live;
pub mod messages;
pub mod processes;
pub mod rpcs;
pub mod users;

use std::time::Duration;

use echo_proto::echo::auth::v1 as pb;
use echo_testkit::{PASSWORD, SignedIn, TestMesh, test_device};
use tonic_types::StatusExt;

pub fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// The code and reason of a refusal, to compare with what a test expects.
pub fn refusal(status: &tonic::Status) -> (tonic::Code, String) {
    (status.code(), reason(status))
}

/// Asserts `status` is a refusal with `code` and reason `expected`.
pub fn assert_reason(status: &tonic::Status, code: tonic::Code, expected: &str) {
    assert_eq!(
        (status.code(), reason(status).as_str()),
        (code, expected),
        "{status:?}"
    );
}

pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let bad = details
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    bad.into_iter().map(|v| v.field).collect()
}

/// An access token for `user`'s session, signed with the mesh's real key but issued an hour
/// ago for a minute: expired.
pub fn expired_token(mesh: &TestMesh, user: &pb::TokenPair) -> String {
    let ids = (
        user.user_id.parse().expect("user id"),
        user.session_id.parse().expect("session id"),
        user.device_id.parse().expect("device id"),
    );
    let key = echo_authn::SigningKey::load_or_generate(&mesh.config.data_dir).expect("key");
    let issuer =
        echo_authn::TokenIssuer::new(&key, mesh.config.auth.jwt_issuer.clone()).expect("issuer");
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let (expired, _) = issuer
        .issue_at(
            ids.0,
            ids.1,
            ids.2,
            an_hour_ago,
            Duration::from_secs(60),
            uuid::Uuid::now_v7(),
        )
        .expect("token");
    expired
}

pub async fn list_sessions(
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
pub async fn refused_within_a_second(mesh: &TestMesh, access_token: &str) -> tonic::Status {
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

/// A second device of `user`: a new sign-in with the test password.
pub async fn second_device(mesh: &TestMesh, user: &SignedIn) -> SignedIn {
    let tokens = login(mesh, &user.phone, PASSWORD).await.expect("login");
    assert_ne!(tokens.device_id, user.tokens.device_id);
    SignedIn {
        phone: user.phone.clone(),
        tokens,
    }
}

pub async fn login(
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

pub async fn refresh(mesh: &TestMesh, token: &str) -> Result<pb::TokenPair, tonic::Status> {
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

/// How many events of `event_type` `service` has written to its outbox.
pub async fn outbox_events(mesh: &TestMesh, service: &str, event_type: &str) -> i64 {
    let (_, db) = mesh
        .mesh
        .databases
        .iter()
        .find(|(t, _)| t.name() == service)
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

/// Move every stored code's creation and expiry into the past.
pub async fn expire_codes(mesh: &TestMesh) {
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
