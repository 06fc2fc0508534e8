//! Serve a set of gRPC services on one public port: gRPC and grpc-web (HTTP/1.1 and HTTP/2),
//! CORS for browsers, reflection v1 and v1alpha, health, request ids, metrics, size limits,
//! keepalive, and shutdown that ends streams and drains within a deadline. Internal contracts
//! (`*InternalService`) are refused there and served on a second, internal port instead.

use std::net::SocketAddr;
use std::time::Duration;

use echo_config::PublicPortSettings;
use echo_store::Database;
use http::{HeaderName, Method};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::KnownMethods;
use crate::health::Readiness;
use crate::layers::{
    DecodeFailuresLayer, InternalPathsLayer, OneMessageLayer, StreamShutdownLayer,
    is_internal_service, public_api,
};
use crate::public_port::{self, PortLimits, RequestTimeoutLayer};
use crate::request_id::RequestIdLayer;
use crate::web::WebApp;

/// How a port (public or internal) behaves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// HTTP/2 keepalive ping interval (a silent peer is disconnected after a timeout).
    pub keepalive_interval: Duration,
    /// How long shutdown waits for in-flight calls before closing connections.
    pub shutdown_grace: Duration,
    /// Origins allowed for browser (grpc-web) calls; `*` allows any (public port only).
    pub cors_allowed_origins: Vec<String>,
    /// The public port's TLS, caps and timeouts (the internal port is plaintext on the
    /// internal network and keeps tonic's defaults).
    pub public: PublicPortSettings,
}

