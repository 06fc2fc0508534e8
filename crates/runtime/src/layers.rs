//! Response layers every target's public port uses, and how it leaves internal contracts out.

mod decode_failures;
mod internal_paths;
mod one_message;
mod stream_shutdown;

pub use decode_failures::DecodeFailuresLayer;
pub(crate) use internal_paths::public_api;
pub use internal_paths::{InternalPathsLayer, is_internal_path, is_internal_service};
pub use one_message::OneMessageLayer;
pub use stream_shutdown::StreamShutdownLayer;
