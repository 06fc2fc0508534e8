//! Start the targets of one process on shared backends.

use std::sync::Arc;

use anyhow::Context as _;
use echo_bus::{EventBus, NatsSettings, Outbox};
use echo_cache::Cache;
use echo_config::{Config, Target};
use echo_runtime::{Running, ServeOptions, Services};
use echo_store::Database;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Services that keep data, and so have a database, an outbox and migrations.
const DATA_OWNERS: [Target; 4] = [
    Target::Auth,
    Target::User,
    Target::Message,
    Target::Notification,
];

/// The shared backends of one process.
#[derive(Clone)]
pub struct Backends {
    /// The event bus (NATS JetStream or the embedded outbox).
    pub bus: Arc<dyn EventBus>,
    /// The cache (Redis or in-memory).
    pub cache: Arc<dyn Cache>,
}

impl Backends {
    /// Connect the bus and cache named in `config`.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let settings = NatsSettings {
            subject_prefix: config.bus_subject_prefix.clone(),
            max_age: config.bus_max_age,
            duplicate_window: config.bus_duplicate_window,
        };
        let bus = echo_bus::connect(&config.bus_url, settings)
            .await
            .with_context(|| format!("bus {}", echo_config::redact_url(&config.bus_url)))?;
        let cache = echo_cache::connect(&config.cache_url, &config.cache_key_prefix)
            .await
            .with_context(|| format!("cache {}", echo_config::redact_url(&config.cache_url)))?;
        Ok(Self { bus, cache })
    }
}

/// A running process: the public port, the admin port and the backends.
pub struct Mesh {
    /// The public gRPC + grpc-web address.
    pub addr: std::net::SocketAddr,
    /// The admin address (`/metrics`, `/healthz`, `/readyz`).
    pub admin_addr: std::net::SocketAddr,
    /// The backends, for tests that look behind the API.
    pub backends: Backends,
    /// Each data-owning service's database, by target.
    pub databases: Vec<(Target, Database)>,
    shutdown: CancellationToken,
    public: Running,
    admin: JoinHandle<std::io::Result<()>>,
}

impl Mesh {
    /// Start `config.target` on the given listeners; stops when `shutdown` is cancelled.
    pub async fn start(
        config: &Config,
        listener: TcpListener,
        admin_listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let backends = Backends::connect(config).await?;
        let mut services = Services::new();
        let mut databases = Vec::new();
        for target in config.target.iter() {
            if DATA_OWNERS.contains(&target) {
                let db = open_database(config, target).await?;
                backends
                    .bus
                    .attach_outbox(Outbox::new(target.name(), db.clone()))
                    .await?;
                services.ready_with(db.clone());
                databases.push((target, db));
            }
            add_service(&mut services, target, config.max_request_bytes);
        }
        if config.target.contains(Target::Edge) && !config.target.is_whole_mesh() {
            anyhow::bail!(
                "the edge forwards to services in other processes only from the Auth issue on; \
                 run --target all, or run the service targets directly"
            );
        }
        let admin_addr = admin_listener.local_addr()?;
        let options = ServeOptions::from_config(config);
        let (public, readiness) =
            echo_runtime::serve(listener, services, &options, shutdown.clone()).await?;
        let admin = tokio::spawn(echo_runtime::admin::serve(
            admin_listener,
            readiness.watch(),
            shutdown.clone(),
        ));
        tracing::info!(
            targets = %config.target,
            listen = %public.addr,
            admin = %admin_addr,
            database = %echo_config::redact_url(&config.database_url()),
            bus = %echo_config::redact_url(&config.bus_url),
            cache = %echo_config::redact_url(&config.cache_url),
            "echo started"
        );
        Ok(Self {
            addr: public.addr,
            admin_addr,
            backends,
            databases,
            shutdown,
            public,
            admin,
        })
    }

    /// Cancel and wait until both ports have stopped (streams ended, calls drained).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Wait until the shutdown token (cancelled elsewhere, e.g. by a signal) has stopped both
    /// ports.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.public.stopped().await.context("public port")?;
        self.admin
            .await
            .context("admin port")?
            .context("admin port")?;
        self.backends.bus.shutdown();
        for (_, db) in &self.databases {
            db.close().await;
        }
        Ok(())
    }
}

fn add_service(services: &mut Services, target: Target, max_request_bytes: usize) {
    match target {
        Target::Auth => services.add(echo_auth::service(max_request_bytes)),
        Target::User => services.add(echo_user::service(max_request_bytes)),
        Target::Message => services.add(echo_message::service(max_request_bytes)),
        Target::Presence => services.add(echo_presence::service(max_request_bytes)),
        Target::Notification => services.add(echo_notification::service(max_request_bytes)),
        Target::Edge => services,
    };
}

async fn open_database(config: &Config, target: Target) -> anyhow::Result<Database> {
    let url = config.database_url();
    let db = Database::connect(&url, target.name(), &config.database_schema_prefix)
        .await
        .with_context(|| format!("{target} database at {}", echo_config::redact_url(&url)))?;
    db.migrate(&echo_bus::migrations())
        .await
        .with_context(|| format!("{target} migrations"))?;
    Ok(db)
}

/// `echo migrate`: apply every configured data-owning service's migrations, then return.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    for target in config.target.iter().filter(|t| DATA_OWNERS.contains(t)) {
        let db = open_database(config, target).await?;
        db.close().await;
        tracing::info!(%target, "migrations applied");
    }
    Ok(())
}
