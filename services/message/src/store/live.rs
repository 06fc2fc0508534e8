//! The live delivery part of the storage seam (DESIGN §7): who may see a conversation event,
//! decided at its exact seq.
//!
//! Membership is kept as periods in conversation seqs, one per stretch of membership: a
//! member removed at seq 10 and added back at seq 20 has (…, 10] and [20, …). Streams and
//! replays ask "was user U a member of C at seq s?", and the answer for a given seq never
//! changes once the event at s exists: a period that opened at or before s committed before s
//! was allocated, and one that closes after s closes at a later seq. So the answer read at any
//! time after s committed is exact, which is what lets a lagging hub or a replay read it late.
//!
//! Initial members (those of the creating transaction) have periods starting at seq 1, so the
//! ConversationCreated event reaches them, though their `joined_at_seq` (history) is 2, 3, ….

use uuid::Uuid;

use super::{Kind, Role, StoreError};

/// One stretch of a user's membership of a conversation, in conversation seqs (both ends
/// inclusive: the event that removed them is still theirs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipPeriod {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The member.
    pub user_id: Uuid,
    /// The first seq they see (1 for initial members, else their MemberJoined seq).
    pub from_seq: i64,
    /// The last seq they see (their MemberLeft / MemberRemoved seq); `None` while a member.
    pub until_seq: Option<i64>,
}

impl MembershipPeriod {
    /// Whether this period covers `seq`.
    pub fn covers(&self, seq: i64) -> bool {
        self.from_seq <= seq && self.until_seq.is_none_or(|until| seq <= until)
    }
}

/// Whether a current member with `role` may post in a conversation of `kind` (SendMessage's
/// role rule, also what [`MessageStore::postable`] answers): channels are written by their owners
/// and admins alone. The block check of DIRECT conversations needs the database and stays with
/// the backends.
pub(crate) fn may_post(kind: Kind, role: Role) -> Result<(), StoreError> {
    if kind == Kind::Channel && !role.is_admin() {
        return Err(StoreError::NotAllowed);
    }
    Ok(())
}