impl ServeOptions {
    /// Options from the process configuration.
    pub fn from_config(config: &echo_config::Config) -> Self {
        Self {
            keepalive_interval: config.keepalive_interval,
            shutdown_grace: config.shutdown_grace,
            cors_allowed_origins: config.cors_allowed_origins.clone(),
            public: config.public.clone(),
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
    internal: bool,
    web_app: bool,
}

impl Default for Services {
    fn default() -> Self {
        Self::new()
    }
}

impl Services {
    /// No services yet, for the public port.
    pub fn new() -> Self {
        Self {
            routes: Routes::default(),
            names: Vec::new(),
            databases: Vec::new(),
            internal: false,
            web_app: false,
        }
    }

    /// No services yet, for the internal port: internal contracts (`*InternalService`) only,
    /// each behind the service credential. [`serve`] serves these as the internal port.
    pub fn internal() -> Self {
        Self {
            internal: true,
            ..Self::new()
        }
    }

    /// Whether these are the internal port's services.
    pub fn is_internal(&self) -> bool {
        self.internal
    }

    /// Serve `service` and report health for it.
    ///
    /// # Panics
    /// When an internal contract is added to the public port's services or another service to
    /// the internal port's: a wiring bug, caught at startup.
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
        assert_eq!(
            is_internal_service(S::NAME),
            self.internal,
            "{} belongs on the {} port",
            S::NAME,
            if self.internal { "public" } else { "internal" }
        );
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

    /// Serve the web chat's files (`web/dist`, built in) at `/`, `/app.js` and `/app.css`
    /// (docs/web.md); without it those paths answer 404.
    pub fn web_app(&mut self) -> &mut Self {
        self.web_app = true;
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

/// A running port.
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

/// Start serving `services` on `listener` until `shutdown` is cancelled: as the public port,
/// or as the internal port when they come from [`Services::internal`].
///
/// The public port refuses every path of an internal contract (`*InternalService`) with
/// PERMISSION_DENIED `SERVICE_ONLY`, and its reflection neither lists nor describes them. The
/// internal port speaks gRPC over HTTP/2 only (no grpc-web, no CORS: browsers never call it)
/// and reflects what it serves.
///
/// The public port defends itself (TLS when configured, caps, timeouts: `public_port`); the
/// internal port is plaintext, for the internal network only.
///
/// Shutdown order, on both: health reports NOT_SERVING, open streams end with a resumable
/// status, new connections are refused, in-flight calls drain, and after `shutdown_grace`
/// whatever is left is closed.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    options: &ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<(Running, Readiness)> {
    if services.internal {
        serve_internal(listener, services, options, shutdown).await
    } else {
        serve_public(listener, services, options, shutdown).await
    }
}

async fn serve_public(
    listener: TcpListener,
    services: Services,
    options: &ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<(Running, Readiness)> {
    let addr = listener.local_addr()?;
    let methods = KnownMethods::of(&services.names);
    let web_app = services.web_app;
    let (routes, readiness) = with_health(services, &shutdown).await;
    let public = public_api();
    let routes = add_reflection(routes, &public.descriptors, &public.services);

    let tls = public_port::tls_acceptor(&options.public, &shutdown)?;
    let service = tower::ServiceBuilder::new()
        .layer(cors(&options.cors_allowed_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(RequestIdLayer::new(methods))
        // Inside request ids, so a timed-out call is logged and counted with its status.
        .layer(RequestTimeoutLayer::new(options.public.request_timeout))
        .layer(DecodeFailuresLayer)
        .layer(OneMessageLayer)
        .layer(StreamShutdownLayer::new(shutdown.clone()))
        // Inside grpc-web (a browser gets the refusal as grpc-web too) and request ids.
        .layer(InternalPathsLayer)
        .service(routes.prepare());
    let service = WebApp::new(service, web_app);
    let has_tls = tls.is_some();
    let limits = PortLimits {
        settings: options.public.clone(),
        keepalive_interval: options.keepalive_interval,
        shutdown_grace: options.shutdown_grace,
    };
    let serving = public_port::serve(listener, service, tls, limits, shutdown.clone());
    let task = spawn_until_drained(serving, shutdown, options.shutdown_grace);
    tracing::info!(%addr, tls = has_tls, "serving gRPC and grpc-web");
    Ok((Running { addr, task }, readiness))
}

async fn serve_internal(
    listener: TcpListener,
    services: Services,
    options: &ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<(Running, Readiness)> {
    let addr = listener.local_addr()?;
    let names: Vec<String> = services.names.iter().map(|&n| n.to_owned()).collect();
    let methods = KnownMethods::of(&services.names);
    let (routes, readiness) = with_health(services, &shutdown).await;
    let routes = add_reflection(routes, echo_proto::FILE_DESCRIPTOR_SET, &names);

    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(options.keepalive_interval))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(RequestIdLayer::new(methods))
        .layer(DecodeFailuresLayer)
        .layer(OneMessageLayer)
        .layer(StreamShutdownLayer::new(shutdown.clone()))
        .add_routes(routes);
    let serving =
        server.serve_with_incoming_shutdown(incoming(listener), shutdown.clone().cancelled_owned());
    let task = spawn_until_drained(serving, shutdown, options.shutdown_grace);
    tracing::info!(%addr, services = ?names, "serving internal contracts");
    Ok((Running { addr, task }, readiness))
}

/// How long a keepalive ping may go unanswered before the connection is closed.
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The services' routes with health added, and the readiness that drives it. Every service is
/// known to health from the first moment (NOT_SERVING, never NOT_FOUND) until the first
/// database check says otherwise.
async fn with_health(services: Services, shutdown: &CancellationToken) -> (Routes, Readiness) {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let readiness = Readiness::new(reporter, services.names);
    readiness.set(false).await;
    tokio::spawn(readiness.clone().run(services.databases, shutdown.clone()));
    (services.routes.add_service(health_service), readiness)
}

/// Accepted connections, with TCP_NODELAY: small frames (a send's answer, a stream item) go
/// out at once; with Nagle's algorithm they wait up to ~40 ms behind an unacknowledged segment.
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Run `serving` until it returns after `shutdown`, or until `grace` after `shutdown`,
/// whichever comes first.
fn spawn_until_drained(
    serving: impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    shutdown: CancellationToken,
    grace: Duration,
) -> JoinHandle<Result<(), tonic::transport::Error>> {
    tokio::spawn(async move {
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => result,
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "drain deadline passed; closing remaining connections");
                Ok(())
            }
        }
    })
}

/// Reflection v1 and v1alpha (grpcurl 1.8 and grpcio-reflection speak only v1alpha) over
/// `echo_descriptors`, listing `services`, health and itself.
fn add_reflection(routes: Routes, echo_descriptors: &'static [u8], services: &[String]) -> Routes {
    let builder = |reflection: &str| {
        services.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(echo_descriptors)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // So grpcurl and other reflection clients can render google.rpc error details.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(HEALTH_SERVICE)
                .with_service_name(reflection),
            |builder, name| builder.with_service_name(name.clone()),
        )
    };
    let v1 = builder("grpc.reflection.v1.ServerReflection")
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let v1alpha = builder("grpc.reflection.v1alpha.ServerReflection")
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");
    routes.add_service(v1).add_service(v1alpha)
}

/// The gRPC health service's name.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

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
