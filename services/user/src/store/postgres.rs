//! [`UserStore`] on PostgreSQL (a schema of its own).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_store::{PostgresDatabase, Tx};
use uuid::Uuid;

use super::{
    BlockEntry, BlockPosition, ContactEntry, ContactPosition, ContactRequest, Direction,
    PrivacyChange, Profile, ProfileChange, ProfileEvent, Registration, Relation, SearchHit,
    SearchPosition, StoreError, UserStore,
};

/// [`UserStore`] on PostgreSQL (a schema of its own).
#[derive(Clone)]
pub struct PostgresUserStore {
    db: PostgresDatabase,
    outbox: Outbox,
}

impl PostgresUserStore {
    /// The store on `db` (user and bus migrations applied), appending events to `outbox`.
    pub fn new(db: PostgresDatabase, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

#[async_trait]
impl UserStore for PostgresUserStore {
    async fn record_registration(
        &self,
        tx: &mut Tx,
        registration: &Registration,
    ) -> Result<(), StoreError> {
        todo!()
    }

    async fn erase_user(
        &self,
        tx: &mut Tx,
        user_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        todo!()
    }

    async fn profile(&self, user_id: Uuid) -> Result<Option<Profile>, StoreError> {
        todo!()
    }

    async fn profiles(&self, user_ids: &[Uuid]) -> Result<Vec<Profile>, StoreError> {
        todo!()
    }

    async fn profile_by_phone(&self, phone_number: &str) -> Result<Option<Profile>, StoreError> {
        todo!()
    }

    async fn update_profile(
        &self,
        user_id: Uuid,
        change: &ProfileChange,
        at: DateTime<Utc>,
        event: ProfileEvent<'_>,
    ) -> Result<Profile, StoreError> {
        todo!()
    }

    async fn update_privacy(
        &self,
        user_id: Uuid,
        change: &PrivacyChange,
        at: DateTime<Utc>,
    ) -> Result<Profile, StoreError> {
        todo!()
    }

    async fn relations(
        &self,
        viewer: Uuid,
        others: &[Uuid],
    ) -> Result<HashMap<Uuid, Relation>, StoreError> {
        todo!()
    }

    async fn search(
        &self,
        viewer: Uuid,
        prefix: &str,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        todo!()
    }

    async fn add_contact(
        &self,
        owner: Uuid,
        contact: Uuid,
        alias: &str,
        at: DateTime<Utc>,
        max_contacts: u32,
    ) -> Result<ContactEntry, StoreError> {
        todo!()
    }

    async fn update_contact(
        &self,
        owner: Uuid,
        contact: Uuid,
        alias: &str,
    ) -> Result<Option<ContactEntry>, StoreError> {
        todo!()
    }

    async fn remove_contact(&self, owner: Uuid, contact: Uuid) -> Result<(), StoreError> {
        todo!()
    }

    async fn list_contacts(
        &self,
        owner: Uuid,
        after: Option<&ContactPosition>,
        limit: usize,
    ) -> Result<Vec<ContactEntry>, StoreError> {
        todo!()
    }

    async fn send_contact_request(
        &self,
        id: Uuid,
        sender: Uuid,
        recipient: Uuid,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<ContactRequest, StoreError> {
        todo!()
    }

    async fn contact_request(&self, id: Uuid) -> Result<Option<ContactRequest>, StoreError> {
        todo!()
    }

    async fn accept_contact_request(
        &self,
        recipient: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactRequest>, StoreError> {
        todo!()
    }

    async fn decline_contact_request(
        &self,
        recipient: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        todo!()
    }

    async fn cancel_contact_request(
        &self,
        sender: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        todo!()
    }

    async fn list_contact_requests(
        &self,
        user: Uuid,
        direction: Direction,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ContactRequest>, StoreError> {
        todo!()
    }

    async fn block(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<bool, StoreError> {
        todo!()
    }

    async fn unblock(&self, blocker: Uuid, blocked: Uuid, event: &Event)
    -> Result<bool, StoreError> {
        todo!()
    }

    async fn list_blocked(
        &self,
        blocker: Uuid,
        after: Option<&BlockPosition>,
        limit: usize,
    ) -> Result<Vec<BlockEntry>, StoreError> {
        todo!()
    }
}
