//! Start the targets of one process on shared backends.
//!
//! One piece: the process's whole lifetime in one order. `start_with` opens each target's database
//! (migrations, outbox pruning), consumers and background tasks, then the ports, and `wait` closes
//! them in reverse (tasks before databases); beside it sit the per-target lists and matches
//! (`DATA_OWNERS`, `INTERNAL_SERVERS`, `add_service`, `service_migrations`). Split, a target or a
//! resource added on one side could be missed on the other.

use std::sync::Arc;

use anyhow::Context as _;
use echo_auth::OtpSender;
use echo_authn::{ServiceSecret, ServiceTokens};
use echo_bus::consumer::EventHandler;
use echo_bus::{ConsumerSpec, EventBus, NatsSettings, Outbox};
use echo_cache::Cache;
use echo_config::{Config, Target, Targets};
use echo_runtime::{Running, ServeOptions, Services};
use echo_store::Database;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Layer as _;

use crate::identity::Identity;

/// Services that keep data, and so have a database, an outbox and migrations.
const DATA_OWNERS: [Target; 5] = [
    Target::Auth,
    Target::User,
    Target::Message,
    Target::Presence,
    Target::Notification,
];

/// Services that serve internal contracts (`*InternalService`) on the internal port.
const INTERNAL_SERVERS: [Target; 2] = [Target::Message, Target::Presence];

/// Whether `targets` serve an internal contract, and so need the internal listener.
pub fn serves_internal_contracts(targets: &Targets) -> bool {
    INTERNAL_SERVERS.iter().any(|t| targets.contains(*t))
}

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
        let ca_file = config.cache_tls_ca_file.as_deref();
        let cache =
            echo_cache::connect_with_ca(&config.cache_url, &config.cache_key_prefix, ca_file)
                .await
                .with_context(|| format!("cache {}", echo_config::redact_url(&config.cache_url)))?;
        if !config.cache_url.starts_with("memory:") {
            // rediss:// connects over TLS or not at all.
            let tls = config.cache_url.starts_with("rediss://");
            log_link("cache", None, tls, config);
        }
        Ok(Self { bus, cache })
    }
}

/// Replacements for parts a test wants to observe (production uses none).
#[derive(Clone, Default)]
pub struct Overrides {
    /// Where OTP codes go instead of the configured sender.
    pub otp_sender: Option<Arc<dyn OtpSender>>,
}

/// A running process: the public port, the admin port, the internal port and the backends.
pub struct Mesh {
    /// The public gRPC + grpc-web address.
    pub addr: std::net::SocketAddr,
    /// The admin address (`/metrics`, `/healthz`, `/readyz`).
    pub admin_addr: std::net::SocketAddr,
    /// The internal address (internal contracts, service credential only), when this process
    /// was given an internal listener.
    pub internal_addr: Option<std::net::SocketAddr>,
    /// The backends, for tests that look behind the API.
    pub backends: Backends,
    /// Each data-owning service's database, by target.
    pub databases: Vec<(Target, Database)>,
    /// The presence instance, when this process runs presence (tests look behind its API).
    pub presence: Option<echo_presence::Presence>,
    shutdown: CancellationToken,
    public: Running,
    internal: Option<Running>,
    admin: JoinHandle<std::io::Result<()>>,
    consumers: Vec<JoinHandle<()>>,
    /// The services' background work on their databases (notification's dispatcher and
    /// workers), joined before the databases close.
    tasks: TaskTracker,
    service_secret: ServiceSecret,
}

impl Mesh {
    /// Start `config.target` on the given listeners; stops when `shutdown` is cancelled. The
    /// internal listener is required when the targets serve an internal contract
    /// ([`serves_internal_contracts`]); given otherwise, it serves health alone.
    pub async fn start(
        config: &Config,
        listener: TcpListener,
        admin_listener: TcpListener,
        internal_listener: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        Self::start_with(
            config,
            listener,
            admin_listener,
            internal_listener,
            shutdown,
            Overrides::default(),
        )
        .await
    }

