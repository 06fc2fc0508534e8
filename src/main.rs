//! `echo`: config → backends → targets → wait for a signal → drain.

use clap::Parser;
use echo_config::{Cli, Command, Config};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(&cli)?;
    let _telemetry = echo_telemetry::init(
        config.log_format,
        &config.log_filter,
        config.otlp_endpoint.as_deref(),
        &format!("echo-{}", config.target),
    )?;
    match cli.command {
        Some(Command::PrintConfig) => {
            println!("{}", serde_json::to_string_pretty(&config.redacted())?);
            Ok(())
        }
        Some(Command::Migrate) => echo::migrate(&config).await,
        None => serve(&config).await,
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await?;
    let admin = TcpListener::bind(config.admin_listen).await?;
    // Only a process that serves an internal contract takes the internal port, so other
    // targets on the same host never contend for it.
    let internal = if echo::serves_internal_contracts(&config.target) {
        Some(TcpListener::bind(config.internal_listen).await?)
    } else {
        None
    };
    let shutdown = CancellationToken::new();
    let mesh = echo::Mesh::start(config, listener, admin, internal, shutdown.clone()).await?;
    eprintln!(
        "echo is up: gRPC + grpc-web on {} (try: grpcurl -plaintext {} list), admin on http://{}",
        mesh.addr, mesh.addr, mesh.admin_addr
    );
    echo_runtime::cancel_on_signal(shutdown).await;
    mesh.wait().await
}
