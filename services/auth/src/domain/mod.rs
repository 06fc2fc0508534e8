//! AuthService's domain: parsed inputs, secrets handling, and the policies of DESIGN §5.

pub mod limits;
pub mod otp;
pub mod password;
pub mod refresh;
pub mod webhook;

/// Phone numbers are parsed by `echo_authn`, so every service normalises them alike.
pub use echo_authn::phone;
