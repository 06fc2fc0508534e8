//! The command line, part of the operator contract (DESIGN §1). Every flag is also an `ECHO_*`
//! variable through the config layers, so flags here only override what was set explicitly.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

/// echo: a real-time messaging backend. With no flags it runs the whole mesh on embedded
/// defaults (SQLite, an in-process bus, an in-memory cache) on 127.0.0.1:8080.
#[derive(Debug, Clone, Parser)]
#[command(name = "echo", version, about, long_about = None)]
pub struct Cli {
    /// A TOML config file (default: ./echo.toml when present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Targets to run: all, or a comma-separated list of auth, user, message, presence,
    /// notification, edge [env: ECHO_TARGET].
    #[arg(long, global = true)]
    pub target: Option<String>,
    /// Public gRPC + grpc-web address [env: ECHO_LISTEN].
    #[arg(long, global = true)]
    pub listen: Option<SocketAddr>,
    /// Admin address for /metrics and /healthz [env: ECHO_ADMIN_LISTEN].
    #[arg(long, global = true)]
    pub admin_listen: Option<SocketAddr>,
    /// Internal address for Echo's own service-to-service calls [env: ECHO_INTERNAL_LISTEN].
    #[arg(long, global = true)]
    pub internal_listen: Option<SocketAddr>,
    /// Directory for embedded state [env: ECHO_DATA_DIR].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands besides serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apply every service's database migrations and exit.
    Migrate,
    /// Print the effective configuration (secrets redacted) and exit.
    PrintConfig,
}

impl Cli {
    /// Only the flags actually given, as a config layer above the environment.
    pub(crate) fn overrides(&self) -> Value {
        let mut layer = Map::new();
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                layer.insert(key.into(), Value::String(value));
            }
        };
        put("target", self.target.clone());
        put("listen", self.listen.map(|a| a.to_string()));
        put("admin_listen", self.admin_listen.map(|a| a.to_string()));
        put(
            "internal_listen",
            self.internal_listen.map(|a| a.to_string()),
        );
        put(
            "data_dir",
            self.data_dir.as_ref().map(|d| d.display().to_string()),
        );
        Value::Object(layer)
    }
}
