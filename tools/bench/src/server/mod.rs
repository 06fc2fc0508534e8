//! The Echo under load: started in this process (the testkit's mesh), started as a child
//! process, or a running one at `--target`. Whatever it is, the bench needs the same four
//! things from it: an address, the OTP codes it sends (to sign users up through the API),
//! tokens for idle streams, and a process whose memory it can read.

mod child;
mod isolation;
mod otp;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use echo_authn::{SigningKey, TokenIssuer};
use echo_testkit::{Backend, CapturingOtpSender, OtpPurpose, TestMesh};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use uuid::Uuid;

use crate::cli::{BackendKind, Global, ServerKind};
use crate::report::Setup;

pub use child::memory_kib;

/// Where the Echo under load runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Started in this process.
    InProcess,
    /// Started as a child process.
    Child,
    /// Already running at this URL.
    Target(String),
}

/// How to get an Echo for one scenario.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Backends of an Echo the bench starts.
    pub backend: BackendKind,
    /// Where it runs.
    pub placement: Placement,
    /// The binary for a child.
    pub echo_bin: PathBuf,
    /// Where a target posts OTP codes.
    pub otp_webhook: std::net::SocketAddr,
    /// A target's signing key file.
    pub signing_key: Option<PathBuf>,
    /// A target's token issuer.
    pub jwt_issuer: Option<String>,
    /// A target's process id.
    pub server_pid: Option<u32>,
    /// Settings of an Echo the bench starts (`--send-*`); a target keeps its own.
    pub tuning: crate::tuning::ServerTuning,
}

impl ServerSpec {
    /// The spec the flags describe; `preferred` is where the scenario would rather have its
    /// server when the flags leave it open.
    pub fn from_flags(global: &Global, preferred: ServerKind) -> Self {
        let placement = match (&global.target, global.server.unwrap_or(preferred)) {
            (Some(url), _) => Placement::Target(url.clone()),
            (None, ServerKind::InProcess) => Placement::InProcess,
            (None, ServerKind::Child) => Placement::Child,
        };
        Self {
            backend: global.backend,
            placement,
            echo_bin: global.echo_bin.clone(),
            otp_webhook: global.otp_webhook,
            signing_key: global.signing_key.clone(),
            jwt_issuer: global.jwt_issuer.clone(),
            server_pid: global.server_pid,
            tuning: global.tuning(),
        }
    }

    /// How reports name this setup.
    pub fn setup(&self) -> Setup {
        match &self.placement {
            Placement::InProcess => Setup {
                backend: self.backend.name().into(),
                server: "in-process".into(),
            },
            Placement::Child => Setup {
                backend: self.backend.name().into(),
                server: "child".into(),
            },
            Placement::Target(url) => Setup {
                backend: url.clone(),
                server: "target".into(),
            },
        }
    }
}

/// A running Echo to load.
pub struct Echo {
    /// `http://host:port` of its public port.
    pub endpoint: String,
    /// `http://host:port` of its admin port (`/metrics`), when the bench started it.
    pub admin: Option<String>,
    codes: Codes,
    minter: Option<TokenIssuer>,
    pid: Option<u32>,
    running: Running,
}

enum Running {
    InProcess(InProcess),
    Child(Box<child::ChildEcho>),
    Target,
}

/// An in-process mesh and, on the real backends, the [`Isolation`](isolation::Isolation) its
/// schemas, streams and keys live under (the `bench_*` names a child gets, so the sweep of
/// killed benches takes them too). Dropped unstopped (an error, a signal ending the scenario),
/// it drops the isolation on the way.
struct InProcess {
    mesh: Option<Box<TestMesh>>,
    isolation: Option<isolation::Isolation>,
}

impl InProcess {
    /// Shut the mesh down, then drop its isolation whatever the shutdown gave.
    async fn stop(mut self) -> anyhow::Result<()> {
        let stopped = match self.mesh.take() {
            Some(mesh) => mesh.mesh.shutdown().await,
            None => Ok(()),
        };
        if let Some(isolation) = self.isolation.take() {
            isolation.drop_all().await;
        }
        stopped
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // Without an await there is no shutdown here: the mesh's tasks may still run for a
        // moment, and their writes into the dropped names fail. The bench is ending.
        drop(self.mesh.take());
        if let Some(isolation) = self.isolation.take() {
            isolation.drop_all_blocking();
        }
    }
}

/// Where the codes of sign-ups arrive.
enum Codes {
    Captured(CapturingOtpSender),
    Webhook(otp::Webhook),
}

impl Echo {
    /// Start (or reach) the Echo of `spec` and wait until it reports SERVING.
    pub async fn start(spec: &ServerSpec) -> anyhow::Result<Self> {
        let echo = match &spec.placement {
            Placement::InProcess => Self::in_process(spec.backend, &spec.tuning).await?,
            Placement::Child => Self::child(spec).await?,
            Placement::Target(url) => Self::target(spec, url).await?,
        };
        if let Err(error) = echo.wait_until_serving().await {
            let _ = echo.stop().await;
            return Err(error);
        }
        Ok(echo)
    }

