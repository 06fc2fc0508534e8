//! Contacts (the caller's one-sided address book), contact requests (mutual connections) and
//! blocks.

use chrono::Utc;
use echo_ids::{ContactRequestId, UserId};
use echo_runtime::Page;

use super::People;
use crate::error::UserError;
use crate::rules;
use crate::store::{
    BlockEntry, BlockPosition, ContactEntry, ContactPosition, ContactRequest, Direction,
    RequestState,
};
use crate::visibility::PublicView;

/// A contact request as the caller may see it, with the other party's view.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestView {
    /// The request; a silent decline shows its sender PENDING and no change time.
    pub request: ContactRequest,
    /// The other party (the recipient for the sender, the sender for the recipient).
    pub other: Option<PublicView>,
}

impl People {
    /// Adds (or renames) a contact.
    pub async fn add_contact(
        &self,
        owner: UserId,
        contact: UserId,
        alias: &str,
    ) -> Result<(ContactEntry, Option<PublicView>), UserError> {
        let entry = self
            .store
            .add_contact(owner, contact, alias, Utc::now(), rules::MAX_CONTACTS)
            .await?;
        let mut views = self.views_by_id(owner, &[contact]).await?;
        Ok((entry, views.remove(&contact)))
    }

    /// Renames a contact.
    pub async fn update_contact(
        &self,
        owner: UserId,
        contact: UserId,
        alias: &str,
    ) -> Result<(ContactEntry, Option<PublicView>), UserError> {
        let entry = self
            .store
            .update_contact(owner, contact, alias)
            .await?
            .ok_or(UserError::ContactNotFound)?;
        let mut views = self.views_by_id(owner, &[contact]).await?;
        Ok((entry, views.remove(&contact)))
    }

    /// Removes a contact (idempotent).
    pub async fn remove_contact(&self, owner: UserId, contact: UserId) -> Result<(), UserError> {
        self.store.remove_contact(owner, contact).await
    }

    /// One page of the caller's contacts, by shown name.
    pub async fn contacts(
        &self,
        owner: UserId,
        page: &Page<ContactPosition>,
    ) -> Result<(Vec<(ContactEntry, Option<PublicView>)>, String), UserError> {
        let entries = self
            .store
            .list_contacts(owner, page.after.as_ref(), page.fetch_limit())
            .await?;
        let (entries, token) = page.finish(entries, |entry| ContactPosition {
            sort_key: entry.sort_key.clone(),
            user_id: entry.user_id,
        });
        let contacts = self.with_views(owner, entries, |e| e.user_id).await?;
        Ok((contacts, token))
    }

    /// Asks `recipient` for a mutual connection.
    pub async fn send_request(
        &self,
        sender: UserId,
        recipient: UserId,
        message: &str,
    ) -> Result<RequestView, UserError> {
        self.limit(rules::CONTACT_REQUEST, sender).await?;
        let request = self
            .store
            .send_contact_request(
                ContactRequestId::new_v7(),
                sender,
                recipient,
                message,
                Utc::now(),
            )
            .await?;
        self.request_view(sender, request).await
    }

    /// Accepts a request addressed to the caller.
    pub async fn accept_request(
        &self,
        caller: UserId,
        id: ContactRequestId,
    ) -> Result<RequestView, UserError> {
        let request = self
            .store
            .accept_contact_request(caller, id, Utc::now())
            .await?
            .ok_or(UserError::ContactRequestNotFound)?;
        self.request_view(caller, request).await
    }

    /// Declines a pending request addressed to the caller (silently for its sender).
    pub async fn decline_request(
        &self,
        caller: UserId,
        id: ContactRequestId,
    ) -> Result<(), UserError> {
        let declined = self
            .store
            .decline_contact_request(caller, id, Utc::now())
            .await?;
        declined
            .then_some(())
            .ok_or(UserError::ContactRequestNotFound)
    }

