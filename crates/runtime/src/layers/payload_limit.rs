//! Oversized requests answer RESOURCE_EXHAUSTED with ErrorInfo `PAYLOAD_TOO_LARGE` (DESIGN §4).
//!
//! tonic enforces `max_decoding_message_size` by reading the 5-byte frame header (no large
//! allocation), but reports it as OUT_OF_RANGE in a trailers-only response. This layer
//! rewrites exactly that answer; every other OUT_OF_RANGE passes untouched.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::Code;
use tower::{Layer, Service};

use crate::failure::Failure;

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct PayloadLimitLayer;

impl<S> Layer<S> for PayloadLimitLayer {
    type Service = PayloadLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PayloadLimit { inner }
    }
}

/// See [`PayloadLimitLayer`].
#[derive(Clone, Debug)]
pub struct PayloadLimit<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for PayloadLimit<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            let too_large = tonic::Status::from_header_map(headers).is_some_and(|status| {
                status.code() == Code::OutOfRange && status.message().contains("too large")
            });
            if too_large {
                let status: tonic::Status = Failure::reason(
                    Code::ResourceExhausted,
                    "PAYLOAD_TOO_LARGE",
                    "request message exceeds the size limit",
                )
                .into();
                headers.remove("grpc-status-details-bin");
                let _ = status.add_header(headers);
            }
            Ok(response)
        })
    }
}
