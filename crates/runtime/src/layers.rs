//! Response layers every target's public port uses.

mod decode_failures;
mod stream_shutdown;

pub use decode_failures::DecodeFailuresLayer;
pub use stream_shutdown::StreamShutdownLayer;
