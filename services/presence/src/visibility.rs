//! Who may see whose presence (spec §A3). One pure function over the facts the projections
//! hold, so the rule lives in one place and a table test covers it.

use echo_ids::UserId;

/// A user's `last_seen` privacy setting (echo.user.v1.Visibility), which governs presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Audience {
    /// Anyone who shares a direct or group conversation with them, or is their contact.
    Everyone,
    /// Only their contacts (the user service's default).
    #[default]
    Contacts,
    /// No one.
    Nobody,
}

/// What the projections know about one observer and one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Relation {
    /// Either has blocked the other.
    pub blocked: bool,
    /// They share a DIRECT or GROUP conversation (channels hide members from each other).
    pub share_conversation: bool,
    /// The observer is in the target's contacts.
    pub in_targets_contacts: bool,
    /// The target's setting.
    pub audience: Audience,
}

/// True when `observer` may see `target`'s presence.
pub fn may_see(observer: UserId, target: UserId, relation: &Relation) -> bool {
    if observer == target {
        return true;
    }
    if relation.blocked {
        return false;
    }
    match relation.audience {
        Audience::Everyone => relation.share_conversation || relation.in_targets_contacts,
        Audience::Contacts => relation.in_targets_contacts,
        Audience::Nobody => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> UserId {
        uuid::Uuid::from_u128(1).into()
    }

    fn them() -> UserId {
        uuid::Uuid::from_u128(2).into()
    }

    /// The relations of spec §A8: stranger, co-member, contact (and both), each under every
    /// setting, each with and without a block (either direction is the same fact).
    #[test]
    fn the_visibility_table() {
        use Audience::{Contacts as C, Everyone as E, Nobody as N};
        // (who, share a conversation, in their contacts, [EVERYONE, CONTACTS, NOBODY])
        let table = [
            ("stranger", false, false, [false, false, false]),
            ("co-member", true, false, [true, false, false]),
            ("contact", false, true, [true, true, false]),
            ("co-member contact", true, true, [true, true, false]),
        ];
        for (who, share, contact, expected) in table {
            for (audience, want) in [E, C, N].into_iter().zip(expected) {
                for blocked in [false, true] {
                    let relation = Relation {
                        blocked,
                        share_conversation: share,
                        in_targets_contacts: contact,
                        audience,
                    };
                    assert_eq!(
                        may_see(me(), them(), &relation),
                        want && !blocked,
                        "{who} under {audience:?}, blocked {blocked}"
                    );
                }
            }
        }
    }

    #[test]
    fn everyone_sees_themselves() {
        let worst = Relation {
            blocked: true,
            audience: Audience::Nobody,
            ..Relation::default()
        };
        assert!(may_see(me(), me(), &worst));
    }
}
