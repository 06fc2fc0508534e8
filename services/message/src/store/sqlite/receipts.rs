//! [`ReceiptStore`] on sqlite.

use async_trait::async_trait;

use super::SqliteMessageStore;
use crate::store::ReceiptStore;

#[async_trait]
impl ReceiptStore for SqliteMessageStore {}
