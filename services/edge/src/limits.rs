//! Limits on forwarded calls: a token bucket per client IP (checked before authentication, so
//! a flood of bad tokens is limited too), a token bucket per user and a cap on each user's open
//! server streams (checked after it, on the verified [`Caller`]). A refusal is
//! RESOURCE_EXHAUSTED with an ErrorInfo reason (`RATE_LIMITED` with RetryInfo, or
//! `LIMIT_EXCEEDED` for streams) and counts in `echo_edge_refused_total{reason}`.
//!
//! The buckets are `governor`'s, per edge instance: a check costs no network round trip and
//! cannot fail when Redis is away, at the price that N edges allow N times the rate (the
//! services' own Redis-backed limits on costly calls, e.g. OTP, stay shared).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use echo_authn::Caller;
use echo_config::EdgeSettings;
use echo_runtime::Failure;
use futures::future::BoxFuture;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use ipnet::IpNet;
use pin_project_lite::pin_project;
use prost::Message as _;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use uuid::Uuid;

/// How many checks pass between sweeps of idle buckets (a full bucket is forgotten).
const SWEEP_EVERY: u64 = 4096;

/// The edge's limits, shared by every forwarded service. Cheap to clone.
#[derive(Clone)]
pub struct EdgeLimits {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EdgeLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeLimits")
            .field("user_streams", &self.shared.user_streams)
            .finish_non_exhaustive()
    }
}

struct Shared {
    trusted_proxies: Vec<IpNet>,
    by_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    by_user: Option<DefaultKeyedRateLimiter<Uuid>>,
    user_streams: u32,
    open_streams: Mutex<HashMap<Uuid, u32>>,
    /// Paths of the server-streaming methods (from Echo's descriptor set).
    streaming: HashSet<String>,
    checks: AtomicU64,
}

impl EdgeLimits {
    /// Limits from `settings`; the client IP is read from `x-forwarded-for` when the peer is
    /// in `trusted_proxies`.
    pub fn new(settings: &EdgeSettings, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            shared: Arc::new(Shared {
                trusted_proxies,
                by_ip: limiter(settings.ip_calls_per_second, settings.ip_burst),
                by_user: limiter(settings.user_calls_per_second, settings.user_burst),
                user_streams: settings.user_streams,
                open_streams: Mutex::new(HashMap::new()),
                streaming: streaming_methods(),
                checks: AtomicU64::new(0),
            }),
        }
    }

    /// The layer that goes before authentication: the per-IP bucket.
    pub fn per_ip(&self) -> LimitLayer {
        LimitLayer {
            limits: self.clone(),
            stage: Stage::Ip,
        }
    }

    /// The layer that goes after authentication: the per-user bucket and stream cap (a call
    /// without a [`Caller`], e.g. auth's public methods, is limited per IP only).
    pub fn per_user(&self) -> LimitLayer {
        LimitLayer {
            limits: self.clone(),
            stage: Stage::User,
        }
    }

    fn sweep_now_and_then(&self) {
        if self.shared.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            if let Some(limiter) = &self.shared.by_ip {
                limiter.retain_recent();
            }
            if let Some(limiter) = &self.shared.by_user {
                limiter.retain_recent();
            }
        }
    }

    /// The refusal for `request` at the IP stage, if any.
    fn check_ip(&self, request: &Request<Body>) -> Option<Response<Body>> {
        let limiter = self.shared.by_ip.as_ref()?;
        self.sweep_now_and_then();
        let ip = client_ip(request, &self.shared.trusted_proxies)?;
        let wait = take(limiter, &ip)?;
        tracing::debug!(%ip, ?wait, "client ip over its rate");
        Some(crate::refuse("ip_rate", rate_limited("edge.ip", wait)))
    }

    /// The refusal for `request` at the user stage, or the stream slot it holds.
    fn check_user(
        &self,
        request: &Request<Body>,
    ) -> Result<Option<StreamSlot>, Box<Response<Body>>> {
        let Some(caller) = request.extensions().get::<Caller>() else {
            return Ok(None);
        };
        // The limiters are keyed by plain UUIDs: the edge speaks no domain vocabulary.
        let user = Uuid::from(caller.user_id);
        if let Some(limiter) = &self.shared.by_user
            && let Some(wait) = take(limiter, &user)
        {
            tracing::debug!(%user, ?wait, "user over their rate");
            return Err(Box::new(crate::refuse(
                "user_rate",
                rate_limited("edge.user", wait),
            )));
        }
        if self.shared.user_streams == 0 || !self.shared.streaming.contains(request.uri().path()) {
            return Ok(None);
        }
        let mut open = self
            .shared
            .open_streams
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user).or_default();
        if *count >= self.shared.user_streams {
            drop(open);
            let cap = self.shared.user_streams;
            tracing::debug!(%user, cap, "user at their stream cap");
            let status = Failure::limit_exceeded(
                "edge.user_streams",
                format!("at most {cap} streams may be open at once; close one first"),
            );
            return Err(Box::new(crate::refuse("user_streams", status.into())));
        }
        *count += 1;
        Ok(Some(StreamSlot {
            limits: self.clone(),
            user,
        }))
    }
}

