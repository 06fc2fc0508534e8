//! Per-RPC bookkeeping: request ids (taken from `x-request-id` or minted as UUIDv7, echoed in
//! the response, attached to the request's tracing span, readable anywhere in the handler for
//! INTERNAL errors), W3C trace context (a `traceparent` header makes the RPC's span a child of
//! the caller's, so traces continue edge → services) and the RPC metrics (count by method and
//! code, time to first response; paths that are not a served method count as `unknown`).

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::KnownMethods;

/// The header carrying the id, both ways.
pub const HEADER: &str = "x-request-id";

pub use echo_status::request_id::current;

/// Adds request ids, a span and metrics per RPC.
#[derive(Clone, Debug)]
pub struct RequestIdLayer {
    methods: KnownMethods,
}

impl RequestIdLayer {
    /// Metrics label calls to `methods` by their path and every other path `unknown`.
    pub fn new(methods: KnownMethods) -> Self {
        Self { methods }
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService {
            inner,
            methods: self.methods.clone(),
        }
    }
}

/// See [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct RequestIdService<S> {
    inner: S,
    methods: KnownMethods,
}

impl<S, B, R> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        let span = tracing::info_span!("rpc", request_id = %id, method = %request.uri().path());
        if let Some(parent) = request
            .headers()
            .get(echo_telemetry::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
        {
            echo_telemetry::set_parent(&span, parent);
        }
        let header = HeaderValue::from_str(&id).ok();
        let method = self.methods.label(request.uri().path());
        let started = std::time::Instant::now();
        let future = self.inner.call(request);
        Box::pin(
            echo_status::request_id::scope(id, async move {
                let mut response = future.await?;
                record(method, &response, started);
                if let Some(header) = header {
                    response.headers_mut().insert(HEADER, header);
                }
                Ok(response)
            })
            .instrument(span),
        )
    }
}

/// Count the call and time it to its response head. A failure answered before any message is a
/// "trailers-only" response whose `grpc-status` is already in the headers; a call whose status
/// comes in the trailers is counted by that final status only if it failed early, which is what
/// error-rate alerts need.
fn record<R>(method: String, response: &Response<R>, started: std::time::Instant) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| "0".to_owned(), str::to_owned);
    metrics::counter!("echo_rpc_requests_total", "method" => method.clone(), "code" => code)
        .increment(1);
    metrics::histogram!("echo_rpc_response_seconds", "method" => method)
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use tower::ServiceExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[tokio::test]
    async fn the_rpc_span_continues_the_callers_trace() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _guard = tracing::subscriber::set_default(subscriber);
        // The handler reports the trace context it runs in.
        let service = RequestIdLayer::new(KnownMethods::of(&[])).layer(tower::service_fn(
            |_: Request<()>| async {
                Ok::<_, std::convert::Infallible>(Response::new(
                    echo_telemetry::current_traceparent(),
                ))
            },
        ));
        let request = Request::builder()
            .uri("/echo.v1.Test/Call")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(())
            .unwrap();
        let traceparent = service.oneshot(request).await.unwrap().into_body().unwrap();
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(
            !traceparent.contains("00f067aa0ba902b7"),
            "a span of its own"
        );
    }
}
