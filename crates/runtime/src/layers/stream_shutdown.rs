//! Shutdown ends every open response stream with a resumable status (DESIGN §7.8).
//!
//! Long-lived server streams would otherwise keep graceful shutdown from ever finishing
//! (hyperium/tonic#1820). When the shutdown token fires, each wrapped body stops between
//! frames (tonic yields whole gRPC messages per frame) and sends trailers: UNAVAILABLE with
//! ErrorInfo `SHUTTING_DOWN` and a RetryInfo, so a client reconnects elsewhere with its cursor.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::{Layer, Service};

use crate::Failure;

/// See the module docs.
#[derive(Clone, Debug)]
pub struct StreamShutdownLayer {
    shutdown: CancellationToken,
}

impl StreamShutdownLayer {
    /// End streams when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { shutdown }
    }
}

impl<S> Layer<S> for StreamShutdownLayer {
    type Service = StreamShutdown<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StreamShutdown {
            inner,
            shutdown: self.shutdown.clone(),
        }
    }
}

/// See [`StreamShutdownLayer`].
#[derive(Clone, Debug)]
pub struct StreamShutdown<S> {
    inner: S,
    shutdown: CancellationToken,
}

impl<S, B, R> Service<Request<B>> for StreamShutdown<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<ShutdownBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        let shutdown = self.shutdown.clone();
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|inner| ShutdownBody {
                inner,
                shutdown: shutdown.cancelled_owned(),
                finished: false,
            }))
        })
    }
}

pin_project! {
    /// A response body that ends with resumable trailers at shutdown.
    pub struct ShutdownBody<B> {
        #[pin]
        inner: B,
        #[pin]
        shutdown: WaitForCancellationFutureOwned,
        finished: bool,
    }
}

fn shutdown_trailers() -> HeaderMap {
    let status: tonic::Status = Failure::unavailable(
        "SHUTTING_DOWN",
        "server shutting down; reconnect and resume from your last cursor",
        Duration::from_millis(500),
    )
    .into();
    let mut trailers = HeaderMap::new();
    let _ = status.add_header(&mut trailers);
    trailers
}

impl<B> Body for ShutdownBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if *this.finished {
            return Poll::Ready(None);
        }
        // Data already produced goes out first; shutdown only cuts a body that is waiting.
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            if frame.is_none() {
                *this.finished = true;
            }
            return Poll::Ready(frame);
        }
        ready!(this.shutdown.poll(cx));
        *this.finished = true;
        Poll::Ready(Some(Ok(Frame::trailers(shutdown_trailers()))))
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }
}
