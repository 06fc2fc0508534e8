//! A user's conversation list, written once for both backends: their current conversations
//! with their member rows, newest activity first, filtered and paged by keyset.

use chrono::DateTime;
use echo_store::{Database, sql_limit, with_db};
use uuid::Uuid;

use crate::store::codec::{
    At, ConversationRow, Id, MemberRow, conversation_columns, member_state_columns,
};
use crate::store::{Conversation, ConversationPosition, ListFilter, Member, StoreError};

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
pub(super) async fn list(
    db: &Database,
    user: Uuid,
    filter: ListFilter,
    after: Option<&ConversationPosition>,
    limit: usize,
) -> Result<Vec<(Conversation, Member)>, StoreError> {
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
            Some((At(at), Id(position.conversation_id)))
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
        .bind(Id(user))
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
