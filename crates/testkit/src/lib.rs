//! Spawn Echo in-process for tests (DESIGN §12): any targets, on 127.0.0.1:0, on the embedded
//! backends or on the shared Postgres + NATS + Redis with a schema, subject prefix and key
//! prefix of the test's own. Hands back typed gRPC clients.
//!
//! Tests that need the real servers get `None` from [`TestMesh::start`] (after a loud skip
//! notice) when those are absent, unless `ECHO_REQUIRE_SERVICES=1` makes that a failure.

pub mod push;
mod sibling;

use std::net::SocketAddr;
use std::sync::Arc;

use echo_config::{Config, Targets};
use echo_proto::echo;
use echo_testenv::{Server, unique_name, url};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub use echo_auth::CapturingOtpSender;
use echo_auth::store::OtpPurpose;
use echo_proto::echo::auth::v1::{
    DeviceInfo, DevicePlatform, RegisterRequest, TokenPair, VerifyPhoneRequest,
};
pub use echo_testenv as env;

/// The password every test account gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel whose calls carry an access token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// `channel` with every call carrying `access_token` (for servers the test reaches by channel,
/// e.g. child processes; a [`TestMesh`]'s own is [`TestMesh::authed`]).
pub fn authed_on(channel: &Channel, access_token: &str) -> Authed {
    let value = format!("Bearer {access_token}")
        .parse()
        .expect("ascii token");
    InterceptedService::new(channel.clone(), Bearer(value))
}

/// A signed-up, signed-in test user.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// Their E.164 phone number.
    pub phone: String,
    /// The tokens from verification.
    pub tokens: TokenPair,
}

/// A fresh valid phone number (a fictional +1 415 555 range), unique within this process by
/// construction: a counter, not a random draw. Every test mesh has its own database (its own
/// schemas or SQLite files), so numbers only need to differ within one process; a random draw
/// from 10,000 numbers collided (a second sign-up with a known number signs into the existing
/// account, and two "different" users were one).
pub fn phone_number() -> String {
    // From 1000: tests name a few low numbers (e.g. +14155550000) as ones nobody has.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    assert!(n < 10_000, "a test process signs up at most 9,000 users");
    format!("+1415555{n:04}")
}

/// Which backends a test mesh runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in a temp dir, the in-process bus, the in-memory cache.
    Embedded,
    /// The shared Postgres, NATS JetStream and Redis, isolated by per-test prefixes.
    Real,
}

impl Backend {
    /// Both backends, for tests that must pass on each.
    pub const BOTH: [Backend; 2] = [Backend::Embedded, Backend::Real];
}

/// A running in-process mesh.
pub struct TestMesh {
    /// The running process parts.
    pub mesh: ::echo::Mesh,
    /// The configuration it runs with.
    pub config: Config,
    /// Every OTP code the mesh sent, readable like an SMS.
    pub otp: CapturingOtpSender,
    shutdown: CancellationToken,
    _data_dir: tempfile::TempDir,
}

/// Log to stderr when `TEST_LOG=1`; stay silent otherwise.
pub fn init_test_logs() {
    if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .try_init();
    }
}

/// A configuration for `backend`, isolated for this test; `None` if its servers are absent.
pub fn test_config(backend: Backend, targets: &str) -> Option<(Config, tempfile::TempDir)> {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        target: targets.parse::<Targets>().expect("valid targets"),
        data_dir: data_dir.path().to_path_buf(),
        shutdown_grace: std::time::Duration::from_secs(3),
        log_format: echo_config::LogFormat::Text,
        ..Config::default()
    };
    if backend == Backend::Real {
        let isolation = unique_name("t");
        config.database_url = Some(url(Server::Postgres)?);
        config.database_schema_prefix = format!("{isolation}_");
        // Tests run meshes side by side (and siblings beside them) on one PostgreSQL whose
        // connection limit is 100: keep each service's pool small.
        config.database_max_connections = 8;
        config.bus_url = url(Server::Nats)?;
        config.bus_subject_prefix = format!("{isolation}.");
        config.cache_url = url(Server::Redis)?;
        config.cache_key_prefix = format!("{isolation}:");
    }
    Some((config, data_dir))
}

