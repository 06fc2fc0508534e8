//! [`SearchStore`] on sqlite.

use async_trait::async_trait;

use super::SqliteMessageStore;
use crate::store::SearchStore;

#[async_trait]
impl SearchStore for SqliteMessageStore {}