    /// Withdraws a request the caller sent.
    pub async fn cancel_request(
        &self,
        caller: UserId,
        id: ContactRequestId,
    ) -> Result<(), UserError> {
        let cancelled = self
            .store
            .cancel_contact_request(caller, id, Utc::now())
            .await?;
        cancelled
            .then_some(())
            .ok_or(UserError::ContactRequestNotFound)
    }

    /// One page of the caller's open requests in `direction`, newest first.
    pub async fn requests(
        &self,
        caller: UserId,
        direction: Direction,
        page: &Page<ContactRequestId>,
    ) -> Result<(Vec<RequestView>, String), UserError> {
        let requests = self
            .store
            .list_contact_requests(caller, direction, page.after, page.fetch_limit())
            .await?;
        let (requests, token) = page.finish(requests, |request| request.id);
        let others: Vec<UserId> = requests.iter().map(|r| other_party(caller, r)).collect();
        let others = self.views_by_id(caller, &others).await?;
        let views = requests
            .into_iter()
            .map(|request| {
                let other = others.get(&other_party(caller, &request)).cloned();
                RequestView {
                    request: as_seen_by(caller, request),
                    other,
                }
            })
            .collect();
        Ok((views, token))
    }

    /// Blocks `blocked` (idempotent); the event goes out only for a new block.
    pub async fn block(&self, blocker: UserId, blocked: UserId) -> Result<(), UserError> {
        let event = crate::events::user_blocked(blocker, blocked);
        self.store
            .block(blocker, blocked, Utc::now(), &event)
            .await?;
        Ok(())
    }

    /// Lifts a block (idempotent).
    pub async fn unblock(&self, blocker: UserId, blocked: UserId) -> Result<(), UserError> {
        let event = crate::events::user_unblocked(blocker, blocked);
        self.store.unblock(blocker, blocked, &event).await?;
        Ok(())
    }

    /// One page of the users the caller blocked, newest first.
    pub async fn blocked(
        &self,
        blocker: UserId,
        page: &Page<BlockPosition>,
    ) -> Result<(Vec<(BlockEntry, Option<PublicView>)>, String), UserError> {
        let entries = self
            .store
            .list_blocked(blocker, page.after.as_ref(), page.fetch_limit())
            .await?;
        let (entries, token) = page.finish(entries, |entry| BlockPosition {
            blocked_at_micros: entry.blocked_at.timestamp_micros(),
            user_id: entry.user_id,
        });
        let blocked = self.with_views(blocker, entries, |e| e.user_id).await?;
        Ok((blocked, token))
    }

    /// Each item with the viewer's view of the user it names (None for unknown users).
    async fn with_views<T>(
        &self,
        viewer: UserId,
        items: Vec<T>,
        user_of: impl Fn(&T) -> UserId,
    ) -> Result<Vec<(T, Option<PublicView>)>, UserError> {
        let ids: Vec<UserId> = items.iter().map(&user_of).collect();
        let mut views = self.views_by_id(viewer, &ids).await?;
        Ok(items
            .into_iter()
            .map(|item| {
                let view = views.remove(&user_of(&item));
                (item, view)
            })
            .collect())
    }

    async fn request_view(
        &self,
        caller: UserId,
        request: ContactRequest,
    ) -> Result<RequestView, UserError> {
        let other_id = other_party(caller, &request);
        let mut views = self.views_by_id(caller, &[other_id]).await?;
        Ok(RequestView {
            other: views.remove(&other_id),
            request: as_seen_by(caller, request),
        })
    }
}

fn other_party(caller: UserId, request: &ContactRequest) -> UserId {
    if request.sender_id == caller {
        request.recipient_id
    } else {
        request.sender_id
    }
}

/// A decline is silent: its sender keeps seeing the request pending, unchanged since sent.
fn as_seen_by(caller: UserId, mut request: ContactRequest) -> ContactRequest {
    if request.sender_id == caller && request.state == RequestState::Declined {
        request.state = RequestState::Pending;
        request.updated_at = request.created_at;
    }
    request
}
