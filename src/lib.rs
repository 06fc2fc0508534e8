//! Echo's composition root: configuration → backends → targets. `main.rs` calls [`run`]; the
//! testkit calls [`Mesh::start`] with listeners on 127.0.0.1:0, so tests run exactly what
//! operators run.

mod identity;
mod mesh;
mod push;
mod signing_keys;

pub use identity::Identity;
pub use mesh::{Backends, Mesh, Overrides, migrate, serves_internal_contracts};
