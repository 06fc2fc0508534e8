//! Live delivery end to end (MessageService.Subscribe and SetTyping, DESIGN §7) through the
//! generated gRPC client, on both backends, written from the contract in live.proto and
//! message_service.proto: fan-out to every device of every member, resume without loss or
//! duplicates, ResyncRequired for cursors that cannot be served, membership at the exact
//! seq, typing, receipts, and how streams end (too slow, replaced, revoked, shut down).
//!
//! Each journey lives in its own module under `tests/live/`.

mod common;

#[path = "live/delivery.rs"]
mod delivery;
#[path = "live/endings.rs"]
mod endings;
#[path = "live/membership.rs"]
mod membership;
#[path = "live/receipts.rs"]
mod receipts;
#[path = "live/resume.rs"]
mod resume;
#[path = "live/resync.rs"]
mod resync;
#[path = "live/slow.rs"]
mod slow;
#[path = "live/snapshots.rs"]
mod snapshots;
#[path = "live/typing.rs"]
mod typing;
