//! Reactions and pins: the emoji rule, the caps, and the journeys over the store. What must
//! hold at write time (membership, visibility, role, block, caps, seqs) is checked by the
//! store inside the write's transaction; reads check membership and visibility here.
//!
//! The feature's folder: `api` (AddReaction … ListPins: proto ⇄ domain), this module (the
//! journeys, the emoji rule, the caps, who may pin), `store` with `store_pins` (the
//! transaction scripts, written once for both backends) and `events` (the outbox events).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_runtime::{Check, Page, PageSize};
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

pub(crate) mod api;
pub(crate) mod events;
mod store;

use crate::conversations::Conversations;
use crate::error::MessageError;
use crate::reading::Seen;
use crate::store::{Actor, Kind, Message, Role};

/// Most distinct emojis one user may put on one message.
pub const MAX_EMOJIS_PER_USER: i64 = 20;
/// Most pinned messages in one conversation.
pub const MAX_PINS: i64 = 50;
/// Longest emoji, in UTF-8 bytes (the longest standard ZWJ sequences are 35 bytes; those of
/// common use fit).
pub const MAX_EMOJI_BYTES: usize = 32;
/// Reaction lists.
pub const REACTION_PAGE: PageSize = PageSize {
    default: 100,
    max: 500,
};
/// Pin lists (the cap fits one page).
pub const PIN_PAGE: PageSize = PageSize {
    default: 50,
    max: 50,
};
/// Reaction and pin writes per user: generous for people, a brake on scripts toggling a
/// reaction to flood every member's stream with events.
pub const REACT: echo_cache::Rule =
    echo_cache::Rule::per("message.react", 120, std::time::Duration::from_secs(10));

/// One user's reaction to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaction {
    /// The message.
    pub message_id: MessageId,
    /// Who reacted.
    pub user_id: UserId,
    /// With which emoji.
    pub emoji: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Where a page of reactions continues: after this one (pages are oldest first by
/// (created_at, user_id, emoji)). The message and the emoji filter are part of it, so a token
/// cannot be replayed against another list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionPosition {
    /// The message listed.
    pub message_id: MessageId,
    /// The filter the list was asked with.
    pub filter: Option<String>,
    /// The last reaction's time, unix microseconds.
    pub created_micros: i64,
    /// The last reaction's user.
    pub user_id: UserId,
    /// The last reaction's emoji.
    pub emoji: String,
}

/// A pinned message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The message.
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Who pinned it.
    pub pinned_by: UserId,
    /// When.
    pub pinned_at: DateTime<Utc>,
}

/// A pin with its message as the reader sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Pinned {
    /// The pin.
    pub pin: Pin,
    /// The pinned message, as the reader sees it.
    pub message: Seen,
}

/// Where a page of pins continues: after this one (pages are newest pin first by
/// (pinned_at, message_id) descending).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinPosition {
    /// The conversation listed.
    pub conversation_id: ConversationId,
    /// The last pin's time, unix microseconds.
    pub pinned_micros: i64,
    /// The last pin's message.
    pub message_id: MessageId,
}

/// Checks an emoji under `field`: exactly one extended grapheme cluster of at most
/// [`MAX_EMOJI_BYTES`] bytes, with no whitespace or control character, and not plain ASCII
/// (a letter, digit or punctuation mark is not a reaction; a keycap such as 1️⃣ is). The
/// server does not hold the emoji tables: which pictographs exist is the clients' business.
pub fn emoji(check: &mut Check, field: &str, input: &str) -> String {
    let problem = if input.is_empty() {
        Some("is required".to_owned())
    } else if input.len() > MAX_EMOJI_BYTES {
        Some(format!("must be at most {MAX_EMOJI_BYTES} UTF-8 bytes"))
    } else if input.graphemes(true).nth(1).is_some() {
        Some("must be exactly one emoji (one grapheme cluster)".to_owned())
    } else if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain whitespace or control characters".to_owned())
    } else if input.is_ascii() {
        Some("must be an emoji, not a letter, digit or punctuation mark".to_owned())
    } else {
        None
    };
    if let Some(problem) = problem {
        check.push(field, problem);
    }
    input.to_owned()
}

