//! The caller's own state in a conversation (private settings, read watermark, delivery receipts)
//! and the receipts of others.

use crate::conversations::Conversations;

impl Conversations {}
