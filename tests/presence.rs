//! PresenceService end to end through generated gRPC clients, on both backends: heartbeats
//! and the aggregation rules, manual statuses, GetPresence and WatchPresence with the
//! visibility rules (live flips included), stream caps, revocation, bad input, Subscribe
//! streams keeping devices present, and (real backends) two instances.

mod common;
#[path = "presence/helpers.rs"]
mod helpers;
#[path = "presence/rpcs.rs"]
mod rpcs;
#[path = "presence/visibility.rs"]
mod visibility;
#[path = "presence/watch.rs"]
mod watch;