    /// [`Mesh::start`] with parts replaced (tests).
    pub async fn start_with(
        config: &Config,
        listener: TcpListener,
        admin_listener: TcpListener,
        internal_listener: Option<TcpListener>,
        shutdown: CancellationToken,
        overrides: Overrides,
    ) -> anyhow::Result<Self> {
        if internal_listener.is_none() && serves_internal_contracts(&config.target) {
            anyhow::bail!(
                "targets `{}` serve internal contracts but no internal listener was given",
                config.target
            );
        }
        let internal_addr = match &internal_listener {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let backends = Backends::connect(config).await?;
        let identity = Identity::load(config, backends.cache.clone(), &shutdown).await?;
        let mut services = Services::new();
        if config.public.serves_web_app(config.is_production()) {
            services.web_app();
        }
        let mut internal = Services::internal();
        let mut databases = Vec::new();
        let mut consumers = Vec::new();
        let mut presence = None;
        // The operators' API, on the admin port of the process that runs auth (docs/admin.md).
        let mut admin_routes = None;
        let tasks = TaskTracker::new();
        for target in config.target.iter() {
            let mut outbox = None;
            if DATA_OWNERS.contains(&target) {
                let db = open_database(config, target).await?;
                let service_outbox = Outbox::new(target.name(), db.clone());
                backends.bus.attach_outbox(service_outbox.clone()).await?;
                // Embedded, the outbox is the bus and keeps every row for `bus_max_age`; with
                // NATS it keeps published rows that long, for replays (Subscribe resumes).
                tasks.spawn(echo_bus::prune_periodically(
                    service_outbox.clone(),
                    config.bus_max_age,
                    !config.bus_url.starts_with("memory:"),
                    config.bus_prune_every,
                    shutdown.clone(),
                ));
                services.ready_with(db.clone());
                internal.ready_with(db.clone());
                databases.push((target, db));
                outbox = Some(service_outbox);
            }
            let parts = Parts {
                config,
                internal_addr,
                backends: &backends,
                identity: &identity,
                overrides: &overrides,
                shutdown: &shutdown,
                tasks: &tasks,
            };
            let started = add_service(
                &mut services,
                &mut internal,
                &mut consumers,
                &mut admin_routes,
                target,
                outbox,
                &parts,
            )
            .await?;
            presence = presence.or(started);
        }
        if config.target.contains(Target::Edge) && !config.target.is_whole_mesh() {
            // Split mode: everything not served here is forwarded, after the edge's own check
            // and limits (per IP before authentication, per user after; docs/edge.md).
            let forwarder = echo_edge::Forwarder::from_upstreams_with(
                &config.upstreams,
                &config.target,
                forward_options(config),
            )?;
            forwarder.resolve().await;
            let limits = echo_edge::EdgeLimits::new(&config.edge, config.trusted_proxies.clone());
            let names: Vec<_> = forwarder.service_names().collect();
            for name in names {
                let user_side = limits.per_user().layer(forwarder.clone());
                let service = limits.per_ip().layer(identity.layer().layer(user_side));
                services.forward(name, service);
            }
        }
        let consumers = consumers
            .into_iter()
            .map(|consumer: Consumer| {
                tokio::spawn(echo_bus::consumer::run(
                    backends.bus.clone(),
                    consumer.db,
                    consumer.spec,
                    consumer.handler,
                    shutdown.clone(),
                ))
            })
            .collect();
        let admin_addr = admin_listener.local_addr()?;
        let options = ServeOptions::from_config(config);
        let (public, readiness) =
            echo_runtime::serve(listener, services, &options, shutdown.clone()).await?;
        let internal = match internal_listener {
            Some(listener) => {
                let serving = echo_runtime::serve(listener, internal, &options, shutdown.clone());
                Some(serving.await?.0)
            }
            None => None,
        };
        let admin = tokio::spawn(echo_runtime::admin::serve_with(
            admin_listener,
            readiness.watch(),
            admin_routes,
            shutdown.clone(),
        ));
        tracing::info!(
            targets = %config.target,
            listen = %public.addr,
            admin = %admin_addr,
            internal = %internal.as_ref().map_or("none".into(), |r| r.addr.to_string()),
            database = %echo_config::redact_url(&config.database_url()),
            bus = %echo_config::redact_url(&config.bus_url),
            cache = %echo_config::redact_url(&config.cache_url),
            "echo started"
        );
        Ok(Self {
            addr: public.addr,
            admin_addr,
            internal_addr: internal.as_ref().map(|running| running.addr),
            backends,
            databases,
            presence,
            shutdown,
            public,
            internal,
            admin,
            consumers,
            tasks,
            service_secret: identity.service_secret.clone(),
        })
    }

    /// Service tokens for `service`, signed with this process's service secret: what another
    /// Echo service attaches to its internal calls (tests call internal contracts with it).
    pub fn service_tokens(&self, service: &str) -> ServiceTokens {
        ServiceTokens::new(&self.service_secret, service)
    }

    /// Cancel and wait until every port has stopped (streams ended, calls drained).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Wait until the shutdown token (cancelled elsewhere, e.g. by a signal) has stopped every
    /// port.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.public.stopped().await.context("public port")?;
        if let Some(internal) = self.internal {
            internal.stopped().await.context("internal port")?;
        }
        self.admin
            .await
            .context("admin port")?
            .context("admin port")?;
        for consumer in self.consumers {
            consumer.await.context("event consumer")?;
        }
        // A dispatcher finishing its in-flight pushes records them before the pools close.
        self.tasks.close();
        self.tasks.wait().await;
        self.backends.bus.shutdown();
        for (_, db) in &self.databases {
            db.close().await;
        }
        Ok(())
    }
}

