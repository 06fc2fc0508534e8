//! [`MessageStore`]: MessageService's storage written once over both backends (STYLE 15): one
//! transaction script per operation, in the file of its part (`core` with `conversations`,
//! `messages` and `sending`; `members` with `invites`; `edits` with `deletes`; `reactions`
//! with `pins`; `receipts`; `search`; `live`), over the shared encodings and primitives of
//! [`super::codec`]. Where a part keeps dialect-specific SQL (PostgreSQL's write-order locks
//! and set-based statements on the send path, full-text search), the spot says why.

mod core;
mod edits;
mod live;
mod members;
mod reactions;
mod receipts;
mod search;

use echo_bus::Outbox;
use echo_store::Database;

/// MessageService's storage: the database and the outbox its changes publish through (whose
/// database is the same, so each change and its events commit together).
pub struct MessageStore {
    pub(crate) db: Database,
    pub(crate) outbox: Outbox,
}

impl MessageStore {
    /// The store on `db` (message and bus migrations applied), appending events to `outbox`.
    pub fn new(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}
