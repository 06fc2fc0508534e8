//! The public edge. In `--target all` the services are mounted in-process on the edge's port
//! by the serving kit (`echo-runtime`). In split mode the edge forwards each gRPC path to the
//! processes that run its service: [`Forwarder`] is a streaming HTTP/2 byte proxy balanced
//! over every instance of each upstream, so unary calls, server streams and any future RPC
//! pass through without code per method, and a long-lived stream is never buffered.
//! [`EdgeLimits`] bounds what each client IP and each user may forward. See docs/edge.md.

mod balance;
mod body;
mod forward;
mod limits;
mod upstreams;

pub use balance::{Dns, Resolver};
pub use forward::{DEFAULT_MAX_REQUEST_BODY, ForwardOptions, Forwarder};
pub use limits::{EdgeLimits, LimitLayer, Limited};
pub use upstreams::{UpstreamError, service_name};

/// Answer a refused call with `status`, counted in `echo_edge_refused_total{reason}`.
pub(crate) fn refuse(
    reason: &'static str,
    status: tonic::Status,
) -> http::Response<tonic::body::Body> {
    metrics::counter!("echo_edge_refused_total", "reason" => reason).increment(1);
    status.into_http()
}
