//! How one reader sees messages: the stored message plus what depends on the reader or lives
//! beside it (deletion for the reader alone, the reaction tallies with the reader's own
//! reactions marked, the pin). Every read RPC answers through [`Conversations::present`], so
//! the parts added by later features show up in all of them at once.

use std::collections::{HashMap, HashSet};

use echo_ids::{MessageId, UserId};
use echo_proto::echo::message::v1 as pb;

use crate::conversations::Conversations;
use crate::error::MessageError;
use crate::events::timestamp;
use crate::store::{Message, ReactionTally};

impl Conversations {
    /// `messages` as `reader` sees them, in the same order.
    pub async fn present(
        &self,
        reader: UserId,
        messages: &[Message],
    ) -> Result<Vec<pb::Message>, MessageError> {
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
        let mut reactions = reaction_counts(self.store.reaction_tallies(reader, &ids).await?);
        Ok(messages
            .iter()
            .map(|message| {
                let mut seen = crate::convert::message_for(message, reader);
                seen.pinned = pinned.contains(&message.id);
                if message.deleted_at.is_none() {
                    seen.reactions = reactions.remove(&message.id).unwrap_or_default();
                    if let Some(at) = deleted_for_reader.get(&message.id) {
                        seen.state = pb::MessageState::DeletedForMe.into();
                        seen.deleted_at = Some(timestamp(*at));
                        seen.content = None;
                        seen.reactions.clear();
                    }
                }
                seen
            })
            .collect())
    }
}

/// Reaction tallies as messages carry them, by message, each message's in display order (first
/// reacted first).
pub(crate) fn reaction_counts(
    mut tallies: Vec<ReactionTally>,
) -> HashMap<MessageId, Vec<pb::ReactionCount>> {
    tallies.sort_by(|a, b| (a.first_at, &a.emoji).cmp(&(b.first_at, &b.emoji)));
    let mut reactions: HashMap<MessageId, Vec<pb::ReactionCount>> = HashMap::new();
    for tally in tallies {
        reactions
            .entry(tally.message_id)
            .or_default()
            .push(pb::ReactionCount {
                emoji: tally.emoji,
                count: tally.count,
                reacted_by_me: tally.reacted_by_reader,
            });
    }
    reactions
}
