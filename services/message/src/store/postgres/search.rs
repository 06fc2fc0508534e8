//! [`SearchStore`] on postgres.

use async_trait::async_trait;

use super::PostgresMessageStore;
use crate::store::SearchStore;

#[async_trait]
impl SearchStore for PostgresMessageStore {}
