//! Echo's configuration: defaults < `echo.toml` (or `--config FILE`) < `ECHO_*` variables <
//! command-line flags. Unknown keys are errors, so a typo never silently keeps a default.
//! Secrets (passwords inside URLs, keys) are redacted whenever the config is printed.
//!
//! One piece: each top-level key appears here in the struct, in `Default` and, when it is a secret
//! or a cross-field rule, in `redacted` or the `check*` methods, beside `load`'s layering; the
//! sections (`auth`, `live`, `notification`, and so on) have their own modules. Split, a new secret
//! could be added to the struct in one file and left unredacted in another.

mod admin;
mod auth;
mod cli;
mod edge;
mod live;
mod notification;
mod presence;
mod proxies;
mod public_port;
mod retention;
mod sending;
mod target;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use admin::{AdminSettings, DEVELOPMENT_OPERATOR_TOKEN_SHA256, OperatorToken};
pub use auth::AuthSettings;
pub use cli::{Cli, Command};
pub use edge::EdgeSettings;
pub use live::LiveSettings;
pub use notification::NotificationSettings;
pub use presence::PresenceSettings;
pub use public_port::{MIN_HEADER_BYTES, PublicPortSettings};
pub use retention::{MAX_SWEEP_BATCH, MaxAge, RetentionSettings};
pub use sending::SendSettings;
pub use target::{Target, Targets};

/// The whole runtime configuration of one `echo` process.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Which targets this process runs (`all`, or a comma-separated list).
    pub target: Targets,
    /// The public port: gRPC, grpc-web and CORS.
    pub listen: SocketAddr,
    /// The admin port: `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: SocketAddr,
    /// The internal port: internal contracts (`*InternalService`) for Echo's own services,
    /// behind the service credential. Bound only by processes that serve one.
    pub internal_listen: SocketAddr,
    /// Where embedded state lives (SQLite files, generated development keys).
    pub data_dir: PathBuf,
    /// `sqlite://…` (embedded, the default under `data_dir`) or `postgres://…`.
    pub database_url: Option<String>,
    /// Prefix of each service's Postgres schema (`echo_` gives `echo_auth`, `echo_message`, …).
    pub database_schema_prefix: String,
    /// PostgreSQL connections each service's pool may hold in this process (at least 1).
    pub database_max_connections: u32,
    /// `memory://` (in-process, the outbox table is the bus) or `nats://…` (JetStream).
    pub bus_url: String,
    /// Prefix of every subject and stream name on the bus (isolates tenants and tests).
    pub bus_subject_prefix: String,
    /// How long JetStream keeps events (and the embedded outbox keeps published rows).
    #[serde(with = "humantime_secs")]
    pub bus_max_age: Duration,
    /// JetStream de-duplication window for `Nats-Msg-Id` (the outbox relay's retry horizon).
    #[serde(with = "humantime_secs")]
    pub bus_duplicate_window: Duration,
    /// How often each outbox drops rows older than `bus_max_age` (cursors behind them then get
    /// ResyncRequired / CURSOR_EXPIRED).
    #[serde(with = "humantime_secs")]
    pub bus_prune_every: Duration,
    /// `memory://` or `redis://…` (`rediss://…` for TLS).
    pub cache_url: String,
    /// A PEM bundle of the certificate authorities that verify the Redis server of a
    /// `rediss://` `cache_url` (e.g. a private CA); none trusts the system's root store. Only
    /// valid with `rediss://`.
    pub cache_tls_ca_file: Option<PathBuf>,
    /// Prefix of every cache key and channel.
    pub cache_key_prefix: String,
    /// `development` or `production`; production refuses development defaults.
    pub env: Environment,
    /// `json` (structured, the default) or `text` (for humans at a terminal).
    pub log_format: LogFormat,
    /// `tracing` filter directives, e.g. `info,echo_bus=debug`.
    pub log_filter: String,
    /// OTLP/gRPC endpoint for traces (e.g. `http://127.0.0.1:4317`); none disables export.
    pub otlp_endpoint: Option<String>,
    /// How long shutdown waits for streams and in-flight calls before closing connections.
    #[serde(with = "humantime_secs")]
    pub shutdown_grace: Duration,
    /// Largest accepted request message, in bytes (larger is RESOURCE_EXHAUSTED).
    pub max_request_bytes: usize,
    /// HTTP/2 keepalive ping interval; a peer that does not answer is disconnected.
    #[serde(with = "humantime_secs")]
    pub keepalive_interval: Duration,
    /// Origins allowed to call from browsers (grpc-web); `*` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// In split mode, where the edge forwards each target's RPCs: `http://host:port`, or
    /// several comma-separated, one per instance (a host name stands for every address it
    /// resolves to; see `edge`).
    pub upstreams: Upstreams,
    /// Peers (the edge, load balancers, an ingress's range) whose `x-forwarded-for` names the
    /// client's IP: CIDR ranges (`10.0.0.0/8`, `fd00::/8`) or bare addresses.
    #[serde(with = "proxies")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Identity settings: signing keys, token lifetimes, OTP (DESIGN §5).
    pub auth: AuthSettings,
    /// The secret every process of a deployment shares to sign and check service tokens
    /// (internal contracts, DESIGN §9); at least 32 bytes. Secret.
    pub service_secret: Option<String>,
    /// A file holding `service_secret` (e.g. a mounted Kubernetes Secret), read at load;
    /// surrounding whitespace is ignored. Setting both is an error.
    pub service_secret_file: Option<PathBuf>,
    /// Live delivery: Subscribe streams and typing (DESIGN §7).
    pub live: LiveSettings,
    /// Presence: heartbeats, entry lifetime, watch streams (DESIGN §9).
    pub presence: PresenceSettings,
    /// Notifications: push providers, internal contracts, delivery timing (DESIGN §9).
    pub notification: NotificationSettings,
    /// Group commit of SendMessage: queue bound and batch size.
    pub send: SendSettings,
    /// Retention of messages per kind of conversation, and the expiry sweep (docs/lifecycle.md).
    pub retention: RetentionSettings,
    /// The public port's defences: TLS (certificate reloaded on change), connection and
    /// stream caps, header size, handshake, idle and request timeouts.
    pub public: PublicPortSettings,
    /// The edge in split mode: upstream resolution, balancing, limits on forwarded calls.
    pub edge: EdgeSettings,
    /// The admin API on the admin port: operator credentials (docs/admin.md).
    pub admin: AdminSettings,
}

