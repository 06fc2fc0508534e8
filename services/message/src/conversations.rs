//! MessageService's journeys: conversations and messages. Inputs arrive validated (`api`);
//! this layer decides what a member may read (history from their join on) and shapes pages.
//! What must hold at the moment of a write (membership, roles, blocks, sequences) is checked
//! by the store inside the write's transaction.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use echo_cache::Limits;
use echo_proto::echo::message::v1 as pb;
use echo_runtime::Page;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::MessageError;
use crate::store::{
    Actor, Conversation, ConversationPosition, ListFilter, Member, Message, MessageStore,
    NewConversation, NewMessage, Sent, SeqWindow,
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
    pub last_message: Option<pb::Message>,
}

impl ConversationView {
    /// The other user of a direct conversation.
    pub fn peer(&self) -> Option<Uuid> {
        let (a, b) = self.conversation.direct_pair?;
        Some(if a == self.member.user_id { b } else { a })
    }
}

/// Where a history page is anchored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The newest messages (no anchor given).
    Latest,
    /// Older than this seq.
    Before(i64),
    /// Newer than this seq.
    After(i64),
    /// Centred on this message.
    Around(Uuid),
}

/// The position a history token continues from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPosition {
    /// The conversation the token belongs to.
    pub conversation_id: Uuid,
    /// True when paging towards older messages.
    pub older: bool,
    /// The exclusive bound to continue from.
    pub seq: i64,
}

/// One page of history, in ascending seq order.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    /// The messages.
    pub messages: Vec<Message>,
    /// Continues in the anchor's direction.
    pub next_page_token: String,
    /// Older visible messages exist.
    pub has_more_before: bool,
    /// Newer visible messages exist.
    pub has_more_after: bool,
}

