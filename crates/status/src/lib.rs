//! How an Echo service says no: [`Failure`] (the one error every RPC answers with, mapped to a
//! gRPC status with its details: field violations, quota, retry info, error info),
//! [`Check`] (collecting every field violation of a request at once) and [`page`] (page sizes
//! and opaque page tokens), with the request id INTERNAL errors name.
//!
//! A crate of its own, apart from `echo_runtime` (the server: listeners, TLS, layers, health),
//! so that what only needs to speak errors — `echo_authn`, domain code, clients' tests — does
//! not depend on the server stack or the database (issue 18, crate layering).

mod check;
mod failure;
pub mod page;
pub mod request_id;

pub use check::Check;
pub use failure::{ERROR_DOMAIN, Failure, Violation};
pub use page::{Page, PageSize};