/// Secrets shorter than this refuse to start in production.
pub const MIN_SECRET_BYTES: usize = 32;

/// Upstream addresses the edge forwards to when a service runs in another process.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstreams {
    /// AuthService upstream; also where processes without the auth target fetch the
    /// token-signing public keys (GetSigningKeys) unless `auth.fetch_signing_keys` is false.
    pub auth: Option<String>,
    /// UserService upstream.
    pub user: Option<String>,
    /// MessageService upstream.
    pub message: Option<String>,
    /// PresenceService upstream.
    pub presence: Option<String>,
    /// NotificationService upstream.
    pub notification: Option<String>,
}

impl Upstreams {
    /// The upstream configured for `target`, if any.
    pub fn get(&self, target: Target) -> Option<&str> {
        match target {
            Target::Auth => self.auth.as_deref(),
            Target::User => self.user.as_deref(),
            Target::Message => self.message.as_deref(),
            Target::Presence => self.presence.as_deref(),
            Target::Notification => self.notification.as_deref(),
            Target::Edge => None,
        }
    }
}

/// The deployment mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local development: embedded defaults and generated keys are fine.
    #[default]
    Development,
    /// Production: weak secrets and development defaults refuse to start.
    Production,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            target: Targets::all(),
            listen: ([127, 0, 0, 1], 8080).into(),
            admin_listen: ([127, 0, 0, 1], 9090).into(),
            internal_listen: ([127, 0, 0, 1], 9091).into(),
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_schema_prefix: "echo_".into(),
            database_max_connections: 32,
            bus_url: "memory://".into(),
            bus_subject_prefix: String::new(),
            bus_max_age: Duration::from_secs(7 * 24 * 3600),
            bus_duplicate_window: Duration::from_secs(120),
            bus_prune_every: Duration::from_secs(600),
            cache_url: "memory://".into(),
            cache_tls_ca_file: None,
            cache_key_prefix: "echo:".into(),
            env: Environment::Development,
            log_format: LogFormat::Json,
            log_filter: "info".into(),
            otlp_endpoint: None,
            shutdown_grace: Duration::from_secs(10),
            max_request_bytes: 4 * 1024 * 1024,
            keepalive_interval: Duration::from_secs(30),
            cors_allowed_origins: vec!["*".into()],
            upstreams: Upstreams::default(),
            trusted_proxies: vec![
                std::net::IpAddr::from([127, 0, 0, 1]).into(),
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST).into(),
            ],
            auth: AuthSettings::default(),
            service_secret: None,
            service_secret_file: None,
            live: LiveSettings::default(),
            presence: PresenceSettings::default(),
            notification: NotificationSettings::default(),
            send: SendSettings::default(),
            retention: RetentionSettings::default(),
            public: PublicPortSettings::default(),
            edge: EdgeSettings::default(),
            admin: AdminSettings::default(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The layered sources could not be read or did not fit the schema.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// The values are well-formed but cannot work together.
    #[error("{0}")]
    Inconsistent(String),
}

