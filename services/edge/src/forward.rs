//! The split-mode forwarder: an h2c reverse proxy for gRPC paths.
//!
//! The request body is read whole (at most `max_request_body`, so a call can be tried on another
//! instance when no connection was made); the response is streamed frame by frame (trailers
//! included). The proxy knows nothing of methods or messages. A client that goes away drops the upstream stream
//! (hyper resets it), and the serving kit's stream-shutdown layer wraps forwarded responses
//! like local ones, so the edge's shutdown ends forwarded streams too.
//!
//! One piece: one call's way through the edge, from path to upstream response (route, bound the
//! body, prepare the headers once in `Prepared`, try another instance only when no connection was
//! made), with the statuses it answers; balancing (`balance`) and the response body (`body`) live
//! beside it. Split, the retry rule would sit apart from the buffered body and the once-prepared
//! request it relies on.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use echo_runtime::{Failure, Services};
use futures::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Method, Request, Response, Version};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;

use crate::balance::{Dns, Pool, Resolver, Target};
use crate::body::UpstreamBody;
use crate::upstreams::UpstreamError;

/// How long a client waits before retrying a call the edge could not deliver.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The largest request body forwarded by default: one 4 MiB message and its gRPC frame header.
pub const DEFAULT_MAX_REQUEST_BODY: usize = 4 * 1024 * 1024 + 5;

/// How a [`Forwarder`] finds instances, treats failed ones, and bounds request bodies.
#[derive(Clone)]
pub struct ForwardOptions {
    /// Where host names' addresses come from.
    pub resolver: Arc<dyn Resolver>,
    /// How often host names are resolved again.
    pub resolve_every: Duration,
    /// How long an instance whose connection failed is skipped.
    pub down_for: Duration,
    /// The largest request body forwarded, in bytes; a larger one is RESOURCE_EXHAUSTED
    /// `PAYLOAD_TOO_LARGE` (every Echo RPC takes one message: one message and its 5-byte frame
    /// header).
    pub max_request_body: usize,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        Self {
            resolver: Arc::new(Dns),
            resolve_every: Duration::from_secs(10),
            down_for: Duration::from_secs(2),
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
        }
    }
}

impl std::fmt::Debug for ForwardOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardOptions")
            .field("resolve_every", &self.resolve_every)
            .field("down_for", &self.down_for)
            .field("max_request_body", &self.max_request_body)
            .finish_non_exhaustive()
    }
}

