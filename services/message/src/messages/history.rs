//! Reading messages: one message, and history pages around an anchor (DESIGN §6), as one
//! reader sees them (history from their join on), and sending through the group-commit queue.

use chrono::Utc;
use echo_ids::{ConversationId, MessageId, UserId};
use echo_runtime::Page;
use serde::{Deserialize, Serialize};

use crate::conversations::Conversations;
use crate::error::MessageError;
use crate::reading::Seen;
use crate::store::{Actor, Message, NewMessage, Sent, SeqWindow};

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
    Around(MessageId),
}

/// The position a history token continues from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPosition {
    /// The conversation the token belongs to.
    pub conversation_id: ConversationId,
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

impl Conversations {
    /// Sends a message (or returns the one an earlier try with this key stored).
    pub async fn send(&self, actor: Actor, new: NewMessage) -> Result<Seen, MessageError> {
        self.limits
            .take(&[(crate::rules::SEND, &actor.user_id.to_string())])
            .await
            .map_err(MessageError::RateLimited)?;
        match self.sends.send(actor, new, Utc::now()).await? {
            // Nothing lives beside a message stored just now (no reactions, pin or deletion
            // yet), so the hot path skips the reader lookups of `present`.
            Sent::Created(message) => Ok(Seen::fresh(message, actor.user_id)),
            Sent::Repeated(message) => {
                let seen = self.present(actor.user_id, &[message]).await?;
                Ok(seen.into_iter().next().expect("one message in, one out"))
            }
        }
    }

    /// One message the caller may see.
    pub async fn message(
        &self,
        caller: UserId,
        conversation: ConversationId,
        id: MessageId,
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
        caller: UserId,
        conversation: ConversationId,
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

    async fn any(
        &self,
        conversation: ConversationId,
        window: SeqWindow,
    ) -> Result<bool, MessageError> {
        Ok(!self.store.messages(conversation, window).await?.is_empty())
    }
}
