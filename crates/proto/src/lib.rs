//! Generated code for Echo's v1 API (`proto/`) and the descriptor set that server reflection
//! serves; the codec it uses (`codec`) is the one piece written by hand.

#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

pub mod codec;

include!(concat!(env!("OUT_DIR"), "/echo.rs"));

/// The encoded `FileDescriptorSet` of every Echo proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/echo_descriptor.bin"));

/// The full gRPC service names, as reflection lists them and as routes begin.
pub mod service_names {
    /// `echo.auth.v1.AuthService`.
    pub const AUTH: &str = "echo.auth.v1.AuthService";
    /// `echo.user.v1.UserService`.
    pub const USER: &str = "echo.user.v1.UserService";
    /// `echo.message.v1.MessageService`.
    pub const MESSAGE: &str = "echo.message.v1.MessageService";
    /// `echo.presence.v1.PresenceService`.
    pub const PRESENCE: &str = "echo.presence.v1.PresenceService";
    /// `echo.notification.v1.NotificationService`.
    pub const NOTIFICATION: &str = "echo.notification.v1.NotificationService";
}
