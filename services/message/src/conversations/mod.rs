//! Conversations: creating (direct, group, channel), reading, listing and updating them, and
//! [`Conversations`], the service's state (store, send queue, limits, live delivery) that every
//! feature's journeys extend in their own `impl` block. Inputs arrive validated (`api`); the
//! journeys decide what a member may read (from their join on) and shape pages. What must hold
//! at the moment of a write (membership, roles, blocks, sequences) is checked by the store
//! inside the write's transaction.
//!
//! The feature's folder: `api` (conversation_api.proto: proto ⇄ domain), this module (the
//! journeys), `store` (creation), `store_list` (the reads and the list), `store_update`
//! (UpdateConversation and who may apply it), written once for both backends, and `events`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use echo_cache::Limits;
use echo_ids::{ConversationId, MessageId, UserId};
use echo_runtime::Page;

pub(crate) mod api;
pub(crate) mod events;
pub(crate) mod store;
pub(crate) mod store_list;
pub(crate) mod store_update;

use crate::error::MessageError;
use crate::reading::Seen;
use crate::store::{
    Actor, Conversation, ConversationPosition, ConversationUpdate, ListFilter, Member, Message,
    MessageStore, NewConversation,
};

/// A conversation as one member sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationView {
    /// The conversation.
    pub conversation: Conversation,
    /// The caller's member row.
    pub member: Member,
    /// The newest message the caller may see, as they see it (a DELETED_FOR_ME tombstone
    /// when they deleted it for themselves; see [`Conversations::present`]).
    pub last_message: Option<Seen>,
}

impl ConversationView {
    /// The other user of a direct conversation.
    pub fn peer(&self) -> Option<UserId> {
        let (a, b) = self.conversation.direct_pair?;
        Some(if a == self.member.user_id { b } else { a })
    }
}

/// The message service's rules over its store.
pub struct Conversations {
    pub(crate) store: Arc<MessageStore>,
    /// SendMessage's group commit (many sends, one transaction).
    pub(crate) sends: crate::messages::sending::SendQueue,
    /// Per-user rate limits (sending, joining by invite code).
    pub(crate) limits: Limits,
    /// How long after sending a message its sender may edit it.
    pub(crate) edit_window: chrono::Duration,
    /// Live delivery: streams, and the ephemeral items (typing, receipts) beside them.
    pub(crate) live: crate::live::Live,
}

impl Conversations {
    /// The direct conversation with `peer`, created on first call.
    pub async fn direct(
        &self,
        actor: Actor,
        peer: UserId,
    ) -> Result<(ConversationView, bool), MessageError> {
        let (conversation, created) = self
            .store
            .create_direct(actor, peer, ConversationId::new_v7(), Utc::now())
            .await?;
        Ok((self.view(actor.user_id, conversation).await?, created))
    }

    /// A new group or channel (or the one this request created before).
    pub async fn create(
        &self,
        actor: Actor,
        new: NewConversation,
    ) -> Result<(ConversationView, bool), MessageError> {
        let (conversation, created) = self
            .store
            .create_conversation(actor, &new, Utc::now())
            .await?;
        Ok((self.view(actor.user_id, conversation).await?, created))
    }

    /// One conversation the caller belongs to.
    pub async fn get(
        &self,
        caller: UserId,
        id: ConversationId,
    ) -> Result<ConversationView, MessageError> {
        let conversation = self
            .store
            .conversation(id)
            .await?
            .ok_or(MessageError::ConversationNotFound)?;
        self.view(caller, conversation).await
    }

    /// The caller's conversations, newest activity first.
    pub async fn list(
        &self,
        caller: UserId,
        filter: ListFilter,
        page: &Page<ConversationPosition>,
    ) -> Result<(Vec<ConversationView>, String), MessageError> {
        let rows = self
            .store
            .list_conversations(caller, filter, page.after.as_ref(), page.fetch_limit())
            .await?;
        let (rows, token) = page.finish(rows, |(conversation, _)| ConversationPosition {
            last_activity_micros: conversation.last_activity_at.timestamp_micros(),
            conversation_id: conversation.id,
        });
        let last_ids: Vec<MessageId> = rows
            .iter()
            .filter_map(|(conversation, _)| conversation.last_message_id)
            .collect();
        let mut last: HashMap<MessageId, Message> = self
            .store
            .messages_by_id(&last_ids)
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        let visible: Vec<Option<Message>> = rows
            .iter()
            .map(|(conversation, member)| {
                conversation
                    .last_message_id
                    .and_then(|id| last.remove(&id))
                    .filter(|m| m.seq > member.joined_at_seq)
            })
            .collect();
        // All previews in one pass through what the caller sees (deleted for them, reactions,
        // pins), exactly as history shows the same messages.
        let shown: Vec<Message> = visible.iter().flatten().cloned().collect();
        let mut presented = self.present(caller, &shown).await?.into_iter();
        let views = rows
            .into_iter()
            .zip(visible)
            .map(|((conversation, member), last)| ConversationView {
                conversation,
                member,
                last_message: last.and_then(|_| presented.next()),
            })
            .collect();
        Ok((views, token))
    }

    /// Changes a group's or channel's shared fields; the conversation after, as the caller
    /// sees it.
    pub async fn update_conversation(
        &self,
        actor: Actor,
        id: ConversationId,
        update: ConversationUpdate,
    ) -> Result<ConversationView, MessageError> {
        self.store
            .update_conversation(actor, id, &update, Utc::now())
            .await?;
        self.get(actor.user_id, id).await
    }

    pub(crate) async fn current_member(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<Member, MessageError> {
        self.store
            .member(conversation, user)
            .await?
            .filter(Member::is_current)
            .ok_or(MessageError::ConversationNotFound)
    }

    pub(crate) async fn view(
        &self,
        caller: UserId,
        conversation: Conversation,
    ) -> Result<ConversationView, MessageError> {
        let member = self.current_member(conversation.id, caller).await?;
        let last = match conversation.last_message_id {
            Some(id) => self
                .store
                .message(conversation.id, id)
                .await?
                .filter(|m| m.seq > member.joined_at_seq),
            None => None,
        };
        let last_message = self
            .present(caller, last.as_slice())
            .await?
            .into_iter()
            .next();
        Ok(ConversationView {
            conversation,
            member,
            last_message,
        })
    }
}
