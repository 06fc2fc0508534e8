//! [`LiveStore`] on SQLite: membership periods (written by the join and leave paths in
//! `members.rs` and `conversations.rs`, in the writer transaction of the change) and the send
//! checks without the send, on the reader pool.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_store::sqlite_rows::{micros, uuid};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{SqliteMessageStore, blocked_either_way, conversation, decode_error, json_ids};
use crate::store::live::may_post;
use crate::store::{Actor, Conversation, LiveStore, MembershipPeriod, Role, StoreError};

fn period(row: &SqliteRow) -> Result<MembershipPeriod, sqlx::Error> {
    Ok(MembershipPeriod {
        conversation_id: uuid(row, "conversation_id")?,
        user_id: uuid(row, "user_id")?,
        from_seq: row.try_get("from_seq")?,
        until_seq: row.try_get("until_seq")?,
    })
}

#[async_trait]
impl LiveStore for SqliteMessageStore {
    async fn periods_of_user(
        &self,
        user: Uuid,
        closed_since: DateTime<Utc>,
    ) -> Result<Vec<MembershipPeriod>, StoreError> {
        let rows = sqlx::query(
            "SELECT conversation_id, user_id, from_seq, until_seq FROM member_periods \
             WHERE user_id = $1 AND (until_seq IS NULL OR closed_at >= $2) \
             ORDER BY conversation_id, from_seq",
        )
        .bind(user.to_string())
        .bind(micros(closed_since))
        .fetch_all(&self.db.reader)
        .await?;
        Ok(rows.iter().map(period).collect::<Result<_, _>>()?)
    }

    async fn periods_of_conversation(
        &self,
        conversation: Uuid,
        from_seq: i64,
    ) -> Result<Vec<MembershipPeriod>, StoreError> {
        let rows = sqlx::query(
            "SELECT conversation_id, user_id, from_seq, until_seq FROM member_periods \
             WHERE conversation_id = $1 AND (until_seq IS NULL OR until_seq >= $2) \
             ORDER BY user_id, from_seq",
        )
        .bind(conversation.to_string())
        .bind(from_seq)
        .fetch_all(&self.db.reader)
        .await?;
        Ok(rows.iter().map(period).collect::<Result<_, _>>()?)
    }

    async fn postable(&self, actor: Actor, id: Uuid) -> Result<Conversation, StoreError> {
        // One read transaction: the member row, the conversation and the blocks are read from
        // one snapshot.
        let mut tx = self.db.reader.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT conversation_id, ",
            conversation_fields!(),
            ", m.role AS member_role FROM conversations c JOIN members m USING (conversation_id) \
             WHERE conversation_id = $1 AND m.user_id = $2 AND m.left_at_seq IS NULL"
        ))
        .bind(id.to_string())
        .bind(actor.user_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::ConversationNotFound);
        };
        let found = conversation(&row)?;
        let role: i64 = row.try_get("member_role")?;
        let role =
            Role::from_code(role).ok_or_else(|| decode_error(format!("role: unknown {role}")))?;
        may_post(found.kind, role)?;
        if let Some((low, high)) = found.direct_pair
            && blocked_either_way(&mut tx, low, high).await?
        {
            return Err(StoreError::Blocked(None));
        }
        Ok(found)
    }

    async fn hidden_by(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT message_id, user_id FROM hidden_messages \
             WHERE message_id IN (SELECT value FROM json_each($1))",
        )
        .bind(json_ids(ids))
        .fetch_all(&self.db.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((uuid(row, "message_id")?, uuid(row, "user_id")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }
}