impl Config {
    /// Layer defaults < config file < `ECHO_*` env < flags, then check the result.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let file = cli
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("echo.toml"));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if cli.config.is_some() || file.exists() {
            figment = figment.merge(Toml::file_exact(&file));
        }
        let mut config: Config = figment
            // `ECHO_UPSTREAMS__AUTH` reaches `upstreams.auth`; the single underscore stays.
            .merge(
                Env::prefixed("ECHO_")
                    .split("__")
                    .filter(|key| !is_test_variable(key.as_str())),
            )
            .merge(Serialized::defaults(cli.overrides()))
            .extract()
            .map_err(Box::new)?;
        read_secret_file(
            "service_secret",
            &mut config.service_secret,
            config.service_secret_file.as_deref(),
        )?;
        config.auth.read_files()?;
        match cli.command {
            // Migrations touch the database only: no key or service secret is needed (nor
            // given, in deploy/), whatever the targets.
            Some(Command::Migrate) => config.check_consistency()?,
            _ => config.check()?,
        }
        Ok(config)
    }

    /// The effective database URL: configured, or the embedded SQLite under `data_dir`.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| embedded_database_url(&self.data_dir))
    }

    /// Production mode: `env = production`, or any non-embedded backend.
    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
            || self.database_url().starts_with("postgres")
            || !self.bus_url.starts_with("memory:")
            || !self.cache_url.starts_with("memory:")
    }

    /// Refuse combinations that cannot work or are unsafe, saying why and what to set instead.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.check_consistency()?;
        if self.is_production() {
            self.check_production_secrets()?;
        }
        Ok(())
    }

    /// Refuse combinations that cannot work (everything [`Config::check`] does except the
    /// production secrets, which tests supply their own way).
    pub fn check_consistency(&self) -> Result<(), ConfigError> {
        if !self.target.is_whole_mesh() {
            let alone = self.target.to_string();
            if self.bus_url.starts_with("memory:") {
                return Err(ConfigError::Inconsistent(format!(
                    "target `{alone}` runs without the rest of the mesh, but bus_url is {}: an \
                     in-process bus cannot carry events between processes; set ECHO_BUS_URL to \
                     a NATS JetStream server (e.g. nats://127.0.0.1:4222) or run --target all",
                    self.bus_url
                )));
            }
            if self.cache_url.starts_with("memory:") {
                return Err(ConfigError::Inconsistent(format!(
                    "target `{alone}` runs without the rest of the mesh, but cache_url is {}: \
                     revocations and rate limits must be shared between processes; set \
                     ECHO_CACHE_URL to a Redis server (e.g. redis://127.0.0.1:6379) or run \
                     --target all",
                    self.cache_url
                )));
            }
            if self.database_url().starts_with("sqlite:") && self.target.has_any_service() {
                return Err(ConfigError::Inconsistent(format!(
                    "target `{alone}` runs without the rest of the mesh, but the database is \
                     embedded SQLite, which one process owns; set ECHO_DATABASE_URL to \
                     PostgreSQL or run --target all"
                )));
            }
        }
        if self.max_request_bytes < 1024 {
            return Err(ConfigError::Inconsistent(
                "max_request_bytes below 1024 would refuse ordinary requests".into(),
            ));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::Inconsistent(
                "database_max_connections must be at least 1".into(),
            ));
        }
        if let Some(problem) = self.auth.problem() {
            return Err(ConfigError::Inconsistent(problem));
        }
        if let Some(problem) = self.presence.problem() {
            return Err(ConfigError::Inconsistent(problem));
        }
        if let Some(problem) = self.notification.problem() {
            return Err(ConfigError::Inconsistent(problem));
        }
        if let Some(problem) = self.public.problem() {
            return Err(ConfigError::Inconsistent(problem));
        }
        if let Some(problem) = self.edge.problem() {
            return Err(ConfigError::Inconsistent(problem));
        }
        if self.send.queue == 0 || self.send.max_batch == 0 || self.send.committers == 0 {
            return Err(ConfigError::Inconsistent(
                "send.queue, send.max_batch and send.committers must each be at least 1".into(),
            ));
        }
        if self.send.commit_timeout.is_zero() {
            return Err(ConfigError::Inconsistent(
                "send.commit_timeout must be above zero".into(),
            ));
        }
        Ok(())
    }

    /// Production refuses development defaults and weak secrets (DESIGN §5).
    fn check_production_secrets(&self) -> Result<(), ConfigError> {
        let auth_upstream = self.upstreams.auth.as_deref();
        if let Some(problem) = self.auth.production_problem(&self.target, auth_upstream) {
            return refuse(&problem);
        }
        if let Some(problem) = self.admin.production_problem(&self.target) {
            return refuse(&problem);
        }
        // The services that serve or call internal contracts authenticate those calls with it
        // (auth calls message's when its admin API is given `admin.message_internal_url`).
        let internal = [Target::Message, Target::Presence, Target::Notification];
        let admin_calls =
            self.target.contains(Target::Auth) && self.admin.message_internal_url.is_some();
        if admin_calls || internal.into_iter().any(|t| self.target.contains(t)) {
            match &self.service_secret {
                None => {
                    return refuse(
                        "needs service_secret (ECHO_SERVICE_SECRET, or service_secret_file): services authenticate their internal calls with it",
                    );
                }
                Some(secret) if is_weak_secret(secret) => {
                    return refuse(&format!(
                        "refuses a weak service_secret: use at least {MIN_SECRET_BYTES} random bytes"
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The configuration as TOML with secrets redacted, for logs and `--print-config`.
    pub fn redacted(&self) -> serde_json::Value {
        let mut copy = self.clone();
        copy.database_url = Some(redact_url(&self.database_url()));
        copy.bus_url = redact_url(&self.bus_url);
        copy.cache_url = redact_url(&self.cache_url);
        copy.auth = self.auth.redacted();
        copy.service_secret = self.service_secret.as_ref().map(|_| "***".to_owned());
        serde_json::to_value(copy).unwrap_or_default()
    }
}

/// Take `value` (named `name`) from the file at `path` when one is given: a mounted secret,
/// so surrounding whitespace (the trailing newline) is ignored. Setting both is an error.
fn read_secret_file(
    name: &str,
    value: &mut Option<String>,
    path: Option<&Path>,
) -> Result<(), ConfigError> {
    let Some(path) = path else {
        return Ok(());
    };
    if value.is_some() {
        return Err(ConfigError::Inconsistent(format!(
            "{name} and {name}_file are both set; set one"
        )));
    }
    let secret = std::fs::read_to_string(path).map_err(|error| {
        ConfigError::Inconsistent(format!("{name}_file {}: {error}", path.display()))
    })?;
    *value = Some(secret.trim().to_owned());
    Ok(())
}

/// A production-mode refusal saying what is missing or wrong.
fn refuse(what: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Inconsistent(format!(
        "production mode (env = production, or a non-embedded backend) {what}"
    )))
}

/// `ECHO_TEST_*` and `ECHO_REQUIRE_SERVICES` belong to the test suite, not to the server: they
/// may be set in any shell that runs tests and must never stop `echo` from starting.
fn is_test_variable(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.starts_with("test_") || key == "require_services"
}

/// Too short, or one character repeated, or a well-known placeholder.
fn is_weak_secret(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    let placeholders = [
        "changeme",
        "change-me",
        "secret",
        "password",
        "development",
        "example",
    ];
    secret.len() < MIN_SECRET_BYTES
        || secret.chars().all(|c| secret.starts_with(c))
        || placeholders.iter().any(|p| lower.contains(p))
}

/// `sqlite://<data_dir>/echo.db`: each service keeps its own file beside it (`echo-auth.db`).
pub fn embedded_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("echo.db").display())
}

/// Replace the password in `scheme://user:password@host/…` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            let masked = if credentials.contains(':') {
                format!("{user}:***")
            } else {
                user.into()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Durations are written in whole seconds in files and variables (`shutdown_grace = 10`).
mod humantime_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        if !(0.0..=1e9).contains(&seconds) {
            return Err(serde::de::Error::custom(
                "a duration in seconds between 0 and 1e9",
            ));
        }
        Ok(Duration::from_secs_f64(seconds))
    }
}

#[cfg(test)]
mod tests;