/// Forwards each gRPC service's paths to the instances that serve it, over one pooled h2c
/// client shared by every service (hyper keeps one connection per authority, and every
/// instance is addressed by its own IP:port, so each gets its own connection). Cheap to
/// clone: mount the same forwarder for every service ([`Forwarder::mount`]).
#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpConnector, Body>,
    pools: HashMap<&'static str, Arc<Pool>>,
    max_request_body: usize,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("pools", &self.inner.pools)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// Forward each `(service_name, upstream)`: `/service_name/*` goes to `upstream`
    /// (`http://host:port`; the upstream speaks gRPC over cleartext HTTP/2). A service named
    /// more than once is balanced over all its upstreams.
    pub fn new(
        routes: impl IntoIterator<Item = (&'static str, Uri)>,
    ) -> Result<Self, UpstreamError> {
        Self::with_options(routes, ForwardOptions::default())
    }

    /// [`Forwarder::new`] with the resolver, timings and body cap given.
    pub fn with_options(
        routes: impl IntoIterator<Item = (&'static str, Uri)>,
        options: ForwardOptions,
    ) -> Result<Self, UpstreamError> {
        let mut targets: HashMap<&'static str, Vec<Target>> = HashMap::new();
        for (service, uri) in routes {
            let invalid = |why: &str| UpstreamError::Invalid {
                service,
                upstream: uri.to_string(),
                why: why.to_owned(),
            };
            // Internal contracts are served on internal ports to Echo's services only; the
            // public port refuses their paths anyway, and the edge never routes to one.
            if echo_runtime::layers::is_internal_service(service) {
                return Err(invalid(
                    "internal contracts are never forwarded by the edge",
                ));
            }
            if uri.scheme() != Some(&Scheme::HTTP) {
                return Err(invalid("the edge reaches upstreams over cleartext http://"));
            }
            let host = uri.host().ok_or_else(|| invalid("no host:port"))?;
            let port = uri.port_u16().unwrap_or(80);
            targets
                .entry(service)
                .or_default()
                .push(Target::new(host, port));
        }
        let pools = targets
            .into_iter()
            .map(|(service, targets)| {
                let pool = Pool::new(
                    service,
                    targets,
                    options.resolver.clone(),
                    options.resolve_every,
                    options.down_for,
                );
                (service, Arc::new(pool))
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                client: client(),
                pools,
                max_request_body: options.max_request_body,
            }),
        })
    }

    /// The services this forwarder sends on.
    pub fn service_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.inner.pools.keys().copied()
    }

    /// Resolve every upstream now (at start; afterwards calls refresh them as they age).
    pub async fn resolve(&self) {
        for pool in self.inner.pools.values() {
            pool.resolve().await;
        }
    }

    /// The addresses `service` is balanced over right now (empty before the first resolution).
    pub fn instances(&self, service: &str) -> Vec<SocketAddr> {
        self.inner
            .pools
            .get(service)
            .map(|pool| pool.instances().iter().map(|i| i.addr).collect())
            .unwrap_or_default()
    }

    /// Mount every forwarded service on `services` (health reports each of them).
    pub fn mount(&self, services: &mut Services) {
        for service in self.service_names() {
            services.forward(service, self.clone());
        }
    }

    async fn forward(self, request: Request<Body>) -> Response<Body> {
        let service = service_of(request.uri().path());
        let Some((service, pool)) = self.inner.pools.get_key_value(service) else {
            return tonic::Status::unimplemented("no upstream serves this path").into_http();
        };
        let service: &'static str = service;
        pool.refresh().await;
        let (parts, body) = request.into_parts();
        let prepared = match Prepared::new(parts) {
            Ok(prepared) => prepared,
            Err(error) => {
                tracing::warn!(%error, service, "cannot forward request");
                return tonic::Status::invalid_argument("malformed request path").into_http();
            }
        };
        // Every Echo RPC takes one message, so the body is read whole (bounded) before it is
        // sent: an oversize one gets a clean refusal instead of a reset midway, and a body in
        // hand can go to another instance when a connection could not be made.
        let body = match Limited::new(body, self.inner.max_request_body)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                return crate::refuse("body_size", payload_too_large(self.inner.max_request_body));
            }
            Err(error) => {
                tracing::debug!(%error, service, "request body broke off");
                return tonic::Status::cancelled("the request body broke off").into_http();
            }
        };
        let mut tried = Vec::new();
        loop {
            let Some(instance) = pool.pick(&tried) else {
                return crate::refuse("no_instance", unavailable(service));
            };
            let in_flight = instance.enter();
            let request = match prepared.to(&instance.authority, body.clone()) {
                Ok(request) => request,
                Err(error) => {
                    tracing::warn!(%error, service, "cannot forward request");
                    return tonic::Status::invalid_argument("malformed request path").into_http();
                }
            };
            let label = instance.addr.to_string();
            match self.inner.client.request(request).await {
                Ok(response) => {
                    metrics::counter!("echo_edge_forwarded_total", "service" => service, "instance" => label)
                        .increment(1);
                    let (mut parts, body) = response.into_parts();
                    remove_hop_by_hop(&mut parts.headers);
                    let body = UpstreamBody::new(body, service, in_flight);
                    return Response::from_parts(parts, Body::new(body));
                }
                Err(error) => {
                    metrics::counter!("echo_edge_upstream_failures_total", "service" => service, "instance" => label)
                        .increment(1);
                    instance.mark_down();
                    tracing::warn!(
                        error = %error_chain(&error),
                        service,
                        upstream = %instance.addr,
                        connect = error.is_connect(),
                        "upstream unreachable"
                    );
                    // Only a call certainly not sent goes elsewhere: one that reached an
                    // instance may have been applied, and the client retries it (writes carry
                    // idempotency keys) after UNAVAILABLE.
                    if !error.is_connect() {
                        return unavailable(service).into_http();
                    }
                    tried.push(instance.addr);
                }
            }
        }
    }
}

impl tower::Service<Request<Body>> for Forwarder {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The pool queues per upstream; there is no back-pressure to report here.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(request).await) })
    }
}

/// RESOURCE_EXHAUSTED `PAYLOAD_TOO_LARGE`: the request body is above the edge's cap.
fn payload_too_large(cap: usize) -> tonic::Status {
    Failure::Reason {
        code: tonic::Code::ResourceExhausted,
        reason: "PAYLOAD_TOO_LARGE",
        message: format!("the request is larger than {cap} bytes"),
        retry_after: None,
        metadata: vec![("limit", cap.to_string())],
    }
    .into()
}

/// The status a client gets when its call could not reach the service.
pub(crate) fn unavailable(service: &str) -> tonic::Status {
    Failure::unavailable(
        "DEPENDENCY_UNAVAILABLE",
        format!("{service} is unavailable; retry shortly"),
        RETRY_AFTER,
    )
    .into()
}