/// A keyed bucket of `rate` calls a second holding `burst`; none when `rate` is 0 (off).
fn limiter<K: std::hash::Hash + Eq + Clone>(
    rate: u32,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst.max(rate.get())).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

/// Take a token from `key`'s bucket; how long until one is free when there is none.
fn take<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Option<Duration> {
    match limiter.check_key(key) {
        Ok(()) => None,
        Err(not_until) => Some(not_until.wait_time_from(DefaultClock::default().now())),
    }
}

/// RESOURCE_EXHAUSTED `RATE_LIMITED` with RetryInfo; `limit` names the bucket.
fn rate_limited(limit: &'static str, wait: Duration) -> tonic::Status {
    // At least a millisecond: a zero delay would invite a retry that meets the same refusal.
    let wait = wait.max(Duration::from_millis(1));
    Failure::Reason {
        code: tonic::Code::ResourceExhausted,
        reason: "RATE_LIMITED",
        message: "too many requests; retry later".into(),
        retry_after: Some(wait),
        metadata: vec![("limit", limit.to_owned())],
    }
    .into()
}

/// The client's IP, by the same trusted-proxy rule as the services (`echo_runtime`).
fn client_ip(request: &Request<Body>, trusted: &[IpNet]) -> Option<IpAddr> {
    let mut probe = tonic::Request::new(());
    if let Some(info) = request.extensions().get::<TcpConnectInfo>() {
        probe.extensions_mut().insert(info.clone());
    }
    if let Some(forwarded) = request.headers().get("x-forwarded-for") {
        probe
            .metadata_mut()
            .insert("x-forwarded-for", forwarded.as_bytes().try_into().ok()?);
    }
    echo_runtime::client_ip(&probe, trusted)
}

/// Every server-streaming method's path in Echo's descriptor set.
fn streaming_methods() -> HashSet<String> {
    let set = prost_types::FileDescriptorSet::decode(echo_proto::FILE_DESCRIPTOR_SET)
        .expect("the embedded descriptor set is valid");
    set.file
        .iter()
        .flat_map(|file| {
            file.service.iter().flat_map(move |service| {
                service
                    .method
                    .iter()
                    .filter(|method| method.server_streaming())
                    .map(move |method| {
                        format!("/{}.{}/{}", file.package(), service.name(), method.name())
                    })
            })
        })
        .collect()
}

/// One open stream of a user, released when its response body ends or is dropped.
struct StreamSlot {
    limits: EdgeLimits,
    user: Uuid,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .shared
            .open_streams
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// Which limits a [`Limited`] service checks.
#[derive(Clone, Copy, Debug)]
enum Stage {
    Ip,
    User,
}

/// Builds [`Limited`] services.
#[derive(Clone, Debug)]
pub struct LimitLayer {
    limits: EdgeLimits,
    stage: Stage,
}

impl<S> tower::Layer<S> for LimitLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            limits: self.limits.clone(),
            stage: self.stage,
        }
    }
}

/// A service behind the edge's limits. See [`EdgeLimits`].
#[derive(Clone, Debug)]
pub struct Limited<S> {
    inner: S,
    limits: EdgeLimits,
    stage: Stage,
}

impl<S> tower::Service<Request<Body>> for Limited<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let slot = match self.stage {
            Stage::Ip => match self.limits.check_ip(&request) {
                Some(refusal) => return Box::pin(async move { Ok(refusal) }),
                None => None,
            },
            Stage::User => match self.limits.check_user(&request) {
                Ok(slot) => slot,
                Err(refusal) => return Box::pin(async move { Ok(*refusal) }),
            },
        };
        // `self.inner` was polled ready, so it serves this call (tower's readiness contract).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(match slot {
                Some(slot) => response.map(|body| Body::new(Holding { inner: body, slot })),
                None => response,
            })
        })
    }
}

pin_project! {
    /// A response body that keeps its stream's slot until it ends.
    struct Holding {
        #[pin]
        inner: Body,
        slot: StreamSlot,
    }
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