impl TestMesh {
    /// The whole mesh (`--target all`) on `backend`.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, "all", |_| {}).await
    }

    /// `targets` on `backend`, after `adjust` has changed the configuration.
    pub async fn start_with(
        backend: Backend,
        targets: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        init_test_logs();
        let (mut config, data_dir) = test_config(backend, targets)?;
        adjust(&mut config);
        config
            .check_consistency()
            .expect("test configuration is consistent");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind public port");
        let admin = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind admin port");
        let internal = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind internal port");
        let shutdown = CancellationToken::new();
        let otp = CapturingOtpSender::default();
        let overrides = ::echo::Overrides {
            otp_sender: Some(Arc::new(otp.clone())),
        };
        let mesh = ::echo::Mesh::start_with(
            &config,
            listener,
            admin,
            Some(internal),
            shutdown.clone(),
            overrides,
        )
        .await
        .expect("mesh starts");
        Some(Self {
            mesh,
            config,
            otp,
            shutdown,
            _data_dir: data_dir,
        })
    }

    /// The public address.
    pub fn addr(&self) -> SocketAddr {
        self.mesh.addr
    }

    /// `http://` base URL of the admin port.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.mesh.admin_addr)
    }

    /// A lazily connecting channel to the public port.
    pub fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr()))
            .expect("valid endpoint")
            .connect_lazy()
    }

    /// A lazily connecting channel to the internal port (internal contracts).
    pub fn internal_channel(&self) -> Channel {
        let addr = self
            .mesh
            .internal_addr
            .expect("the testkit gives every mesh an internal port");
        Endpoint::from_shared(format!("http://{addr}"))
            .expect("valid endpoint")
            .connect_lazy()
    }

    /// A service token for `service`, signed with the mesh's service secret, as another Echo
    /// service would send it.
    pub fn service_token(&self, service: &str) -> String {
        self.mesh.service_tokens(service).bearer()
    }

    /// A channel to the internal port whose calls carry `token` (a service token, or anything
    /// a test wants refused).
    pub fn internal_authed(&self, token: &str) -> Authed {
        let value = format!("Bearer {token}").parse().expect("ascii token");
        InterceptedService::new(self.internal_channel(), Bearer(value))
    }

    /// The shutdown token (cancel it to start a graceful shutdown).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Shut down and wait until every port has stopped.
    pub async fn shutdown(self) {
        self.mesh.shutdown().await.expect("clean shutdown");
    }

    /// A channel whose calls carry `access_token`.
    pub fn authed(&self, access_token: &str) -> Authed {
        authed_on(&self.channel(), access_token)
    }

    /// An AuthService client acting as `user`.
    pub fn auth_as(
        &self,
        user: &SignedIn,
    ) -> echo::auth::v1::auth_service_client::AuthServiceClient<Authed> {
        echo::auth::v1::auth_service_client::AuthServiceClient::new(
            self.authed(&user.tokens.access_token),
        )
    }

    /// A UserService client acting as `user`.
    pub fn user_as(
        &self,
        user: &SignedIn,
    ) -> echo::user::v1::user_service_client::UserServiceClient<Authed> {
        echo::user::v1::user_service_client::UserServiceClient::new(
            self.authed(&user.tokens.access_token),
        )
    }

    /// A MessageService client acting as `user`.
    pub fn message_as(
        &self,
        user: &SignedIn,
    ) -> echo::message::v1::message_service_client::MessageServiceClient<Authed> {
        echo::message::v1::message_service_client::MessageServiceClient::new(
            self.authed(&user.tokens.access_token),
        )
    }

    /// A PresenceService client acting as `user`.
    pub fn presence_as(
        &self,
        user: &SignedIn,
    ) -> echo::presence::v1::presence_service_client::PresenceServiceClient<Authed> {
        echo::presence::v1::presence_service_client::PresenceServiceClient::new(
            self.authed(&user.tokens.access_token),
        )
    }

    /// A NotificationService client acting as `user`.
    pub fn notification_as(
        &self,
        user: &SignedIn,
    ) -> echo::notification::v1::notification_service_client::NotificationServiceClient<Authed>
    {
        echo::notification::v1::notification_service_client::NotificationServiceClient::new(
            self.authed(&user.tokens.access_token),
        )
    }

    /// The last code sent to `phone` for `purpose`, waiting briefly for it to arrive.
    pub async fn code_for(&self, phone: &str, purpose: OtpPurpose) -> String {
        for _ in 0..100 {
            if let Some(code) = self.otp.last_code(phone, purpose) {
                return code;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no {purpose:?} code was sent to {phone}");
    }

    /// Register and verify a new account through the API; returns its tokens.
    pub async fn sign_up(&self) -> SignedIn {
        let phone = phone_number();
        let register = RegisterRequest {
            phone_number: phone.clone(),
            password: PASSWORD.into(),
            display_name: format!("Test {}", &phone[phone.len() - 4..]),
        };
        self.auth().register(register).await.expect("register");
        let code = self.code_for(&phone, OtpPurpose::Register).await;
        let verify = VerifyPhoneRequest {
            phone_number: phone.clone(),
            code,
            device: Some(test_device()),
        };
        let tokens = self
            .auth()
            .verify_phone(verify)
            .await
            .expect("verify")
            .into_inner()
            .tokens;
        SignedIn {
            phone,
            tokens: tokens.expect("tokens"),
        }
    }

    /// A valid access token for `user_id` on a new session, signed with the mesh's key as auth
    /// would sign it, without any account behind it: for a user that services have not heard
    /// of yet (their registration event not applied).
    pub fn mint_token(&self, user_id: uuid::Uuid) -> String {
        let key = echo_authn::SigningKey::load_or_generate(&self.config.data_dir)
            .expect("the mesh's development signing key");
        let issuer = echo_authn::TokenIssuer::new(&key, self.config.auth.jwt_issuer.clone())
            .expect("issuer");
        let (token, _) = issuer
            .issue(
                user_id,
                uuid::Uuid::now_v7(),
                uuid::Uuid::now_v7(),
                std::time::Duration::from_secs(300),
            )
            .expect("token");
        token
    }

    /// An AuthService client.
    pub fn auth(&self) -> echo::auth::v1::auth_service_client::AuthServiceClient<Channel> {
        echo::auth::v1::auth_service_client::AuthServiceClient::new(self.channel())
    }

    /// A UserService client.
    pub fn user(&self) -> echo::user::v1::user_service_client::UserServiceClient<Channel> {
        echo::user::v1::user_service_client::UserServiceClient::new(self.channel())
    }

    /// A MessageService client.
    pub fn message(
        &self,
    ) -> echo::message::v1::message_service_client::MessageServiceClient<Channel> {
        echo::message::v1::message_service_client::MessageServiceClient::new(self.channel())
    }

    /// A PresenceService client.
    pub fn presence(
        &self,
    ) -> echo::presence::v1::presence_service_client::PresenceServiceClient<Channel> {
        echo::presence::v1::presence_service_client::PresenceServiceClient::new(self.channel())
    }

    /// A NotificationService client.
    pub fn notification(
        &self,
    ) -> echo::notification::v1::notification_service_client::NotificationServiceClient<Channel>
    {
        echo::notification::v1::notification_service_client::NotificationServiceClient::new(
            self.channel(),
        )
    }
}

/// The device every test signs in on.
pub fn test_device() -> DeviceInfo {
    DeviceInfo {
        name: "test device".into(),
        platform: DevicePlatform::Other as i32,
        app_version: "1.0.0".into(),
    }
}
