//! Loss and gap accounting: what each stream received against what the server acknowledged.
//!
//! In the bench's conversations nothing but the bench's messages happens while it measures, so
//! the acknowledged seqs of a conversation are exactly the seqs its subscribers must receive,
//! each once, in order.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

/// The seqs the server acknowledged (SendMessage answered), by conversation.
#[derive(Debug, Default, Clone)]
pub struct Acked(HashMap<String, BTreeSet<i64>>);

impl Acked {
    /// Note an acknowledged message.
    pub fn add(&mut self, conversation: &str, seq: i64) {
        self.0
            .entry(conversation.to_owned())
            .or_default()
            .insert(seq);
    }

    /// Everything acknowledged in `conversation`.
    pub fn of(&self, conversation: &str) -> Option<&BTreeSet<i64>> {
        self.0.get(conversation)
    }

    /// Acknowledged messages in all conversations.
    pub fn total(&self) -> usize {
        self.0.values().map(BTreeSet::len).sum()
    }

    /// Take in another sender's acknowledgements.
    pub fn extend(&mut self, other: Acked) {
        for (conversation, seqs) in other.0 {
            self.0.entry(conversation).or_default().extend(seqs);
        }
    }
}

/// How the deliveries of all streams compare with the acknowledged sends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeliveryCheck {
    /// Deliveries the streams should have received.
    pub expected: u64,
    /// Deliveries of acknowledged messages received (duplicates not counted).
    pub delivered: u64,
    /// Acknowledged messages a stream never received.
    pub lost: u64,
    /// Deliveries of a seq the stream had already received.
    pub duplicated: u64,
    /// Deliveries of a seq below one the stream had already received.
    pub out_of_order: u64,
    /// Deliveries that skipped an acknowledged seq not yet received (a gap, even if filled
    /// later).
    pub gaps: u64,
    /// Deliveries of seqs never acknowledged (e.g. a send that timed out but committed).
    pub unacknowledged: u64,
}

