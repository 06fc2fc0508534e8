//! [`LiveStore`] on PostgreSQL: membership periods (written by the join and leave paths in
//! `members/rows.rs` and `conversations.rs`, in the transaction of the change) and the send
//! checks without the send.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PostgresMessageStore, blocked_either, conversation, corrupt};
use crate::store::live::may_post;
use crate::store::{Actor, Conversation, LiveStore, MembershipPeriod, Role, StoreError};

/// One stored period: conversation, user, from_seq, until_seq.
type PeriodRow = (Uuid, Uuid, i64, Option<i64>);

fn period((conversation_id, user_id, from_seq, until_seq): PeriodRow) -> MembershipPeriod {
    MembershipPeriod {
        conversation_id,
        user_id,
        from_seq,
        until_seq,
    }
}

#[async_trait]
impl LiveStore for PostgresMessageStore {
    async fn periods_of_user(
        &self,
        user: Uuid,
        closed_since: DateTime<Utc>,
    ) -> Result<Vec<MembershipPeriod>, StoreError> {
        let rows: Vec<PeriodRow> = sqlx::query_as(
            "SELECT conversation_id, user_id, from_seq, until_seq FROM member_periods \
             WHERE user_id = $1 AND (until_seq IS NULL OR closed_at >= $2) \
             ORDER BY conversation_id, from_seq",
        )
        .bind(user)
        .bind(closed_since)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.into_iter().map(period).collect())
    }

    async fn periods_of_conversation(
        &self,
        conversation: Uuid,
        from_seq: i64,
    ) -> Result<Vec<MembershipPeriod>, StoreError> {
        let rows: Vec<PeriodRow> = sqlx::query_as(
            "SELECT conversation_id, user_id, from_seq, until_seq FROM member_periods \
             WHERE conversation_id = $1 AND (until_seq IS NULL OR until_seq >= $2) \
             ORDER BY user_id, from_seq",
        )
        .bind(conversation)
        .bind(from_seq)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.into_iter().map(period).collect())
    }

    async fn postable(&self, actor: Actor, id: Uuid) -> Result<Conversation, StoreError> {
        let mut conn = self.db.pool.acquire().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            conversation_columns!(),
            ", m.role AS member_role FROM conversations c JOIN members m USING (conversation_id) \
             WHERE conversation_id = $1 AND m.user_id = $2 AND m.left_at_seq IS NULL"
        ))
        .bind(id)
        .bind(actor.user_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::ConversationNotFound);
        };
        let found = conversation(&row)?;
        let role: i16 = sqlx::Row::try_get(&row, "member_role")?;
        let role = Role::from_code(role.into()).ok_or_else(|| corrupt("member role", role))?;
        may_post(found.kind, role)?;
        if let Some((low, high)) = found.direct_pair
            && blocked_either(&mut conn, low, high).await?
        {
            return Err(StoreError::Blocked(None));
        }
        Ok(found)
    }

    async fn hidden_by(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as(
            "SELECT message_id, user_id FROM hidden_messages WHERE message_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.db.pool)
        .await?)
    }
}