/// How the edge reaches its upstreams: `edge.*` timings, and a body cap of one
/// `max_request_bytes` message with its 5-byte gRPC frame header.
fn forward_options(config: &Config) -> echo_edge::ForwardOptions {
    echo_edge::ForwardOptions {
        resolve_every: config.edge.resolve_every,
        down_for: config.edge.down_for,
        max_request_body: config.max_request_bytes.saturating_add(5),
        ..echo_edge::ForwardOptions::default()
    }
}

/// What building a service may draw on.
struct Parts<'a> {
    config: &'a Config,
    /// This process's internal port, when it has one.
    internal_addr: Option<std::net::SocketAddr>,
    backends: &'a Backends,
    identity: &'a Identity,
    overrides: &'a Overrides,
    shutdown: &'a CancellationToken,
    /// Where services spawn background work that must end before the databases close.
    tasks: &'a TaskTracker,
}

/// A durable event consumer of one service, on that service's database.
struct Consumer {
    spec: ConsumerSpec,
    handler: Arc<dyn EventHandler>,
    db: Database,
}

impl Consumer {
    /// A service's consumers, on its database.
    fn all(
        consumers: Vec<(ConsumerSpec, Arc<dyn EventHandler>)>,
        db: &Database,
    ) -> impl Iterator<Item = Consumer> + '_ {
        consumers.into_iter().map(|(spec, handler)| Consumer {
            spec,
            handler,
            db: db.clone(),
        })
    }
}

