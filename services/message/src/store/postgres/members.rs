//! [`MemberStore`] on postgres.

use async_trait::async_trait;

use super::PostgresMessageStore;
use crate::store::MemberStore;

#[async_trait]
impl MemberStore for PostgresMessageStore {}
