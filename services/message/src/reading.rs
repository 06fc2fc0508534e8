//! How one reader sees messages: the stored message plus what depends on the reader or lives
//! beside it (deletion for the reader alone, the reaction tallies with the reader's own
//! reactions marked, the pin). Every read RPC answers through [`Conversations::present`], so
//! the parts added by later features show up in all of them at once; `crate::convert::seen`
//! turns the result into the protobuf message.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use echo_ids::{MessageId, UserId};

use crate::conversations::Conversations;
use crate::error::MessageError;
use crate::store::{Message, ReactionTally};

/// A message as one reader sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// The message as stored.
    pub message: Message,
    /// Who sees it (the idempotency key is shown to its sender only).
    pub reader: UserId,
    /// Whether it is pinned in its conversation.
    pub pinned: bool,
    /// Its reaction tallies in display order (first reacted first); none on a message deleted
    /// for everyone or for the reader.
    pub reactions: Vec<ReactionTally>,
    /// When the reader deleted it for themselves (only on a message not deleted for everyone).
    pub deleted_for_reader: Option<DateTime<Utc>>,
}

impl Seen {
    /// A message just written, seen by `reader` before anything lives beside it.
    pub fn fresh(message: Message, reader: UserId) -> Self {
        Self {
            message,
            reader,
            pinned: false,
            reactions: Vec::new(),
            deleted_for_reader: None,
        }
    }
}

impl Conversations {
    /// `messages` as `reader` sees them, in the same order.
    pub async fn present(
        &self,
        reader: UserId,
        messages: &[Message],
    ) -> Result<Vec<Seen>, MessageError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
        let deleted_for_reader: HashMap<MessageId, _> = self
            .store
            .deleted_for(reader, &ids)
            .await?
            .into_iter()
            .collect();
        let pinned: HashSet<MessageId> = self.store.pinned_among(&ids).await?.into_iter().collect();
        let mut reactions = tallies_by_message(self.store.reaction_tallies(reader, &ids).await?);
        Ok(messages
            .iter()
            .map(|message| {
                let mut seen = Seen::fresh(message.clone(), reader);
                seen.pinned = pinned.contains(&message.id);
                if message.deleted_at.is_none() {
                    seen.deleted_for_reader = deleted_for_reader.get(&message.id).copied();
                    if seen.deleted_for_reader.is_none() {
                        seen.reactions = reactions.remove(&message.id).unwrap_or_default();
                    }
                }
                seen
            })
            .collect())
    }
}

/// Reaction tallies by message, each message's in display order (first reacted first).
pub(crate) fn tallies_by_message(
    mut tallies: Vec<ReactionTally>,
) -> HashMap<MessageId, Vec<ReactionTally>> {
    tallies.sort_by(|a, b| (a.first_at, &a.emoji).cmp(&(b.first_at, &b.emoji)));
    let mut by_message: HashMap<MessageId, Vec<ReactionTally>> = HashMap::new();
    for tally in tallies {
        by_message.entry(tally.message_id).or_default().push(tally);
    }
    by_message
}