/// What a reaction write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toggle {
    /// Adds the caller's reaction (already there: nothing changes).
    Add,
    /// Takes back the caller's reaction (absent: nothing changes).
    Remove,
}

impl Conversations {
    /// Adds or takes back the caller's reaction; the message's reactions after it, as the
    /// caller sees them.
    #[tracing::instrument(skip(self))]
    pub async fn react(
        &self,
        actor: Actor,
        conversation: ConversationId,
        message: MessageId,
        emoji: String,
        toggle: Toggle,
    ) -> Result<Vec<ReactionTally>, MessageError> {
        self.react_limit(actor).await?;
        let now = Utc::now();
        match toggle {
            Toggle::Add => {
                self.store
                    .add_reaction(actor, conversation, message, &emoji, now)
                    .await?
            }
            Toggle::Remove => {
                self.store
                    .remove_reaction(actor, conversation, message, &emoji, now)
                    .await?
            }
        };
        let seen = self
            .reactions_seen(actor.user_id, conversation, message)
            .await;
        match (toggle, seen) {
            // A reaction from an earlier membership, on a message from before the current
            // join: taken back, but the caller sees neither the message nor its reactions.
            (Toggle::Remove, Err(MessageError::MessageNotFound)) => Ok(Vec::new()),
            (_, seen) => seen,
        }
    }

    /// Who reacted to a message the caller can see, oldest first, optionally one emoji only.
    /// A tombstone (deleted for everyone, or for the caller) has no reactions to show.
    #[tracing::instrument(skip(self, page))]
    pub async fn reactions(
        &self,
        reader: UserId,
        conversation: ConversationId,
        message: MessageId,
        filter: Option<String>,
        page: &Page<ReactionPosition>,
    ) -> Result<(Vec<Reaction>, String), MessageError> {
        if let Some(position) = &page.after
            && (position.message_id != message || position.filter != filter)
        {
            return Err(MessageError::Invalid(vec![echo_runtime::Violation::new(
                "page_token",
                "belongs to another message or emoji filter",
            )]));
        }
        let seen = self.message(reader, conversation, message).await?;
        let hidden = !self.store.deleted_for(reader, &[message]).await?.is_empty();
        if seen.deleted_at.is_some() || hidden {
            return Ok((Vec::new(), String::new()));
        }
        let rows = self
            .store
            .reactions(
                message,
                filter.as_deref(),
                page.after.as_ref(),
                page.fetch_limit(),
            )
            .await?;
        Ok(page.finish(rows, |last| ReactionPosition {
            message_id: message,
            filter: filter.clone(),
            created_micros: last.created_at.timestamp_micros(),
            user_id: last.user_id,
            emoji: last.emoji.clone(),
        }))
    }

    /// Pins a message (already pinned: the pin as it is).
    #[tracing::instrument(skip(self))]
    pub async fn pin(
        &self,
        actor: Actor,
        conversation: ConversationId,
        message: MessageId,
    ) -> Result<Pinned, MessageError> {
        self.react_limit(actor).await?;
        let (pin, _) = self
            .store
            .pin(actor, conversation, message, Utc::now())
            .await?;
        let mut pinned = self.pinned_seen(actor.user_id, vec![pin]).await?;
        pinned.pop().ok_or(MessageError::MessageNotFound)
    }

    /// Unpins a message (not pinned: nothing changes).
    #[tracing::instrument(skip(self))]
    pub async fn unpin(
        &self,
        actor: Actor,
        conversation: ConversationId,
        message: MessageId,
    ) -> Result<(), MessageError> {
        self.react_limit(actor).await?;
        self.store
            .unpin(actor, conversation, message, Utc::now())
            .await?;
        Ok(())
    }