/// Add `target`'s server, behind the authentication layer (every service verifies tokens
/// itself; the edge's check in split mode is in addition, not instead), and its internal
/// contract to the internal port's services, behind the service credential; collect the
/// event consumers it runs; auth adds the operators' AdminService to `admin` (the admin port's
/// gRPC routes). Returns the presence instance when `target` is presence.
async fn add_service(
    services: &mut Services,
    internal: &mut Services,
    consumers: &mut Vec<Consumer>,
    admin: &mut Option<tonic::service::Routes>,
    target: Target,
    outbox: Option<Outbox>,
    parts: &Parts<'_>,
) -> anyhow::Result<Option<echo_presence::Presence>> {
    let limit = parts.config.max_request_bytes;
    let authn = parts.identity.layer();
    match target {
        Target::Auth => {
            let outbox = outbox.context("auth keeps data")?;
            let auth = echo_auth::Auth::start(auth_deps(outbox, parts)?)?;
            services.add(authn.layer(auth.service(limit)));
            let operators = operators(parts.config)?;
            let admin_api = auth.admin(operators, admin_messages(parts)?).service(limit);
            *admin = Some(echo_runtime::admin::grpc_routes(admin_api));
        }
        Target::User => {
            let outbox = outbox.context("user keeps data")?;
            let db = outbox.database().clone();
            let user = echo_user::User::start(echo_user::UserDeps {
                outbox,
                cache: parts.backends.cache.clone(),
            });
            consumers.extend(Consumer::all(user.consumers(), &db));
            services.add(authn.layer(user.service(limit)));
        }
        Target::Message => {
            let outbox = outbox.context("message keeps data")?;
            let db = outbox.database().clone();
            let deps = echo_message::MessageDeps {
                outbox,
                bus: parts.backends.bus.clone(),
                cache: parts.backends.cache.clone(),
                revocations: Some(parts.identity.revocations.clone()),
                live: parts.config.live.clone(),
                send: parts.config.send.clone(),
                retention: parts.config.retention.clone(),
            };
            let message = echo_message::Message::start(deps, parts.shutdown.clone())
                .await
                .context("live delivery")?;
            consumers.extend(Consumer::all(message.consumers(), &db));
            let credential = parts.identity.service_layer();
            internal.add(credential.layer(message.internal_service(limit)));
            services.add(authn.layer(message.service(limit)));
        }
        Target::Presence => {
            let outbox = outbox.context("presence keeps data")?;
            let db = outbox.database().clone();
            let config = parts.config;
            let state = echo_presence::state::connect(
                &config.cache_url,
                &config.cache_key_prefix,
                config.cache_tls_ca_file.as_deref(),
            )
            .await
            .context("presence state")?;
            let deps = echo_presence::PresenceDeps {
                state,
                store: echo_presence::PresenceStore::new(db.clone()),
                bus: parts.backends.bus.clone(),
                cache: parts.backends.cache.clone(),
                revocations: Some(parts.identity.revocations.clone()),
                settings: config.presence.clone(),
            };
            let presence = echo_presence::Presence::start(deps, parts.shutdown.clone());
            consumers.extend(Consumer::all(presence.consumers(), &db));
            services.add(authn.layer(presence.service(limit)));
            let credential = parts.identity.service_layer();
            internal.add(credential.layer(presence.internal_service(limit)));
            return Ok(Some(presence));
        }
        Target::Notification => {
            let outbox = outbox.context("notification keeps data")?;
            let db = outbox.database().clone();
            let config = parts.config;
            let deps = echo_notification::NotificationDeps {
                store: echo_notification::NotificationStore::new(db.clone()),
                bus: parts.backends.bus.clone(),
                cache: parts.backends.cache.clone(),
                providers: crate::push::providers(&config.notification, config.is_production())?,
                production: config.is_production(),
                upstream: Arc::new(notification_upstream(parts)?),
                settings: config.notification.clone(),
            };
            let notification =
                echo_notification::Notification::start(deps, parts.shutdown.clone(), parts.tasks);
            consumers.extend(Consumer::all(notification.consumers(), &db));
            services.add(authn.layer(notification.service(limit)));
        }
        Target::Edge => {}
    }
    Ok(None)
}

/// Notification's clients of the internal contracts it reads: the services in this process
/// through its own internal port, the others at their configured internal URLs.
fn notification_upstream(
    parts: &Parts<'_>,
) -> anyhow::Result<echo_notification::upstream::GrpcUpstream> {
    let config = parts.config;
    let local = parts.internal_addr.map(|addr| format!("http://{addr}"));
    let here = |target: Target| {
        config
            .target
            .contains(target)
            .then(|| local.clone())
            .flatten()
    };
    let message = here(Target::Message)
        .or_else(|| config.notification.message_internal_url.clone())
        .context(
            "notification needs MessageService's internal port: set \
             notification.message_internal_url (ECHO_NOTIFICATION__MESSAGE_INTERNAL_URL)",
        )?;
    let presence =
        here(Target::Presence).or_else(|| config.notification.presence_internal_url.clone());
    let tokens = ServiceTokens::new(&parts.identity.service_secret, "notification");
    Ok(echo_notification::upstream::GrpcUpstream::new(
        &message,
        presence.as_deref(),
        tokens,
    )?)
}

/// The admin API's client of MessageService's internal contract (the report queue, purges):
/// this process's own internal port when it runs message, else `admin.message_internal_url`;
/// without either, those RPCs answer UNAVAILABLE saying what to set.
fn admin_messages(parts: &Parts<'_>) -> anyhow::Result<Arc<dyn echo_auth::admin::MessageControl>> {
    let config = parts.config;
    let local = parts
        .internal_addr
        .filter(|_| config.target.contains(Target::Message))
        .map(|addr| format!("http://{addr}"));
    let Some(url) = local.or_else(|| config.admin.message_internal_url.clone()) else {
        tracing::info!(
            "no admin.message_internal_url: the admin API's report queue and purges answer \
             UNAVAILABLE"
        );
        return Ok(Arc::new(echo_auth::admin::NoMessages));
    };
    let tokens = ServiceTokens::new(&parts.identity.service_secret, "auth");
    Ok(Arc::new(echo_auth::admin::GrpcMessages::new(&url, tokens)?))
}

