//! The notification pipeline end to end, on both backends: messages sent through the public
//! API reach a fake push service (which checks every request as FCM and APNs would) according
//! to spec §B2's decision table, with inbox entries, badges, dismisses, retries, pruning and
//! erasure. Each test starts its own fake and mesh.

#[path = "push_delivery/badge.rs"]
mod badge;
#[path = "push_delivery/channel.rs"]
mod channel;
mod common;
#[path = "push_delivery/decisions.rs"]
mod decisions;
#[path = "push_delivery/dispatch.rs"]
mod dispatch;
#[path = "push_delivery/helpers.rs"]
mod helpers;
#[path = "push_delivery/unifiedpush.rs"]
mod unifiedpush;
