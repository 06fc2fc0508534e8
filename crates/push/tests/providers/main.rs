//! Every provider against the fake push service: the wire format of a delivered push, each
//! scripted answer classified as spec §B3's table says, credentials re-minted once, and the
//! fake's own checks refusing what the real services refuse.

extern crate reqwest_push as reqwest;

mod apns;
mod common;
mod fcm;
mod unifiedpush;
mod webhook;
mod webpush;
