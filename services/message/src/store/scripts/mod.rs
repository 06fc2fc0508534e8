//! [`MessageDb`]: MessageService's storage written once over both backends (STYLE 15), one
//! transaction script per operation over the shared primitives of [`super::codec`].
//!
//! Being rewritten part by part (issue 18): a part whose file still delegates to `legacy`
//! runs the old per-backend store (`super::postgres`, `super::sqlite`), so every step keeps
//! the conformance suite green on both backends.

mod core;
mod edits;
mod live;
mod members;
mod reactions;
mod receipts;
mod search;

use std::sync::Arc;

use echo_bus::Outbox;
use echo_store::Database;

use super::MessageStore;

/// MessageService's storage: the database and the outbox its changes publish through (whose
/// database is the same, so each change and its events commit together).
pub struct MessageDb {
    #[allow(dead_code)] // until the first part is rewritten
    pub(crate) db: Database,
    #[allow(dead_code)]
    pub(crate) outbox: Outbox,
    /// The per-backend store the parts not yet rewritten delegate to.
    legacy: Arc<dyn MessageStore>,
}

impl MessageDb {
    /// The store on `db` (message and bus migrations applied), appending events to `outbox`.
    pub fn new(db: Database, outbox: Outbox, legacy: Arc<dyn MessageStore>) -> Self {
        Self { db, outbox, legacy }
    }
}
