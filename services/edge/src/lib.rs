//! The public edge. In `--target all` the services are mounted in-process on the edge's port
//! by the serving kit (`echo-runtime`). In split mode the edge forwards each gRPC path to the
//! process that runs its service: [`Forwarder`] is a streaming HTTP/2 byte proxy, so unary
//! calls, server streams and any future RPC pass through without code per method, and a
//! long-lived stream is never buffered.

mod body;
mod forward;
mod upstreams;

pub use forward::Forwarder;
pub use upstreams::{UpstreamError, service_name};
