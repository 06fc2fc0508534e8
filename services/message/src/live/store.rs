//! [`MessageStore`]: membership periods (written by the join and leave scripts,
//! in the transaction of the change), the send checks without the send, and who hid which
//! messages. Reads only, written once for both backends.
//!
//! Membership periods (DESIGN §7): who may see a conversation event,
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

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_store::{Tx, placeholders, with_db, with_tx};
use sqlx::AssertSqlSafe;

use crate::error::MessageError;
use crate::store::MessageStore;
use crate::store::codec::{
    At, ConversationRow, IN_LIST_CHUNK, Id, blocked_either, conversation_columns, corrupt, read_tx,
};
use crate::store::{Actor, Conversation, Kind, Role};

/// One stretch of a user's membership of a conversation, in conversation seqs (both ends
/// inclusive: the event that removed them is still theirs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipPeriod {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The member.
    pub user_id: UserId,
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
pub(crate) fn may_post(kind: Kind, role: Role) -> Result<(), MessageError> {
    if kind == Kind::Channel && !role.is_admin() {
        return Err(MessageError::NotAllowed);
    }
    Ok(())
}

/// One stored period: conversation, user, from_seq, until_seq.
type PeriodRow = (Id, Id, i64, Option<i64>);

fn period((conversation_id, user_id, from_seq, until_seq): PeriodRow) -> MembershipPeriod {
    MembershipPeriod {
        conversation_id: conversation_id.0.into(),
        user_id: user_id.0.into(),
        from_seq,
        until_seq,
    }
}

/// A conversation with the role of the member asking (select [`conversation_columns!`] and
/// `member_role`).
#[derive(sqlx::FromRow)]
struct PostableRow {
    #[sqlx(flatten)]
    conversation: ConversationRow,
    member_role: i16,
}

impl MessageStore {
    /// Every membership period of `user` that is still open or closed at or after
    /// `closed_since` (wall clock of the closing event), in (conversation, from_seq) order.
    /// Periods closed before migration 0008 count as closed when it ran (their real time was
    /// not kept): a reader may get more closed periods than it asked for, never fewer.
    pub async fn periods_of_user(
        &self,
        user: UserId,
        closed_since: DateTime<Utc>,
    ) -> Result<Vec<MembershipPeriod>, MessageError> {
        let rows: Vec<PeriodRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(
                "SELECT conversation_id, user_id, from_seq, until_seq FROM member_periods \
                 WHERE user_id = $1 AND (until_seq IS NULL OR closed_at >= $2) \
                 ORDER BY conversation_id, from_seq",
            )
            .bind(Id(user.into()))
            .bind(At(closed_since))
            .fetch_all(c)
            .await?
        });
        Ok(rows.into_iter().map(period).collect())
    }

    /// The periods of `conversation` that cover `from_seq` or any later seq (still open, or
    /// closed at or after `from_seq`), in (user, from_seq) order. `i64::MAX` gives the current
    /// members only.
    pub async fn periods_of_conversation(
        &self,
        conversation: ConversationId,
        from_seq: i64,
    ) -> Result<Vec<MembershipPeriod>, MessageError> {
        let rows: Vec<PeriodRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(
                "SELECT conversation_id, user_id, from_seq, until_seq FROM member_periods \
                 WHERE conversation_id = $1 AND (until_seq IS NULL OR until_seq >= $2) \
                 ORDER BY user_id, from_seq",
            )
            .bind(Id(conversation.into()))
            .bind(from_seq)
            .fetch_all(c)
            .await?
        });
        Ok(rows.into_iter().map(period).collect())
    }

    /// The conversation, if `actor` may post in it right now (the checks SendMessage makes
    /// before writing, without writing): NotFound-style errors for non-members
    /// (`MessageError::ConversationNotFound` as send uses), NotAllowed for channel members who may
    /// not post, Blocked for a DIRECT conversation with a block either way.
    pub async fn postable(
        &self,
        actor: Actor,
        id: ConversationId,
    ) -> Result<Conversation, MessageError> {
        // One read transaction: on SQLite the member row, the conversation and the blocks come
        // from one snapshot; on PostgreSQL (READ COMMITTED) each statement reads what is
        // committed when it runs, as before. Nothing is written: it is rolled back whatever
        // the answer (not left open in the pool).
        let mut tx = read_tx(&self.db).await?;
        let answer = postable_in(&mut tx, actor, id).await;
        tx.rollback().await?;
        answer
    }

    /// Of the messages `ids`, who deleted which for themselves: `(message_id, user_id)` pairs
    /// (a stream shows those users a DELETED_FOR_ME tombstone in later snapshots).
    pub async fn hidden_by(
        &self,
        ids: &[MessageId],
    ) -> Result<Vec<(MessageId, UserId)>, MessageError> {
        let mut hidden = Vec::new();
        for chunk in ids.chunks(IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT message_id, user_id FROM hidden_messages WHERE message_id IN ({})",
                placeholders(1, chunk.len())
            );
            let rows: Vec<(Id, Id)> = with_db!(&self.db, read, sql, |c| {
                let mut query = sqlx::query_as(AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(Id((*id).into()));
                }
                query.fetch_all(c).await?
            });
            hidden.extend(
                rows.into_iter()
                    .map(|(message, user)| (message.0.into(), user.0.into())),
            );
        }
        Ok(hidden)
    }
}

/// [`MessageStore::postable`] read inside `tx`.
async fn postable_in(
    tx: &mut Tx,
    actor: Actor,
    id: ConversationId,
) -> Result<Conversation, MessageError> {
    let row: Option<PostableRow> = with_tx!(&mut *tx, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            conversation_columns!(),
            ", m.role AS member_role \
             FROM conversations c JOIN members m USING (conversation_id) \
             WHERE conversation_id = $1 AND m.user_id = $2 AND m.left_at_seq IS NULL"
        ))
        .bind(Id(id.into()))
        .bind(Id(actor.user_id.into()))
        .fetch_optional(c)
        .await?
    });
    let Some(row) = row else {
        return Err(MessageError::ConversationNotFound);
    };
    let role = Role::from_code(row.member_role.into())
        .ok_or_else(|| corrupt("member role", row.member_role))?;
    let found = Conversation::try_from(row.conversation)?;
    may_post(found.kind, role)?;
    if let Some((low, high)) = found.direct_pair
        && blocked_either(tx, low, high).await?
    {
        return Err(MessageError::Blocked(None));
    }
    Ok(found)
}
