//! The hub's view of who is a member of a conversation at each seq.
//!
//! Loaded from the store's membership periods when a conversation's event first needs routing
//! (exact for that seq and later, whenever it is read: see `store::live`), then kept current by
//! the membership events the hub itself processes in seq order. Bounded: least recently used
//! conversations are dropped and reloaded on demand.

use std::collections::HashMap;

use echo_ids::{ConversationId, UserId};

use super::items::{Change, View};
use crate::store::MembershipPeriod;

/// Most conversations kept; beyond it the least recently used go.
const MAX_CONVERSATIONS: usize = 20_000;

/// A member's stretches of membership: (from_seq, until_seq).
type Stretches = Vec<(i64, Option<i64>)>;

#[derive(Default)]
struct Entry {
    /// The lowest seq this entry answers for (it was loaded for that seq).
    valid_from: i64,
    members: HashMap<UserId, Stretches>,
    last_used: u64,
}

/// Membership by conversation, exact from each entry's `valid_from` on.
#[derive(Default)]
pub(crate) struct MemberCache {
    entries: HashMap<ConversationId, Entry>,
    tick: u64,
}

impl MemberCache {
    /// Whether routing `conversation` at `seq` needs a load first.
    pub fn needs_load(&self, conversation: ConversationId, seq: i64) -> bool {
        self.entries
            .get(&conversation)
            .is_none_or(|entry| entry.valid_from > seq)
    }

    /// Keep `periods`, loaded as the store answered `periods_of_conversation(conversation,
    /// valid_from)`.
    pub fn insert(
        &mut self,
        conversation: ConversationId,
        valid_from: i64,
        periods: &[MembershipPeriod],
    ) {
        if self.entries.len() >= MAX_CONVERSATIONS && !self.entries.contains_key(&conversation) {
            self.evict_half();
        }
        let mut members: HashMap<UserId, Stretches> = HashMap::new();
        for period in periods {
            members
                .entry(period.user_id)
                .or_default()
                .push((period.from_seq, period.until_seq));
        }
        self.tick += 1;
        self.entries.insert(
            conversation,
            Entry {
                valid_from,
                members,
                last_used: self.tick,
            },
        );
    }

    /// Apply a membership change the hub saw at `seq` (a no-op for conversations not kept, or
    /// changes the loaded periods already hold).
    pub fn apply(&mut self, conversation: ConversationId, seq: i64, change: Change) {
        let Some(entry) = self.entries.get_mut(&conversation) else {
            return;
        };
        match change {
            Change::Joined(user) => {
                let stretches = entry.members.entry(user).or_default();
                // Initial members' periods start at 1, before their MemberJoined at 2, 3, …;
                // a period loaded after this join holds it already.
                if !stretches
                    .iter()
                    .any(|&(from, until)| until.is_none() || from == seq)
                {
                    stretches.push((seq, None));
                }
            }
            Change::Left(user) => {
                if let Some(stretches) = entry.members.get_mut(&user) {
                    for stretch in stretches.iter_mut() {
                        if stretch.1.is_none() && stretch.0 <= seq {
                            stretch.1 = Some(seq);
                        }
                    }
                }
            }
        }
    }

    /// The stretch of `user`'s membership of `conversation` covering `seq`, as the reader's
    /// view of an event at `seq` (`None`: not a member then, or the conversation not kept).
    pub fn view(&mut self, conversation: ConversationId, user: UserId, seq: i64) -> Option<View> {
        self.tick += 1;
        let entry = self.entries.get_mut(&conversation)?;
        entry.last_used = self.tick;
        let stretches = entry.members.get(&user)?;
        stretches
            .iter()
            .find(|&&(from, until)| from <= seq && until.is_none_or(|u| seq <= u))
            .map(|&(from, until)| View {
                from_seq: from,
                closed: until.is_some(),
            })
    }

    /// The current members of `conversation` (`None` when not kept).
    pub fn current(&mut self, conversation: ConversationId) -> Option<Vec<UserId>> {
        self.tick += 1;
        let entry = self.entries.get_mut(&conversation)?;
        entry.last_used = self.tick;
        Some(
            entry
                .members
                .iter()
                .filter(|(_, stretches)| stretches.iter().any(|s| s.1.is_none()))
                .map(|(user, _)| *user)
                .collect(),
        )
    }

    /// How many members `conversation` has stretches for (for choosing the cheaper side).
    pub fn size(&self, conversation: ConversationId) -> usize {
        self.entries
            .get(&conversation)
            .map_or(0, |entry| entry.members.len())
    }

    /// Every user with a stretch covering `seq` in `conversation`.
    pub fn members_at(&self, conversation: ConversationId, seq: i64) -> Vec<UserId> {
        self.entries
            .get(&conversation)
            .map(|entry| {
                entry
                    .members
                    .iter()
                    .filter(|(_, stretches)| {
                        stretches
                            .iter()
                            .any(|&(from, until)| from <= seq && until.is_none_or(|u| seq <= u))
                    })
                    .map(|(user, _)| *user)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `user` was a member of `conversation` at `seq` (`None` when not kept).
    #[cfg(test)]
    fn is_member(&mut self, conversation: ConversationId, user: UserId, seq: i64) -> Option<bool> {
        self.entries.get(&conversation)?;
        Some(self.view(conversation, user, seq).is_some())
    }

    fn evict_half(&mut self) {
        let mut ticks: Vec<u64> = self.entries.values().map(|e| e.last_used).collect();
        ticks.sort_unstable();
        let cutoff = ticks[ticks.len() / 2];
        self.entries.retain(|_, entry| entry.last_used > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(user: UserId, from_seq: i64, until_seq: Option<i64>) -> MembershipPeriod {
        MembershipPeriod {
            conversation_id: ConversationId::nil(),
            user_id: user,
            from_seq,
            until_seq,
        }
    }

    #[test]
    fn follows_changes_at_exact_seqs() {
        let (a, b) = (UserId::new_v7(), UserId::new_v7());
        let c = ConversationId::new_v7();
        let mut cache = MemberCache::default();
        assert!(cache.needs_load(c, 1));
        cache.insert(c, 1, &[period(a, 1, None)]);
        assert!(!cache.needs_load(c, 5));
        cache.apply(c, 2, Change::Joined(a)); // initial member's own MemberJoined: no new stretch
        cache.apply(c, 5, Change::Joined(b));
        cache.apply(c, 9, Change::Left(b));
        cache.apply(c, 12, Change::Joined(b));
        assert_eq!(cache.is_member(c, b, 4), Some(false));
        assert_eq!(cache.is_member(c, b, 5), Some(true));
        assert_eq!(cache.is_member(c, b, 9), Some(true));
        assert_eq!(cache.is_member(c, b, 10), Some(false));
        assert_eq!(cache.is_member(c, b, 12), Some(true));
        cache.apply(c, 20, Change::Left(a));
        assert_eq!(cache.is_member(c, a, 20), Some(true));
        assert_eq!(cache.is_member(c, a, 21), Some(false));
        assert_eq!(cache.current(c), Some(vec![b]));
        let mut at_6 = cache.members_at(c, 6);
        at_6.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(at_6, both);
    }

    #[test]
    fn a_load_for_a_later_seq_does_not_answer_earlier_ones() {
        let c = ConversationId::new_v7();
        let mut cache = MemberCache::default();
        cache.insert(c, 10, &[]);
        assert!(cache.needs_load(c, 9));
        assert!(!cache.needs_load(c, 10));
    }
}
