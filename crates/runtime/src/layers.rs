//! Response layers every target's public port uses.

mod payload_limit;
mod stream_shutdown;

pub use payload_limit::PayloadLimitLayer;
pub use stream_shutdown::StreamShutdownLayer;
