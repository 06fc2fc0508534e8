//! What the balancing and limits tests share: ports started with the serving kit on
//! 127.0.0.1:0, stand-in upstreams that say which instance answered, and bounded waits.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use echo_runtime::{Running, ServeOptions, Services};
use http::{Request, Response};
use http_body::Frame;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};

/// Every wait is bounded, so a broken edge fails the test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The metadata key a stand-in upstream names itself in.
pub const SERVED_BY: &str = "served-by";

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A running port (upstream or edge) and the token that shuts it down.
pub struct Port {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub running: Running,
}

impl Port {
    pub async fn start(services: Services) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let options = ServeOptions {
            keepalive_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(3),
            cors_allowed_origins: vec!["*".into()],
            public: Default::default(),
        };
        let shutdown = CancellationToken::new();
        let (running, _readiness) =
            echo_runtime::serve(listener, services, &options, shutdown.clone())
                .await
                .unwrap();
        Self {
            addr: running.addr,
            shutdown,
            running,
        }
    }

    /// A stand-in upstream for `service`: every unary call fails FAILED_PRECONDITION with
    /// `served-by: name` (so the client sees which instance answered); a call to `Subscribe`
    /// opens a stream that sends nothing and never ends.
    pub async fn stand_in(service: &'static str, name: &'static str) -> Self {
        let mut services = Services::new();
        services.forward(
            service,
            tower::service_fn(move |request: Request<Body>| async move {
                Ok::<_, std::convert::Infallible>(answer(&request, name))
            }),
        );
        Self::start(services).await
    }

    pub fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_lazy()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        within("the port to stop", self.running.stopped())
            .await
            .unwrap();
    }
}

fn answer(request: &Request<Body>, name: &'static str) -> Response<Body> {
    if request.uri().path().ends_with("/Subscribe") {
        let never = futures::stream::pending::<Result<Frame<Bytes>, tonic::Status>>();
        let mut response = Response::new(Body::new(http_body_util::StreamBody::new(never)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        response
            .headers_mut()
            .insert(SERVED_BY, http::HeaderValue::from_static(name));
        return response;
    }
    let mut status = tonic::Status::failed_precondition("answered by a stand-in");
    status
        .metadata_mut()
        .insert(SERVED_BY, name.parse().unwrap());
    status.into_http()
}

/// Which stand-in answered `status` (panics on an answer from no stand-in).
pub fn served_by(status: &tonic::Status) -> String {
    match status.metadata().get(SERVED_BY) {
        Some(name) => name.to_str().unwrap().to_owned(),
        None => panic!("not a stand-in's answer: {status:?}"),
    }
}
