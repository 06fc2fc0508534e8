//! The serving kit every target uses (DESIGN §2, §4, §11): one public port with gRPC,
//! grpc-web and CORS, health and reflection, request ids and metrics, size limits, shutdown
//! that ends streams and drains within a deadline; and the admin port. The one mapping from
//! errors to `tonic::Status` is `echo_status`'s, re-exported here.

pub mod admin;
mod client_ip;
mod health;
mod known_methods;
pub mod layers;
mod public_port;
pub mod request_id;
mod server;
mod web;

pub use client_ip::client_ip;
// How services say no lives in `echo_status` (no server stack, no database), re-exported here
// for the services that also serve.
pub use echo_status::{Check, ERROR_DOMAIN, Failure, Page, PageSize, Violation, page};
pub use health::Readiness;
pub use known_methods::KnownMethods;
pub use server::{Running, ServeOptions, Services, serve};

/// The largest request message a service accepts by default (4 MiB); configurable per process
/// with `max_request_bytes`.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Wait for SIGTERM or SIGINT, then cancel `shutdown`.
pub async fn cancel_on_signal(shutdown: tokio_util::sync::CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
    shutdown.cancel();
}
