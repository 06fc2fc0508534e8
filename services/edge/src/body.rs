//! The upstream's response body, passed through frame by frame.
//!
//! A stream the upstream breaks off (its process died, the connection reset) would otherwise
//! reach the client as an HTTP/2 reset with no gRPC status; it ends instead with trailers:
//! UNAVAILABLE, ErrorInfo `DEPENDENCY_UNAVAILABLE`, RetryInfo, and the instance is skipped for a
//! while. The body holds the call's place in its instance's load until it ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use crate::balance::InFlight;
use crate::forward::unavailable;

pin_project! {
    /// See the module docs.
    pub(crate) struct UpstreamBody {
        #[pin]
        inner: Incoming,
        service: &'static str,
        broken: bool,
        in_flight: InFlight,
    }
}

impl UpstreamBody {
    pub(crate) fn new(inner: Incoming, service: &'static str, in_flight: InFlight) -> Self {
        Self {
            inner,
            service,
            broken: false,
            in_flight,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if *this.broken {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Err(error))) => {
                let instance = this.in_flight.instance();
                tracing::warn!(%error, service = *this.service, upstream = %instance.addr, "upstream stream broke off");
                instance.mark_down();
                *this.broken = true;
                let mut trailers = HeaderMap::new();
                let _ = unavailable(this.service).add_header(&mut trailers);
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.broken || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
