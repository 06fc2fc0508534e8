//! [`ReceiptStore`] on postgres.

use async_trait::async_trait;

use super::PostgresMessageStore;
use crate::store::ReceiptStore;

#[async_trait]
impl ReceiptStore for PostgresMessageStore {}
