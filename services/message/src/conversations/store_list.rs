//! Reading conversations, written once for both backends: one conversation, one member row,
//! and a user's conversation list (their current conversations with their member rows, newest
//! activity first, filtered and paged by keyset).

use chrono::DateTime;
use echo_ids::{ConversationId, UserId};
use echo_store::{Database, sql_limit, with_db};
use serde::{Deserialize, Serialize};

use crate::error::MessageError;
use crate::store::codec::{
    At, ConversationRow, Id, MemberRow, conversation_columns, member_columns, member_state_columns,
};
use crate::store::{Conversation, Member, MessageStore};

/// Which of a user's conversations to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Some(false): not archived; Some(true): archived only; None: both.
    pub archived: Option<bool>,
    /// Only those the user pinned.
    pub pinned_only: bool,
}

/// Where a conversation list page starts: after this entry (lists are newest activity first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPosition {
    /// The last entry's `last_activity_at`, unix microseconds.
    pub last_activity_micros: i64,
    /// The last entry's id (ties).
    pub conversation_id: ConversationId,
}

/// A row of a user's list: the conversation and their member row (joined USING
/// `conversation_id`, which both halves read).
#[derive(sqlx::FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    conversation: ConversationRow,
    #[sqlx(flatten)]
    member: MemberRow,
}

/// See [`crate::store::MessageStore::list_conversations`].
async fn list(
    db: &Database,
    user: UserId,
    filter: ListFilter,
    after: Option<&ConversationPosition>,
    limit: usize,
) -> Result<Vec<(Conversation, Member)>, MessageError> {
    let after = match after {
        None => None,
        Some(position) => {
            let at = DateTime::from_timestamp_micros(position.last_activity_micros).ok_or_else(
                || {
                    sqlx::Error::InvalidArgument(format!(
                        "conversation position {} is out of range",
                        position.last_activity_micros
                    ))
                },
            )?;
            Some((At(at), Id(position.conversation_id.into())))
        }
    };
    let rows: Vec<ListedRow> = with_db!(db, read, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            conversation_columns!(),
            ", ",
            member_state_columns!(),
            " FROM members JOIN conversations USING (conversation_id) \
             WHERE user_id = $1 AND left_at_seq IS NULL \
               AND ($2 IS NULL OR archived = $2) \
               AND (NOT $3 OR pinned_at IS NOT NULL) \
               AND ($4 IS NULL OR (last_activity_at, conversation_id) < ($4, $5)) \
             ORDER BY last_activity_at DESC, conversation_id DESC LIMIT $6"
        ))
        .bind(Id(user.into()))
        .bind(filter.archived)
        .bind(filter.pinned_only)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(sql_limit(limit))
        .fetch_all(c)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(|row| Ok((row.conversation.try_into()?, row.member.try_into()?)))
        .collect::<Result<_, sqlx::Error>>()?)
}

impl MessageStore {
    /// The conversation `id`.
    pub async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<Conversation>, MessageError> {
        let row: Option<ConversationRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                conversation_columns!(),
                " FROM conversations WHERE conversation_id = $1"
            ))
            .bind(Id(id.into()))
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(Conversation::try_from).transpose()?)
    }

    /// `user`'s member row in `conversation` (current or former).
    pub async fn member(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<Option<Member>, MessageError> {
        let row: Option<MemberRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                member_columns!(),
                " FROM members WHERE conversation_id = $1 AND user_id = $2"
            ))
            .bind(Id(conversation.into()))
            .bind(Id(user.into()))
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(Member::try_from).transpose()?)
    }

    /// `user`'s current conversations with their member rows, newest activity first by
    /// (last_activity_at, id) descending, after `after`; at most `limit`.
    pub async fn list_conversations(
        &self,
        user: UserId,
        filter: ListFilter,
        after: Option<&ConversationPosition>,
        limit: usize,
    ) -> Result<Vec<(Conversation, Member)>, MessageError> {
        list(&self.db, user, filter, after, limit).await
    }
}
