//! Calls on one connection: which are open (a connection with none for `idle_timeout` is
//! closed; keepalive pings are not calls, so a pinging client cannot hold an idle connection),
//! the connection's address for the handlers (`TcpConnectInfo`, as tonic's server gives it),
//! and the request timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::watch;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};

/// The number of calls open on one connection.
#[derive(Clone)]
pub(super) struct Calls(Arc<watch::Sender<usize>>);

impl Calls {
    pub(super) fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    /// Count a call open until the guard drops (with its response body).
    fn open(&self) -> CallGuard {
        self.0.send_modify(|open| *open += 1);
        CallGuard(self.clone())
    }

    /// Resolves once no call has been open for `timeout` at a stretch.
    pub(super) async fn idle_for(&self, timeout: Duration) {
        let mut open = self.0.subscribe();
        loop {
            if open.wait_for(|&n| n == 0).await.is_err() {
                return;
            }
            if tokio::time::timeout(timeout, open.changed()).await.is_err() {
                return;
            }
        }
    }
}

/// One open call.
struct CallGuard(Calls);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.0.send_modify(|open| *open -= 1);
    }
}

/// The port's service as one connection sees it: each request carries the connection's
/// addresses and counts as an open call until its response body ends.
#[derive(Clone)]
pub(super) struct ConnectionService<S> {
    inner: S,
    info: TcpConnectInfo,
    calls: Calls,
}

impl<S> ConnectionService<S> {
    pub(super) fn new(inner: S, info: TcpConnectInfo, calls: Calls) -> Self {
        Self { inner, info, calls }
    }
}

impl<S, B> Service<Request<hyper::body::Incoming>> for ConnectionService<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<CallBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let guard = self.calls.open();
        let mut request = request.map(tonic::body::Body::new);
        request.extensions_mut().insert(self.info.clone());
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|inner| CallBody {
                inner,
                _guard: guard,
            }))
        })
    }
}

pin_project! {
    /// A response body that keeps its call counted as open until it ends or is dropped.
    pub(super) struct CallBody<B> {
        #[pin]
        inner: B,
        _guard: CallGuard,
    }
}

impl<B: Body<Data = Bytes>> Body for CallBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Answer DEADLINE_EXCEEDED to a call that has not answered within the port's
/// `request_timeout`, or the client's `grpc-timeout` when shorter. A call "answers" when its
/// response starts: a unary call's whole run, but only a server stream's setup, so Subscribe
/// and WatchPresence live on for hours.
#[derive(Clone, Debug)]
pub(crate) struct RequestTimeoutLayer {
    timeout: Duration,
}

impl RequestTimeoutLayer {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// See [`RequestTimeoutLayer`].
#[derive(Clone, Debug)]
pub(crate) struct RequestTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B, R> Service<Request<B>> for RequestTimeout<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send + 'static,
    R: Body<Data = Bytes> + Send + 'static,
    R::Error: Into<tower::BoxError>,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let client = grpc_timeout(request.headers());
        let timeout = client.map_or(self.timeout, |client| client.min(self.timeout));
        let future = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(timeout, future).await {
                Ok(response) => Ok(response?.map(tonic::body::Body::new)),
                Err(_) => {
                    let status = tonic::Status::deadline_exceeded(format!(
                        "the call did not answer within {timeout:?}"
                    ));
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// The client's deadline from `grpc-timeout` (`<at most 8 digits><H|M|S|m|u|n>`).
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_reads_every_unit_and_refuses_junk() {
        let parse = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            grpc_timeout(&headers)
        };
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for junk in ["", "S", "123456789S", "5s", "-5S", "5 S"] {
            assert_eq!(parse(junk), None, "{junk:?}");
        }
    }
}