/// One h2c client for every upstream: HTTP/2 with prior knowledge, one multiplexed
/// connection per upstream, kept alive with pings so a dead peer is noticed.
fn client() -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(3)));
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        .http2_keep_alive_while_idle(true)
        .build(connector)
}

/// `echo.auth.v1.AuthService` from `/echo.auth.v1.AuthService/SignIn`.
fn service_of(path: &str) -> &str {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.split_once('/').map_or(path, |(service, _)| service)
}

/// The request as every instance gets it, but for the authority: HTTP/2, no hop-by-hop
/// headers, the edge's request id and trace context, and the peer in `x-forwarded-for`.
struct Prepared {
    method: Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
}

impl Prepared {
    fn new(parts: http::request::Parts) -> Result<Self, http::Error> {
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut headers = parts.headers;
        remove_hop_by_hop(&mut headers);
        // HTTP/2 carries the authority in the URI, and the length is framing, not content.
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        // The upstream logs under the edge's id (RequestIdLayer minted one if the client sent
        // none) and its span continues the edge's trace.
        if let Some(id) = echo_runtime::request_id::current().and_then(|id| id.parse().ok()) {
            headers.insert(echo_runtime::request_id::HEADER, id);
        }
        if let Some(parent) = echo_telemetry::current_traceparent().and_then(|t| t.parse().ok()) {
            headers.insert(echo_telemetry::TRACEPARENT, parent);
        }
        let peer = parts
            .extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|addr| addr.ip());
        if let Some(peer) = peer {
            append_forwarded_for(&mut headers, peer);
        }
        Ok(Self {
            method: parts.method,
            path_and_query,
            headers,
        })
    }

    /// The request for the instance at `authority`, carrying `body`.
    fn to(&self, authority: &Authority, body: Bytes) -> Result<Request<Body>, http::Error> {
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query(self.path_and_query.clone())
            .build()?;
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(uri)
            .version(Version::HTTP_2)
            .body(Body::new(Full::new(body)))?;
        *request.headers_mut() = self.headers.clone();
        Ok(request)
    }
}

/// Append `peer` to `x-forwarded-for` (rightmost is the hop the edge saw; whether to believe
/// the entries before it is the trusted-proxy decision, made where the IP is used).
fn append_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    let value = match headers.get(&XFF).and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {peer}"),
        _ => peer.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(XFF, value);
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1); HTTP/2 refuses them.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| name.trim().parse().ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

/// The error and its causes, for the log (hyper-util's own message is only the kind).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_the_first_path_segment() {
        assert_eq!(
            service_of("/echo.auth.v1.AuthService/SignIn"),
            "echo.auth.v1.AuthService"
        );
        assert_eq!(service_of("/nothing"), "nothing");
    }

    #[test]
    fn internal_contracts_are_never_forwarded() {
        let upstream: Uri = "http://presence:8080".parse().unwrap();
        let internal = [("echo.presence.v1.PresenceInternalService", upstream)];
        assert!(matches!(
            Forwarder::new(internal),
            Err(UpstreamError::Invalid { .. })
        ));
    }

    #[test]
    fn hop_by_hop_headers_go_and_grpc_headers_stay() {
        let mut request = Request::new(Body::empty());
        let headers = request.headers_mut();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers, deflate"),
            ("host", "edge.example"),
            ("grpc-timeout", "5S"),
            ("authorization", "Bearer t"),
            ("x-request-id", "r-1"),
            ("x-forwarded-for", "203.0.113.7"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        *request.uri_mut() = "/echo.auth.v1.AuthService/SignIn?x=1".parse().unwrap();
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(([10, 0, 0, 9], 5555).into()),
        });
        let (parts, _) = request.into_parts();
        let authority: Authority = "10.0.0.2:8080".parse().unwrap();
        let forwarded = Prepared::new(parts)
            .unwrap()
            .to(&authority, Bytes::new())
            .unwrap();
        assert_eq!(
            forwarded.uri(),
            "http://10.0.0.2:8080/echo.auth.v1.AuthService/SignIn?x=1"
        );
        assert_eq!(forwarded.version(), Version::HTTP_2);
        let headers = forwarded.headers();
        for gone in [
            "connection",
            "keep-alive",
            "x-private",
            "transfer-encoding",
            "host",
        ] {
            assert!(!headers.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(headers["te"], "trailers");
        assert_eq!(headers["grpc-timeout"], "5S");
        assert_eq!(headers["authorization"], "Bearer t");
        assert_eq!(headers["x-request-id"], "r-1");
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 10.0.0.9");
    }
}
