//! The membership part of the storage seam: adding, removing and leaving, roles, each
//! member's private settings, invites, and changes to a conversation's shared fields.

use async_trait::async_trait;

/// Membership storage (see the module doc).
#[async_trait]
pub trait MemberStore: Send + Sync {}
