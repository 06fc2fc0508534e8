//! The authn layer through real gRPC (STYLE 12): a UserService whose RPCs are the generated
//! UNIMPLEMENTED stubs except GetMe (which echoes the caller), plus health, both wrapped by
//! `Authenticated` and served on 127.0.0.1:0.

use std::sync::Arc;
use std::time::Duration;

use echo_authn::{
    AuthnLayer, Caller, KeySet, RevocationOptions, Revocations, SigningKey, TokenIssuer, Verifier,
};
use echo_ids::{DeviceId, SessionId, UserId};
use echo_proto::echo::user::v1::user_service_client::UserServiceClient;
use echo_proto::echo::user::v1::user_service_server::{UserService, UserServiceServer};
use echo_proto::echo::user::v1::{
    GetMeRequest, GetMeResponse, GetUserRequest, LookupByPhoneRequest, Profile,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;
use tower::Layer;

const ISSUER: &str = "echo-test";
const PUBLIC: &[&str] = &["/echo.user.v1.UserService/LookupByPhone"];

/// Every RPC is the generated UNIMPLEMENTED stub except GetMe, which proves the caller arrived.
struct Stub;

#[tonic::async_trait]
impl UserService for Stub {
    async fn get_me(
        &self,
        request: Request<GetMeRequest>,
    ) -> Result<Response<GetMeResponse>, Status> {
        let caller =
            Caller::of(&request).map_err(|e| Status::from(echo_status::Failure::from(e)))?;
        Ok(Response::new(GetMeResponse {
            profile: Some(Profile {
                user_id: caller.user_id.to_string(),
                ..Profile::default()
            }),
        }))
    }
}

struct Harness {
    channel: Channel,
    issuer: TokenIssuer,
    revocations: Revocations,
    shutdown: CancellationToken,
}

impl Harness {
    async fn start(revocations: Revocations) -> Self {
        let keys = KeySet::new(SigningKey::generate().unwrap());
        let issuer = TokenIssuer::new(keys.signing_key().unwrap(), ISSUER).unwrap();
        let verifier = Arc::new(Verifier::new(keys.public_keys(), ISSUER));
        let layer = AuthnLayer::new(verifier, revocations.clone(), PUBLIC);
        let (_reporter, health) = tonic_health::server::health_reporter();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(layer.layer(UserServiceServer::new(Stub)))
                .add_service(layer.layer(health))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    stop.cancelled_owned(),
                ),
        );
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            channel,
            issuer,
            revocations,
            shutdown,
        }
    }

    async fn with_memory_cache() -> Self {
        let revocations = Revocations::new(Arc::new(echo_cache::MemoryCache::new("t")));
        revocations.start(CancellationToken::new()).await;
        Self::start(revocations).await
    }

    fn users(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel.clone())
    }

    /// A token for a fresh user, session and device.
    fn token(&self) -> (String, Caller) {
        let caller = Caller {
            user_id: UserId::new_v7(),
            session_id: SessionId::new_v7(),
            device_id: DeviceId::new_v7(),
        };
        let (token, _) = self
            .issuer
            .issue(
                caller.user_id.into(),
                caller.session_id.into(),
                caller.device_id.into(),
                Duration::from_secs(900),
            )
            .unwrap();
        (token, caller)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Asserts `status` has `code` and an Echo ErrorInfo with `reason`, as a client decodes it.
fn assert_reason(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason);
    assert_eq!(info.domain, "echo");
}

#[tokio::test]
async fn no_token_is_unauthenticated_token_missing() {
    let harness = Harness::with_memory_cache().await;
    let status = harness.users().get_me(GetMeRequest {}).await.unwrap_err();
    assert_reason(&status, Code::Unauthenticated, "TOKEN_MISSING");

    let mut basic = Request::new(GetMeRequest {});
    basic
        .metadata_mut()
        .insert("authorization", "Basic dTpw".parse().unwrap());
    let status = harness.users().get_me(basic).await.unwrap_err();
    assert_reason(&status, Code::Unauthenticated, "TOKEN_MISSING");
}

#[tokio::test]
async fn a_valid_token_reaches_the_service_with_its_caller() {
    let harness = Harness::with_memory_cache().await;
    let (token, caller) = harness.token();
    let me = harness
        .users()
        .get_me(bearer(GetMeRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.profile.unwrap().user_id, caller.user_id.to_string());

    // UNIMPLEMENTED comes from the stub, so the layer let the call through.
    let status = harness
        .users()
        .get_user(bearer(GetUserRequest::default(), &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}

#[tokio::test]
async fn a_bad_token_is_unauthenticated_token_invalid() {
    let harness = Harness::with_memory_cache().await;
    let (token, _) = harness.token();
    let forged = format!("{}x", &token[..token.len() - 1]);
    for token in ["garbage", forged.as_str()] {
        let status = harness
            .users()
            .get_me(bearer(GetMeRequest {}, token))
            .await
            .unwrap_err();
        assert_reason(&status, Code::Unauthenticated, "TOKEN_INVALID");
    }
}

#[tokio::test]
async fn a_revoked_session_is_unauthenticated_session_revoked() {
    let harness = Harness::with_memory_cache().await;
    let (token, caller) = harness.token();
    harness
        .users()
        .get_me(bearer(GetMeRequest {}, &token))
        .await
        .unwrap();
    harness
        .revocations
        .revoke(caller.session_id, Duration::from_secs(900))
        .await
        .unwrap();
    let status = harness
        .users()
        .get_me(bearer(GetMeRequest {}, &token))
        .await
        .unwrap_err();
    assert_reason(&status, Code::Unauthenticated, "SESSION_REVOKED");
}

#[tokio::test]
async fn unknown_revocation_state_is_unavailable_with_retry_info() {
    // Never started: the feed is down from the beginning, and the grace is zero.
    let options = RevocationOptions {
        grace: Duration::ZERO,
        ..RevocationOptions::default()
    };
    let revocations =
        Revocations::with_options(Arc::new(echo_cache::MemoryCache::new("t")), options);
    let harness = Harness::start(revocations).await;
    let (token, _) = harness.token();
    let status = harness
        .users()
        .get_me(bearer(GetMeRequest {}, &token))
        .await
        .unwrap_err();
    assert_reason(&status, Code::Unavailable, "DEPENDENCY_UNAVAILABLE");
    assert!(status.get_error_details().retry_info().is_some());
}

#[tokio::test]
async fn public_methods_health_and_no_token_pass() {
    let harness = Harness::with_memory_cache().await;
    let status = harness
        .users()
        .lookup_by_phone(LookupByPhoneRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unimplemented,
        "public method: {status:?}"
    );

    let health = HealthClient::new(harness.channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);
}
