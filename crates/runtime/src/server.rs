//! Serve a set of gRPC services on one public port: gRPC and grpc-web (HTTP/1.1 and HTTP/2),
//! CORS for browsers, reflection v1 and v1alpha, health, request ids, metrics, size limits,
//! keepalive, and shutdown that ends streams and drains within a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use echo_store::Database;
use http::{HeaderName, Method};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::health::Readiness;
use crate::layers::{DecodeFailuresLayer, StreamShutdownLayer};
use crate::request_id::RequestIdLayer;

/// How the public port behaves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// HTTP/2 keepalive ping interval (a silent peer is disconnected after a timeout).
    pub keepalive_interval: Duration,
    /// How long shutdown waits for in-flight calls before closing connections.
    pub shutdown_grace: Duration,
    /// Origins allowed for browser (grpc-web) calls; `*` allows any.
    pub cors_allowed_origins: Vec<String>,
}

impl ServeOptions {
    /// Options from the process configuration.
    pub fn from_config(config: &echo_config::Config) -> Self {
        Self {
            keepalive_interval: config.keepalive_interval,
            shutdown_grace: config.shutdown_grace,
            cors_allowed_origins: config.cors_allowed_origins.clone(),
        }
    }
}

/// The services one port serves: each generated server (already size-limited by its crate's
/// `service(max_request_bytes)`) or forwarded prefix, the names health reports, and the
/// databases readiness checks.
pub struct Services {
    routes: Routes,
    names: Vec<&'static str>,
    databases: Vec<Database>,
}

impl Default for Services {
    fn default() -> Self {
        Self::new()
    }
}

impl Services {
    /// No services yet.
    pub fn new() -> Self {
        Self {
            routes: Routes::default(),
            names: Vec::new(),
            databases: Vec::new(),
        }
    }

    /// Serve `service` and report health for it.
    pub fn add<S>(&mut self, service: S) -> &mut Self
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
        self.names.push(S::NAME);
        self.routes = std::mem::take(&mut self.routes).add_service(service);
        self
    }

    /// Serve every path under `/{service_name}/` with `service` (the edge's forwarder in
    /// split mode) and report health for it. The port's layers (request ids, stream shutdown,
    /// grpc-web, CORS) wrap it like any other service.
    pub fn forward<S>(&mut self, service_name: &'static str, service: S) -> &mut Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Error = std::convert::Infallible,
                Response = http::Response<tonic::body::Body>,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        use tower::ServiceExt as _;
        self.names.push(service_name);
        let router = std::mem::take(&mut self.routes)
            .into_axum_router()
            .route_service(
                &format!("/{service_name}/{{*rest}}"),
                service.map_request(|req: http::Request<axum::body::Body>| {
                    req.map(tonic::body::Body::new)
                }),
            );
        self.routes = Routes::from(router);
        self
    }

    /// Count `db` in readiness (the port is ready only while every database answers).
    pub fn ready_with(&mut self, db: Database) -> &mut Self {
        self.databases.push(db);
        self
    }

    /// The full gRPC names of the services added so far.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

/// A running public port.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// Wait until the server has stopped (after the shutdown token fired and it drained).
    pub async fn stopped(self) -> Result<(), tonic::transport::Error> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(error = %join, "server task failed");
                Ok(())
            }
        }
    }
}

/// Start serving `services` on `listener` until `shutdown` is cancelled.
///
/// Shutdown order: health reports NOT_SERVING, open streams end with a resumable status,
/// new connections are refused, in-flight calls drain, and after `shutdown_grace` whatever
/// is left is closed.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    options: &ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<(Running, Readiness)> {
    let addr = listener.local_addr()?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let readiness = Readiness::new(reporter, services.names.clone());
    // Every service is known to health from the first moment (NOT_SERVING, never NOT_FOUND)
    // until the first database check says otherwise.
    readiness.set(false).await;
    tokio::spawn(readiness.clone().run(services.databases, shutdown.clone()));

    let routes = add_reflection(services.routes.add_service(health_service));

    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(options.keepalive_interval))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .layer(cors(&options.cors_allowed_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(RequestIdLayer)
        .layer(DecodeFailuresLayer)
        .layer(StreamShutdownLayer::new(shutdown.clone()))
        .add_routes(routes);

    let grace = options.shutdown_grace;
    let task = tokio::spawn(async move {
        // Small frames (a send's answer, a stream item) go out at once: without TCP_NODELAY,
        // Nagle's algorithm holds them up to ~40 ms behind an unacknowledged segment.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let serving =
            server.serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => result,
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "drain deadline passed; closing remaining connections");
                Ok(())
            }
        }
    });
    tracing::info!(%addr, "serving gRPC and grpc-web");
    Ok((Running { addr, task }, readiness))
}

/// Reflection for the whole API: v1 and v1alpha (grpcurl 1.8 and grpcio-reflection speak only
/// v1alpha).
fn add_reflection(routes: Routes) -> Routes {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(echo_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // So grpcurl and other reflection clients can render google.rpc error details.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(echo_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // So grpcurl and other reflection clients can render google.rpc error details.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");
    routes.add_service(v1).add_service(v1alpha)
}

/// CORS for grpc-web: browsers may read the gRPC status headers, including the details.
fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let header = HeaderName::from_static;
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header("content-type"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("authorization"),
            header("x-request-id"),
        ])
        .expose_headers([
            header("grpc-status"),
            header("grpc-message"),
            header("grpc-status-details-bin"),
            header("x-request-id"),
        ])
        .max_age(Duration::from_secs(24 * 3600))
}