/// The message service's rules over its store.
pub struct Conversations {
    pub(crate) store: Arc<MessageStore>,
    /// SendMessage's group commit (many sends, one transaction).
    pub(crate) sends: crate::sending::SendQueue,
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
        peer: Uuid,
    ) -> Result<(ConversationView, bool), MessageError> {
        let (conversation, created) = self
            .store
            .create_direct(actor, peer, Uuid::now_v7(), Utc::now())
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
    pub async fn get(&self, caller: Uuid, id: Uuid) -> Result<ConversationView, MessageError> {
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
        caller: Uuid,
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
        let last_ids: Vec<Uuid> = rows
            .iter()
            .filter_map(|(conversation, _)| conversation.last_message_id)
            .collect();
        let mut last: HashMap<Uuid, Message> = self
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

    /// Sends a message (or returns the one an earlier try with this key stored).
    pub async fn send(&self, actor: Actor, new: NewMessage) -> Result<pb::Message, MessageError> {
        self.limits
            .take(&[(crate::rules::SEND, &actor.user_id.to_string())])
            .await
            .map_err(MessageError::RateLimited)?;
        match self.sends.send(actor, new, Utc::now()).await? {
            // Nothing lives beside a message stored just now (no reactions, pin or deletion
            // yet), so the hot path skips the reader lookups of `present`.
            Sent::Created(message) => Ok(crate::convert::message_for(&message, actor.user_id)),
            Sent::Repeated(message) => {
                let seen = self.present(actor.user_id, &[message]).await?;
                Ok(seen.into_iter().next().expect("one message in, one out"))
            }
        }
    }

    /// One message the caller may see.
    pub async fn message(
        &self,
        caller: Uuid,
        conversation: Uuid,
        id: Uuid,
    ) -> Result<Message, MessageError> {
        let member = self.current_member(conversation, caller).await?;
        self.store
            .message(conversation, id)
            .await?
            .filter(|m| m.seq > member.joined_at_seq)
            .ok_or(MessageError::MessageNotFound)
    }

    /// One page of history the caller may see.
    pub async fn history(
        &self,
        caller: Uuid,
        conversation: Uuid,
        anchor: Anchor,
        page: &Page<HistoryPosition>,
        top_level_only: bool,
    ) -> Result<History, MessageError> {
        let member = self.current_member(conversation, caller).await?;
        let floor = member.joined_at_seq;
        let window = |after: i64, before: i64, newest_first: bool, limit: usize| SeqWindow {
            after: after.max(floor),
            before,
            newest_first,
            limit,
            top_level_only,
        };
        let newest_page = anchor == Anchor::Latest && page.after.is_none();
        let older = match &anchor {
            Anchor::Latest | Anchor::Before(_) => Some(true),
            Anchor::After(_) => Some(false),
            Anchor::Around(_) => None,
        };
        if let Some(position) = &page.after
            && (position.conversation_id != conversation || Some(position.older) != older)
        {
            return Err(MessageError::Invalid(vec![echo_runtime::Violation::new(
                "page_token",
                "belongs to another conversation or direction",
            )]));
        }
        let mut messages = match anchor {
            Anchor::Latest | Anchor::Before(_) => {
                let before = match (&page.after, anchor) {
                    (Some(position), _) => position.seq,
                    (None, Anchor::Before(seq)) => seq,
                    _ => i64::MAX,
                };
                let mut newest = self
                    .store
                    .messages(
                        conversation,
                        window(floor, before, true, page.fetch_limit()),
                    )
                    .await?;
                newest.reverse();
                newest
            }
            Anchor::After(seq) => {
                let after = page.after.as_ref().map_or(seq, |p| p.seq);
                self.store
                    .messages(
                        conversation,
                        window(after, i64::MAX, false, page.fetch_limit()),
                    )
                    .await?
            }
            Anchor::Around(id) => {
                let centre = self.message(caller, conversation, id).await?;
                let half = page.size / 2;
                let mut older = self
                    .store
                    .messages(conversation, window(floor, centre.seq, true, half))
                    .await?;
                older.reverse();
                // Fill the page with newer messages when fewer older ones exist.
                let room = page.size.saturating_sub(older.len() + 1);
                let newer = self
                    .store
                    .messages(conversation, window(centre.seq, i64::MAX, false, room))
                    .await?;
                older.push(centre);
                older.extend(newer);
                older
            }
        };
        // One extra was fetched in the paging direction to learn whether more remain.
        let more = messages.len() > page.size;
        match older {
            Some(true) if more => drop(messages.remove(0)),
            Some(false) if more => drop(messages.pop()),
            _ => {}
        }
        let token = match (older, more) {
            (Some(older), true) => {
                let edge = if older {
                    messages.first()
                } else {
                    messages.last()
                };
                edge.map(|m| {
                    echo_runtime::page::encode(&HistoryPosition {
                        conversation_id: conversation,
                        older,
                        seq: m.seq,
                    })
                })
                .unwrap_or_default()
            }
            _ => String::new(),
        };
        let (first, last) = match (messages.first(), messages.last()) {
            (Some(first), Some(last)) => (first.seq, last.seq),
            _ => {
                return Ok(History {
                    messages,
                    next_page_token: token,
                    has_more_before: false,
                    has_more_after: false,
                });
            }
        };
        // In the paging direction the extra row fetched already answers; the newest page has
        // nothing after it; only the other direction needs a look.
        let has_more_before = match older {
            Some(true) => more,
            _ => {
                self.any(conversation, window(floor, first, true, 1))
                    .await?
            }
        };
        let has_more_after = match older {
            Some(false) => more,
            Some(true) if newest_page => false,
            _ => {
                self.any(conversation, window(last, i64::MAX, false, 1))
                    .await?
            }
        };
        Ok(History {
            messages,
            next_page_token: token,
            has_more_before,
            has_more_after,
        })
    }

    async fn any(&self, conversation: Uuid, window: SeqWindow) -> Result<bool, MessageError> {
        Ok(!self.store.messages(conversation, window).await?.is_empty())
    }

    pub(crate) async fn current_member(
        &self,
        conversation: Uuid,
        user: Uuid,
    ) -> Result<Member, MessageError> {
        self.store
            .member(conversation, user)
            .await?
            .filter(Member::is_current)
            .ok_or(MessageError::ConversationNotFound)
    }

    async fn view(
        &self,
        caller: Uuid,
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
