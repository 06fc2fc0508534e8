//! The admin port: `/metrics` (Prometheus), `/healthz` (the process is up), `/readyz` (the
//! databases answer), and in the process that runs auth the operators' gRPC API
//! (`echo.admin.v1.AdminService`, docs/admin.md) with its own reflection. Kept off the public
//! port so metrics and operator calls never reach clients.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

/// Bucket bounds of `echo_rpc_response_seconds`: 1 ms to 10 s, so latency quantiles can be
/// computed over many pods (`histogram_quantile` over summed buckets), which a summary's
/// per-pod quantiles cannot.
const RPC_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of `echo_send_batch_size` (sends per committed transaction, at most
/// `send.max_batch`).
const BATCH_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The process-wide Prometheus recorder (installed once, shared by every server in a process).
/// Echo's histograms are exported with buckets (`_bucket{le}`, `_sum`, `_count`).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("echo_rpc_response_seconds".into()),
                    RPC_SECONDS,
                )
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("echo_send_batch_size".into()),
                        BATCH_SIZES,
                    )
                })
                .expect("the bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests embedding us); then ours only
            // renders what it was given, which is still a valid exposition.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[derive(Clone)]
struct AdminState {
    metrics: PrometheusHandle,
    ready: watch::Receiver<bool>,
}

/// Serve the admin endpoints on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    ready: watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, ready, None, shutdown).await
}

/// gRPC routes for the admin port: `service` (the AdminService server) with reflection (v1 and
/// v1alpha, for grpcurl) listing it alone. Requests are answered over HTTP/2 (h2c) beside the
/// HTTP/1 endpoints.
pub fn grpc_routes<S>(service: S) -> Routes
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Error = std::convert::Infallible,
            Response = http::Response<tonic::body::Body>,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let builder = |reflection: &str| {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(echo_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(S::NAME)
            .with_service_name(reflection)
    };
    let v1 = builder("grpc.reflection.v1.ServerReflection")
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let v1alpha = builder("grpc.reflection.v1alpha.ServerReflection")
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");
    Routes::new(service).add_service(v1).add_service(v1alpha)
}

/// [`serve`], with `grpc` routes (from [`grpc_routes`]) beside the HTTP endpoints.
pub async fn serve_with(
    listener: TcpListener,
    ready: watch::Receiver<bool>,
    grpc: Option<Routes>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = AdminState {
        metrics: prometheus(),
        ready,
    };
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<AdminState>| async move {
                // The runtime's live tasks at the scrape: a leak (tasks outliving their
                // streams or connections) shows as growth under a steady load.
                let tasks = tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks();
                metrics::gauge!("echo_runtime_alive_tasks").set(tasks as f64);
                s.metrics.render()
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<AdminState>| async move {
                if *s.ready.borrow() {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }),
        )
        .with_state(state);
    let app = match grpc {
        Some(routes) => routes.into_axum_router().merge(app),
        None => app,
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
