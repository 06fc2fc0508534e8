//! Spawn Echo in-process for tests (DESIGN §12): any targets, on 127.0.0.1:0, on the embedded
//! backends or on the shared Postgres + NATS + Redis with a schema, subject prefix and key
//! prefix of the test's own. Hands back typed gRPC clients (`clients`) and signed-in test
//! users (`users`).
//!
//! Tests that need the real servers get `None` from [`TestMesh::start`] (after a loud skip
//! notice) when those are absent, unless `ECHO_REQUIRE_SERVICES=1` makes that a failure.

mod clients;
pub mod push;
mod sibling;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use echo_config::{Config, Targets};
use echo_testenv::{Server, unique_name, url};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use clients::{Authed, Bearer, authed_on};
pub use echo_auth::{CapturingOtpSender, OtpPurpose};
pub use echo_testenv as env;
pub use users::{PASSWORD, SignedIn, phone_number, test_device};

/// The operator token every test mesh accepts on its admin API (docs/admin.md): published, so
/// production refuses it (`echo_config::DEVELOPMENT_OPERATOR_TOKEN_SHA256` is its SHA-256).
pub const OPERATOR_TOKEN: &str =
    "ZWNoby1kZXZlbG9wbWVudC1vcGVyYXRvci10b2tlbi1ub3QtZm9yLXByb2R1Y3Rpb24";
/// The name the test operator token is listed under (and written to the audit log as).
pub const OPERATOR_NAME: &str = "test-operator";

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
    // Every test mesh lets the test operator into its admin API.
    let operators = data_dir.path().join("operators");
    let line = format!(
        "{OPERATOR_NAME} {}\n",
        echo_config::DEVELOPMENT_OPERATOR_TOKEN_SHA256
    );
    std::fs::write(&operators, line).expect("write the operator token file");
    config.admin.operator_tokens_file = Some(operators);
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

    /// A service token for `service`, signed with the mesh's service secret, as another Echo
    /// service would send it.
    pub fn service_token(&self, service: &str) -> String {
        self.mesh.service_tokens(service).bearer()
    }

    /// The shutdown token (cancel it to start a graceful shutdown).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Shut down and wait until every port has stopped.
    pub async fn shutdown(self) {
        self.mesh.shutdown().await.expect("clean shutdown");
    }
}
