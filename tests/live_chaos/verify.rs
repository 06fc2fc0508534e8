//! The verdict: each conversation's complete log from its observer, membership periods from
//! the log, and for every device: exactly the seqs its user was a member at, each stream
//! segment in order and without repeats, and contiguous user events.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::subscribers::{Change, Device, Got};

/// A conversation's events by seq, with the membership change each made.
pub type Log = BTreeMap<i64, Option<Change>>;

/// A user's stretches of membership: (first seq, last seq or None while a member).
pub type Periods = HashMap<String, Vec<(i64, Option<i64>)>>;

/// Every event of `conversation` the device received on any segment.
pub fn log_of(device: &Device, conversation: &str) -> Log {
    let mut log = Log::new();
    for got in device.segments.iter().flat_map(|s| &s.items) {
        if let Got::Conversation {
            conversation: c,
            seq,
            change,
        } = got
            && c == conversation
        {
            log.insert(*seq, change.clone());
        }
    }
    log
}

/// The seqs of `conversation` the device received (after dedupe).
pub fn seqs(device: &Device, conversation: &str) -> BTreeSet<i64> {
    log_of(device, conversation).into_keys().collect()
}

/// Membership periods from a complete log: initial members from seq 1 (they receive
/// ConversationCreated), others from their MemberJoined, each up to and including their
/// MemberLeft / MemberRemoved.
pub fn periods(log: &Log, failures: &mut Vec<String>) -> Periods {
    let mut open: HashMap<String, i64> = HashMap::new();
    let mut periods = Periods::new();
    for (seq, change) in log {
        match change {
            Some(Change::Joined { user, initial }) => {
                let from = if *initial { 1 } else { *seq };
                if open.insert(user.clone(), from).is_some() {
                    failures.push(format!("{user} joined at {seq} while a member"));
                }
            }
            Some(Change::Gone { user }) => match open.remove(user) {
                Some(from) => periods
                    .entry(user.clone())
                    .or_default()
                    .push((from, Some(*seq))),
                None => failures.push(format!("{user} left at {seq} while not a member")),
            },
            None => {}
        }
    }
    for (user, from) in open {
        periods.entry(user).or_default().push((from, None));
    }
    periods
}

/// The seqs `user` was a member at, up to `last`.
pub fn member_seqs(periods: &Periods, user: &str, last: i64) -> BTreeSet<i64> {
    periods
        .get(user)
        .into_iter()
        .flatten()
        .flat_map(|(from, until)| *from..=until.unwrap_or(last))
        .collect()
}

/// Per-segment rules for `device` (whose user id is `user`): no (conversation, seq) twice,
/// each conversation and the user's own events in rising seq order, at most one Ready, no
/// ResyncRequired, and no ending but RESUME.
pub fn check_segments(label: &str, device: &Device, user: &str, failures: &mut Vec<String>) {
    for (n, segment) in device.segments.iter().enumerate() {
        let mut delivered = HashSet::new();
        let mut latest: HashMap<&str, i64> = HashMap::new();
        let mut latest_user = 0;
        let mut readies = 0;
        for got in &segment.items {
            match got {
                Got::Conversation {
                    conversation, seq, ..
                } => {
                    if !delivered.insert((conversation.as_str(), *seq)) {
                        failures.push(format!("{label} segment {n}: {conversation}#{seq} twice"));
                    }
                    let before = latest.insert(conversation, *seq).unwrap_or(0);
                    if *seq <= before {
                        failures.push(format!(
                            "{label} segment {n}: {conversation}#{seq} after #{before}"
                        ));
                    }
                }
                Got::User { user: owner, seq } => {
                    if owner != user {
                        failures.push(format!("{label}: got {owner}'s user event #{seq}"));
                    }
                    if *seq <= latest_user {
                        failures.push(format!(
                            "{label} segment {n}: user event #{seq} after #{latest_user}"
                        ));
                    }
                    latest_user = *seq;
                }
                Got::Ready => readies += 1,
                Got::Resync(reason) => {
                    failures.push(format!("{label} segment {n}: ResyncRequired {reason}"));
                }
                Got::Ephemeral => {}
            }
        }
        if readies > 1 {
            failures.push(format!("{label} segment {n}: {readies} Ready items"));
        }
        if let Some(ended) = &segment.ended
            && !ended.ends_with("RESUME")
        {
            failures.push(format!("{label} segment {n} ended: {ended}"));
        }
    }
}

/// The device's user events, deduped, run from the first to the last without a gap.
pub fn check_user_events(label: &str, device: &Device, failures: &mut Vec<String>) -> usize {
    let seqs: BTreeSet<i64> = device
        .segments
        .iter()
        .flat_map(|s| &s.items)
        .filter_map(|got| match got {
            Got::User { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    if let (Some(first), Some(last)) = (seqs.first(), seqs.last()) {
        let span = usize::try_from(last - first + 1).unwrap_or(0);
        if span != seqs.len() {
            let missing: Vec<i64> = (*first..=*last).filter(|s| !seqs.contains(s)).collect();
            failures.push(format!("{label}: user events missing {missing:?}"));
        }
    }
    seqs.len()
}

/// `expected` versus what the device got of one conversation, described when they differ.
pub fn compare(label: &str, got: &BTreeSet<i64>, expected: &BTreeSet<i64>) -> Option<String> {
    if got == expected {
        return None;
    }
    let missing: Vec<&i64> = expected.difference(got).collect();
    let extra: Vec<&i64> = got.difference(expected).collect();
    Some(format!(
        "{label}: missing {missing:?}, not a member at {extra:?}"
    ))
}