    async fn in_process(
        backend: BackendKind,
        tuning: &crate::tuning::ServerTuning,
    ) -> anyhow::Result<Self> {
        let (backend, isolation) = match backend {
            BackendKind::Embedded => (Backend::Embedded, None),
            BackendKind::Real => (Backend::Real, Some(isolation::Isolation::create().await?)),
        };
        let mesh = TestMesh::start_with(backend, "all", |config| {
            if let Some(isolation) = &isolation {
                isolation.apply(config);
            }
            tuning.apply(config);
        })
        .await;
        let running = InProcess {
            mesh: mesh.map(Box::new),
            isolation,
        };
        let Some(mesh) = running.mesh.as_deref() else {
            bail!(
                "the real backends are not reachable (PostgreSQL 127.0.0.1:5432, NATS :4222, \
                 Redis :6379; `just services` starts them)"
            );
        };
        let key = SigningKey::load_or_generate(&mesh.config.data_dir)
            .context("the in-process mesh's development signing key")?;
        let minter = TokenIssuer::new(&key, mesh.config.auth.jwt_issuer.clone())?;
        Ok(Self {
            endpoint: format!("http://{}", mesh.addr()),
            admin: Some(mesh.admin_url()),
            codes: Codes::Captured(mesh.otp.clone()),
            minter: Some(minter),
            pid: Some(std::process::id()),
            running: Running::InProcess(running),
        })
    }

    async fn child(spec: &ServerSpec) -> anyhow::Result<Self> {
        let webhook = otp::Webhook::start("127.0.0.1:0".parse()?).await?;
        let key = SigningKey::generate()?;
        let issuer = echo_config::Config::default().auth.jwt_issuer;
        let minter = TokenIssuer::new(&key, issuer)?;
        let pem = key.to_pkcs8_pem()?.to_string();
        let child = child::ChildEcho::start(spec, &webhook.url(), &pem).await?;
        Ok(Self {
            endpoint: format!("http://{}", child.addr),
            admin: Some(format!("http://{}", child.admin)),
            codes: Codes::Webhook(webhook),
            minter: Some(minter),
            pid: Some(child.pid),
            running: Running::Child(Box::new(child)),
        })
    }

    async fn target(spec: &ServerSpec, url: &str) -> anyhow::Result<Self> {
        let webhook = otp::Webhook::start(spec.otp_webhook).await?;
        let minter = match &spec.signing_key {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("signing key {}", path.display()))?;
                let key = SigningKey::from_pkcs8_pem(&pem)?;
                let issuer = spec
                    .jwt_issuer
                    .clone()
                    .unwrap_or_else(|| echo_config::Config::default().auth.jwt_issuer);
                Some(TokenIssuer::new(&key, issuer)?)
            }
            None => None,
        };
        Ok(Self {
            endpoint: url.trim_end_matches('/').to_owned(),
            admin: None,
            codes: Codes::Webhook(webhook),
            minter,
            pid: spec.server_pid,
            running: Running::Target,
        })
    }

    async fn wait_until_serving(&self) -> anyhow::Result<()> {
        let channel =
            tonic::transport::Endpoint::from_shared(self.endpoint.clone())?.connect_lazy();
        let mut health = HealthClient::new(channel);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let check = health.check(HealthCheckRequest::default()).await;
            if let Ok(answer) = &check
                && answer.get_ref().status == ServingStatus::Serving as i32
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{} never reported SERVING: {check:?}", self.endpoint);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The code the server sent to `phone` (any purpose), waiting up to `within` for it.
    pub async fn code_for(&self, phone: &str, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let code = match &self.codes {
                Codes::Captured(sent) => sent.last_code(phone, OtpPurpose::Register),
                Codes::Webhook(webhook) => webhook.code(phone),
            };
            if code.is_some() || tokio::time::Instant::now() > deadline {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// An access token for `user` on a new session and device, signed as auth signs them:
    /// for idle streams, which need no account behind them.
    pub fn mint_token(&self, user: Uuid) -> anyhow::Result<String> {
        let Some(minter) = &self.minter else {
            bail!("minting tokens for a --target needs --signing-key (its JWT signing key)");
        };
        let (token, _) = minter.issue(
            user,
            Uuid::now_v7(),
            Uuid::now_v7(),
            Duration::from_secs(3600),
        )?;
        Ok(token)
    }

    /// The server process's resident memory, if the bench knows its process.
    pub fn memory_kib(&self) -> Option<u64> {
        self.pid.and_then(memory_kib)
    }

    /// The server process's id, if the bench knows it.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether the server shares this process (its memory then includes the load's).
    pub fn is_in_process(&self) -> bool {
        matches!(self.running, Running::InProcess(_))
    }

    /// Stop what the bench started (a target keeps running).
    pub async fn stop(self) -> anyhow::Result<()> {
        if let Codes::Webhook(webhook) = self.codes {
            webhook.stop().await;
        }
        match self.running {
            Running::InProcess(running) => running.stop().await,
            Running::Child(child) => child.stop().await,
            Running::Target => Ok(()),
        }
    }
}