    /// The conversation's pins the caller can see (messages from their join on), newest
    /// pin first.
    #[tracing::instrument(skip(self, page))]
    pub async fn pins(
        &self,
        reader: UserId,
        conversation: ConversationId,
        page: &Page<PinPosition>,
    ) -> Result<(Vec<Pinned>, String), MessageError> {
        if let Some(position) = &page.after
            && position.conversation_id != conversation
        {
            return Err(MessageError::Invalid(vec![echo_runtime::Violation::new(
                "page_token",
                "belongs to another conversation",
            )]));
        }
        let member = self.current_member(conversation, reader).await?;
        let rows = self
            .store
            .pins(
                conversation,
                member.joined_at_seq,
                page.after.as_ref(),
                page.fetch_limit(),
            )
            .await?;
        let (pins, token) = page.finish(rows, |last| PinPosition {
            conversation_id: conversation,
            pinned_micros: last.pinned_at.timestamp_micros(),
            message_id: last.message_id,
        });
        Ok((self.pinned_seen(reader, pins).await?, token))
    }

    async fn react_limit(&self, actor: Actor) -> Result<(), MessageError> {
        self.limits
            .take(&[(REACT, &actor.user_id.to_string())])
            .await
            .map_err(MessageError::RateLimited)
    }

    /// The reactions of `message` as `reader` sees them (through the one reader's view).
    async fn reactions_seen(
        &self,
        reader: UserId,
        conversation: ConversationId,
        message: MessageId,
    ) -> Result<Vec<ReactionTally>, MessageError> {
        let stored = self.message(reader, conversation, message).await?;
        let seen = self.present(reader, &[stored]).await?;
        Ok(seen
            .into_iter()
            .next()
            .map(|m| m.reactions)
            .unwrap_or_default())
    }

    /// `pins` with their messages as `reader` sees them, in the same order.
    async fn pinned_seen(
        &self,
        reader: UserId,
        pins: Vec<Pin>,
    ) -> Result<Vec<Pinned>, MessageError> {
        let ids: Vec<MessageId> = pins.iter().map(|p| p.message_id).collect();
        let mut by_id: HashMap<MessageId, Message> = self
            .store
            .messages_by_id(&ids)
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        let (pins, messages): (Vec<Pin>, Vec<Message>) = pins
            .into_iter()
            .filter_map(|pin| by_id.remove(&pin.message_id).map(|m| (pin, m)))
            .unzip();
        let seen = self.present(reader, &messages).await?;
        Ok(pins
            .into_iter()
            .zip(seen)
            .map(|(pin, message)| Pinned { pin, message })
            .collect())
    }
}

/// How many users reacted to one message with one emoji, as one reader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionTally {
    /// The message.
    pub message_id: MessageId,
    /// The emoji.
    pub emoji: String,
    /// How many users reacted with it (> 0).
    pub count: i32,
    /// Whether the reader is one of them.
    pub reacted_by_reader: bool,
    /// When the first of them reacted (a message's tallies are shown in this order).
    pub first_at: DateTime<Utc>,
}

/// Whether a member with `role` may pin or unpin in a conversation of `kind`: anyone in a
/// DIRECT one, OWNER/ADMIN in a GROUP or CHANNEL (`NotAllowed` otherwise). Both
/// implementations decide the same way.
pub(crate) fn may_pin(kind: Kind, role: Role) -> Result<(), MessageError> {
    if kind != Kind::Direct && !role.is_admin() {
        return Err(MessageError::NotAllowed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(input: &str) -> bool {
        let mut check = Check::new();
        emoji(&mut check, "emoji", input);
        check.is_clean()
    }

    #[test]
    fn one_emoji_grapheme_within_32_bytes() {
        for good in ["👍", "❤️", "1️⃣", "🇫🇷", "👍🏽", "👩‍👩‍👧‍👦", "☕", "🏳️‍🌈"]
        {
            assert!(accepted(good), "{good}");
        }
        let long = "👍".repeat(9);
        for bad in [
            "", "a", "Z", "7", "!", " ", "\u{a0}", "\n", "👍👍", "👍 ", &long,
        ] {
            assert!(!accepted(bad), "{bad:?}");
        }
    }
}
