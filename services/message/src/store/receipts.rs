//! The read state part of the storage seam: read watermarks with the unread and mention
//! counters they reset, and per-device delivery receipts.

use async_trait::async_trait;

/// Read state storage (see the module doc).
#[async_trait]
pub trait ReceiptStore: Send + Sync {}
