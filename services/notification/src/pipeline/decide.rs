//! The decision table of spec §B2 as pure functions: who gets an entry and a push for a new
//! message, of which kind, and what an alert does at each stage. The pipeline and the
//! dispatcher gather the inputs; these decide.

use echo_ids::UserId;

use crate::inbox::EntryKind;

/// A member of the conversation at the message's seq, as the projections know them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The member.
    pub user: UserId,
    /// Muted until this time (ms since the epoch), if ever muted.
    pub muted_until_ms: Option<i64>,
    /// The member has blocked the sender.
    pub blocked_sender: bool,
    /// The member wants previews (text) in pushes and the inbox.
    pub show_previews: bool,
}

/// Why a member gets nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Own message.
    Sender,
    /// The member blocked the sender.
    Blocked,
    /// The conversation is muted (no entry, no push, not in the badge).
    Muted,
}

/// A member's entry kind for a message, or why there is none.
pub fn decide(
    recipient: &Recipient,
    sender: UserId,
    mentioned: bool,
    reply_to_sender: Option<UserId>,
    now_ms: i64,
) -> Result<EntryKind, Skip> {
    if recipient.user == sender {
        return Err(Skip::Sender);
    }
    if recipient.blocked_sender {
        return Err(Skip::Blocked);
    }
    if recipient.muted_until_ms.is_some_and(|until| until > now_ms) {
        return Err(Skip::Muted);
    }
    Ok(if mentioned {
        EntryKind::Mention
    } else if reply_to_sender == Some(recipient.user) {
        EntryKind::Reply
    } else {
        EntryKind::Message
    })
}

/// What an alert does when it is claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send it now.
    Send,
    /// A device is ONLINE: look again after the recheck delay.
    Recheck,
    /// Drop it: the message was read (on any device) by now.
    Read,
    /// Drop it: an ONLINE device of the user has the message (at the recheck), or the
    /// token's own device has it.
    Delivered,
}

/// A new alert: push at once unless a device is ONLINE (AWAY and idle devices never
/// suppress: Zulip's idle-desktop and hard-disconnect cases).
pub fn on_new(any_online: bool, read: bool) -> Step {
    if read {
        Step::Read
    } else if any_online {
        Step::Recheck
    } else {
        Step::Send
    }
}

/// An alert at its recheck: push unless the message was read meanwhile, or delivered to a
/// device that is ONLINE now (an AWAY device that has it still gets the push).
pub fn on_recheck(read: bool, delivered_to_online: bool) -> Step {
    if read {
        Step::Read
    } else if delivered_to_online {
        Step::Delivered
    } else {
        Step::Send
    }
}

/// The step for one token of the user: a push that would go out is not sent to a device that
/// already acknowledged the message (it shows it itself).
pub fn for_token(step: Step, device_has_it: bool) -> Step {
    if step == Step::Send && device_has_it {
        Step::Delivered
    } else {
        step
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn member(n: u128) -> Recipient {
        Recipient {
            user: Uuid::from_u128(n).into(),
            muted_until_ms: None,
            blocked_sender: false,
            show_previews: true,
        }
    }

    const NOW: i64 = 1_000_000;

    #[test]
    fn the_decision_table() {
        let sender = UserId::from(Uuid::from_u128(1));
        let other = UserId::from(Uuid::from_u128(9));
        let muted = Recipient {
            muted_until_ms: Some(NOW + 1),
            ..member(2)
        };
        let mute_over = Recipient {
            muted_until_ms: Some(NOW),
            ..member(2)
        };
        let blocking = Recipient {
            blocked_sender: true,
            ..member(2)
        };
        type Row<'a> = (
            &'a str,
            &'a Recipient,
            bool,
            Option<UserId>,
            Result<EntryKind, Skip>,
        );
        #[rustfmt::skip]
        let rows: &[Row<'_>] = &[
            ("sender",                 &member(1), false, None,            Err(Skip::Sender)),
            ("sender mentioning self", &member(1), true,  None,            Err(Skip::Sender)),
            ("blocked the sender",     &blocking,  true,  None,            Err(Skip::Blocked)),
            ("muted",                  &muted,     true,  None,            Err(Skip::Muted)),
            ("mute ended",             &mute_over, false, None,            Ok(EntryKind::Message)),
            ("plain member",           &member(2), false, None,            Ok(EntryKind::Message)),
            ("mentioned",              &member(2), true,  None,            Ok(EntryKind::Mention)),
            ("mention beats reply",    &member(2), true,  Some(member(2).user), Ok(EntryKind::Mention)),
            ("reply to them",          &member(2), false, Some(member(2).user), Ok(EntryKind::Reply)),
            ("reply to someone else",  &member(2), false, Some(other),     Ok(EntryKind::Message)),
        ];
        for (name, recipient, mentioned, reply_to, want) in rows {
            assert_eq!(
                decide(recipient, sender, *mentioned, *reply_to, NOW),
                *want,
                "{name}"
            );
        }
    }

    #[test]
    fn online_devices_delay_and_reading_drops() {
        assert_eq!(on_new(false, false), Step::Send);
        assert_eq!(on_new(true, false), Step::Recheck);
        assert_eq!(on_new(true, true), Step::Read);
        assert_eq!(on_new(false, true), Step::Read);
        assert_eq!(on_recheck(false, false), Step::Send);
        assert_eq!(on_recheck(true, false), Step::Read);
        assert_eq!(on_recheck(false, true), Step::Delivered);
        assert_eq!(on_recheck(true, true), Step::Read);
    }

    #[test]
    fn a_device_that_has_the_message_gets_no_alert() {
        assert_eq!(for_token(Step::Send, true), Step::Delivered);
        assert_eq!(for_token(Step::Send, false), Step::Send);
        assert_eq!(for_token(Step::Recheck, true), Step::Recheck);
        assert_eq!(for_token(Step::Read, true), Step::Read);
    }
}
