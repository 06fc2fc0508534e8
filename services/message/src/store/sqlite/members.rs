//! [`MemberStore`] on sqlite.

use async_trait::async_trait;

use super::SqliteMessageStore;
use crate::store::MemberStore;

#[async_trait]
impl MemberStore for SqliteMessageStore {}