impl DeliveryCheck {
    /// Nothing lost, doubled, reordered or skipped.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0 && self.gaps == 0
    }

    /// Check one stream that should hold every acknowledged message of `conversations`, given
    /// the `(conversation, seq)` it received in arrival order, and add it to the totals.
    pub fn add_stream<'a>(
        &mut self,
        acked: &Acked,
        conversations: impl IntoIterator<Item = &'a str>,
        received: &[(String, i64)],
    ) {
        let mut by_conversation: HashMap<&str, Vec<i64>> = HashMap::new();
        for (conversation, seq) in received {
            by_conversation
                .entry(conversation.as_str())
                .or_default()
                .push(*seq);
        }
        let mut checked = HashSet::new();
        for conversation in conversations {
            if !checked.insert(conversation) {
                continue;
            }
            let expected = acked.of(conversation).cloned().unwrap_or_default();
            let seqs = by_conversation.remove(conversation).unwrap_or_default();
            self.add_conversation(&expected, &seqs);
        }
        // Conversations the stream was not expected to hear from at all.
        for seqs in by_conversation.values() {
            self.unacknowledged += seqs.len() as u64;
        }
    }

    fn add_conversation(&mut self, expected: &BTreeSet<i64>, received: &[i64]) {
        self.expected += expected.len() as u64;
        let mut seen = BTreeSet::new();
        let mut highest = None;
        for &seq in received {
            if !seen.insert(seq) {
                self.duplicated += 1;
                continue;
            }
            if !expected.contains(&seq) {
                self.unacknowledged += 1;
            } else {
                self.delivered += 1;
            }
            if highest.is_some_and(|high| seq < high) {
                self.out_of_order += 1;
                continue;
            }
            // Any acknowledged seq between the previous highest and this one not received yet
            // is a gap on the stream.
            let from = highest.map_or(i64::MIN, |high| high + 1);
            if expected
                .range(from..seq)
                .any(|skipped| !seen.contains(skipped))
            {
                self.gaps += 1;
            }
            highest = Some(seq);
        }
        self.lost += expected.difference(&seen).count() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(seqs: &[(&str, i64)]) -> Acked {
        let mut acked = Acked::default();
        for (conversation, seq) in seqs {
            acked.add(conversation, *seq);
        }
        acked
    }

    fn received(seqs: &[(&str, i64)]) -> Vec<(String, i64)> {
        seqs.iter().map(|(c, s)| ((*c).to_owned(), *s)).collect()
    }

    #[test]
    fn every_message_once_in_order_is_clean() {
        let acked = acked(&[("a", 2), ("a", 3), ("b", 2), ("a", 4)]);
        let mut check = DeliveryCheck::default();
        let got = received(&[("a", 2), ("b", 2), ("a", 3), ("a", 4)]);
        check.add_stream(&acked, ["a", "b"], &got);
        assert!(check.is_clean(), "{check:?}");
        assert_eq!((check.expected, check.delivered), (4, 4));
    }

    #[test]
    fn a_missing_message_is_lost_and_a_gap() {
        let acked = acked(&[("a", 2), ("a", 3), ("a", 4)]);
        let mut check = DeliveryCheck::default();
        check.add_stream(&acked, ["a"], &received(&[("a", 2), ("a", 4)]));
        assert_eq!((check.lost, check.gaps, check.delivered), (1, 1, 2));
        assert!(!check.is_clean());
    }

    #[test]
    fn a_missing_tail_is_lost_without_a_gap() {
        let acked = acked(&[("a", 2), ("a", 3)]);
        let mut check = DeliveryCheck::default();
        check.add_stream(&acked, ["a"], &received(&[("a", 2)]));
        assert_eq!((check.lost, check.gaps), (1, 0));
    }

    #[test]
    fn a_late_fill_is_a_gap_and_out_of_order_but_not_lost() {
        let acked = acked(&[("a", 2), ("a", 3), ("a", 4)]);
        let mut check = DeliveryCheck::default();
        check.add_stream(&acked, ["a"], &received(&[("a", 2), ("a", 4), ("a", 3)]));
        assert_eq!(
            (check.lost, check.gaps, check.out_of_order, check.delivered),
            (0, 1, 1, 3)
        );
    }

    #[test]
    fn a_missing_first_message_is_a_gap() {
        let acked = acked(&[("a", 2), ("a", 3)]);
        let mut check = DeliveryCheck::default();
        check.add_stream(&acked, ["a"], &received(&[("a", 3)]));
        assert_eq!((check.lost, check.gaps), (1, 1));
    }

    #[test]
    fn duplicates_are_counted_once_delivered() {
        let acked = acked(&[("a", 2), ("a", 3)]);
        let mut check = DeliveryCheck::default();
        check.add_stream(&acked, ["a"], &received(&[("a", 2), ("a", 2), ("a", 3)]));
        assert_eq!((check.duplicated, check.delivered, check.lost), (1, 2, 0));
        assert!(!check.is_clean());
    }

    #[test]
    fn unacknowledged_seqs_and_foreign_conversations_are_noted_not_failed() {
        let acked = acked(&[("a", 2), ("a", 4)]);
        let mut check = DeliveryCheck::default();
        // Seq 3 committed but its sender never got the answer (a timeout): not a gap.
        check.add_stream(
            &acked,
            ["a"],
            &received(&[("a", 2), ("a", 3), ("a", 4), ("z", 9)]),
        );
        assert_eq!(check.unacknowledged, 2);
        assert!(check.is_clean(), "{check:?}");
    }

    #[test]
    fn streams_add_up_and_a_conversation_listed_twice_counts_once() {
        let acked = acked(&[("a", 2), ("b", 2)]);
        let mut check = DeliveryCheck::default();
        check.add_stream(&acked, ["a", "a"], &received(&[("a", 2)]));
        check.add_stream(&acked, ["a", "b"], &received(&[("b", 2)]));
        assert_eq!((check.expected, check.delivered, check.lost), (3, 2, 1));
    }

    #[test]
    fn acknowledgements_merge() {
        let mut all = acked(&[("a", 2)]);
        all.extend(acked(&[("a", 3), ("b", 2)]));
        assert_eq!(all.total(), 3);
        assert_eq!(all.of("a").map(BTreeSet::len), Some(2));
    }
}