/// The operator credentials of `admin.operator_tokens_file` (none without one: every admin call
/// is then UNAUTHENTICATED). A malformed file refuses the start; `Config::check` has already
/// refused, in production, an empty one and the published development token.
fn operators(config: &Config) -> anyhow::Result<echo_auth::admin::Operators> {
    let tokens = config
        .admin
        .operator_tokens(false)
        .map_err(anyhow::Error::msg)?;
    if config.admin.operator_tokens_file.is_none() {
        tracing::info!("no admin.operator_tokens_file: the admin API refuses every call");
    }
    let operators = tokens
        .into_iter()
        .map(|token| echo_auth::admin::Operator {
            name: token.name,
            sha256: token.sha256,
        })
        .collect();
    Ok(echo_auth::admin::Operators::new(operators))
}

fn auth_deps(outbox: Outbox, parts: &Parts<'_>) -> anyhow::Result<echo_auth::AuthDeps> {
    let config = parts.config;
    let otp_sender: Arc<dyn OtpSender> =
        match (&parts.overrides.otp_sender, config.auth.otp_sender.as_str()) {
            (Some(sender), _) => sender.clone(),
            (None, "log") => Arc::new(echo_auth::LogOtpSender),
            (None, url) => {
                Arc::new(echo_auth::WebhookOtpSender::new(url).map_err(anyhow::Error::msg)?)
            }
        };
    let policy = echo_auth::Policy {
        access_ttl: config.auth.access_token_ttl,
        refresh_ttl: config.auth.refresh_token_ttl,
        refresh_grace: config.auth.refresh_retry_grace,
        ..echo_auth::Policy::default()
    };
    Ok(echo_auth::AuthDeps {
        outbox,
        cache: parts.backends.cache.clone(),
        keys: parts.identity.keys.clone(),
        issuer: config.auth.jwt_issuer.clone(),
        revocations: parts.identity.revocations.clone(),
        otp_sender,
        secret: parts.identity.secret.clone(),
        policy,
        trusted_proxies: config.trusted_proxies.clone(),
    })
}

async fn open_database(config: &Config, target: Target) -> anyhow::Result<Database> {
    let url = config.database_url();
    let db = Database::connect_sized(
        &url,
        target.name(),
        &config.database_schema_prefix,
        config.database_max_connections,
    )
    .await
    .with_context(|| format!("{target} database at {}", echo_config::redact_url(&url)))?;
    match db.uses_tls().await {
        Ok(Some(tls)) => log_link("database", Some(target), tls, config),
        Ok(None) => {}
        // Only a log line is at stake: never fail the start over it.
        Err(error) => {
            tracing::warn!(service = %target, %error, "cannot tell whether the database link is encrypted")
        }
    }
    db.migrate(&echo_bus::migrations())
        .await
        .with_context(|| format!("{target} migrations"))?;
    if let Some(migrations) = service_migrations(target) {
        db.migrate(&migrations)
            .await
            .with_context(|| format!("{target} migrations"))?;
    }
    Ok(db)
}

/// Says whether the link to a backend is encrypted; a plaintext one in production is a warning
/// (not a refusal: a private network or a sidecar may carry it).
fn log_link(backend: &'static str, service: Option<Target>, tls: bool, config: &Config) {
    let service = service.map(Target::name);
    if !tls && config.env == echo_config::Environment::Production {
        tracing::warn!(backend, service, tls, "backend link is not encrypted");
    } else {
        tracing::info!(backend, service, tls, "backend link");
    }
}

/// A service's own migrations (beside the bus tables every data owner has).
fn service_migrations(target: Target) -> Option<echo_store::Migrations> {
    match target {
        Target::Auth => Some(echo_auth::migrations()),
        Target::User => Some(echo_user::migrations()),
        Target::Message => Some(echo_message::migrations()),
        Target::Presence => Some(echo_presence::migrations()),
        Target::Notification => Some(echo_notification::migrations()),
        _ => None,
    }
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
