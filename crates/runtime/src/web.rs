//! The web chat (`web/`, docs/web.md) served from the public port in development: the bundle
//! committed in `web/dist` is compiled into the binary, so `cargo build` needs no npm and the
//! binary is self-contained. Production serves the same files from a CDN instead
//! (`public.web_app` decides; off there unless set).
//!
//! The files are answered outside every other layer: tonic-web refuses any HTTP/1.1 request
//! that is not grpc-web, and a static page needs neither CORS nor request ids.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{Method, Request, Response, StatusCode};
use tonic::body::Body;

const INDEX_HTML: &str = include_str!("../../../web/dist/index.html");
const APP_JS: &str = include_str!("../../../web/dist/app.js");
const APP_CSS: &str = include_str!("../../../web/dist/app.css");

/// The page may call any Echo server (`?server=`), so connections are open; everything else
/// comes from this origin only.
const CSP: &str = "default-src 'self'; connect-src 'self' http: https:; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The content type and bytes of the file at `path`, if it is one of the chat's.
fn file(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" | "/index.html" => Some(("text/html; charset=utf-8", INDEX_HTML)),
        "/app.js" => Some(("text/javascript; charset=utf-8", APP_JS)),
        "/app.css" => Some(("text/css; charset=utf-8", APP_CSS)),
        _ => None,
    }
}

/// Answers `GET`/`HEAD` of the chat's files (404 when the port does not serve them); passes
/// everything else to `inner`.
#[derive(Clone)]
pub(crate) struct WebApp<S> {
    inner: S,
    enabled: bool,
}

impl<S> WebApp<S> {
    pub(crate) fn new(inner: S, enabled: bool) -> Self {
        Self { inner, enabled }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<Request<Body>> for WebApp<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let get = request.method() == Method::GET || request.method() == Method::HEAD;
        if let Some((content_type, content)) = file(request.uri().path()).filter(|_| get) {
            let response = if self.enabled {
                Response::builder()
                    .header(CONTENT_TYPE, content_type)
                    // A rebuilt binary's page is revalidated at once.
                    .header(CACHE_CONTROL, "no-cache")
                    .header(X_CONTENT_TYPE_OPTIONS, "nosniff")
                    .header(CONTENT_SECURITY_POLICY, CSP)
                    .body(Body::new(axum::body::Body::from(content)))
            } else {
                Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .header(CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body(Body::new(axum::body::Body::from(
                        "the web chat is not served here (public.web_app; docs/web.md)\n",
                    )))
            }
            .expect("static headers are valid");
            return Box::pin(async move { Ok(response) });
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map(|response| response.map(Body::new)) })
    }
}
