//! AuthService's domain: parsed inputs, secrets handling, and the policies of DESIGN §5.

pub mod limits;
pub mod otp;
pub mod password;
pub mod phone;
pub mod refresh;
pub mod webhook;
