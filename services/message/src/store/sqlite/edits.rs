//! [`EditStore`] on sqlite: every write runs on the single writer in `BEGIN IMMEDIATE`, so the
//! checks, the counters and the seq of an edit or deletion see one state that nothing else
//! changes meanwhile.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use prost::Message as _;
use sqlx::{Row, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::{
    SqliteMessageStore, begin, commit_with, conversation_by_id, decode_error, json_ids, member,
    message, micros, next_seq, next_user_seq, refuse, time, uuid,
};
use crate::events::edits::{message_deleted, message_deleted_for_me, message_edited};
use crate::events::{conversation_event, user_event};
use crate::store::counted_mentions;
use crate::store::edits::mention_changes;
use crate::store::{Actor, Edit, EditStore, EditVersion, Edited, Member, Message, StoreError};

#[async_trait]
impl EditStore for SqliteMessageStore {
    async fn deleted_for(
        &self,
        user: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT message_id, hidden_at FROM hidden_messages \
             WHERE user_id = $1 AND message_id IN (SELECT value FROM json_each($2))",
        )
        .bind(user.to_string())
        .bind(json_ids(ids))
        .fetch_all(&self.db.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((uuid(row, "message_id")?, time(row, "hidden_at")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn edit(
        &self,
        actor: Actor,
        edit: &Edit,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<Edited, StoreError> {
        edit_message(&self.db.writer, &self.outbox, actor, edit, at, window).await
    }

    async fn edit_history(
        &self,
        conversation: Uuid,
        id: Uuid,
    ) -> Result<Vec<EditVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.version, e.content, e.created_at FROM message_edits e \
             JOIN messages m ON m.message_id = e.message_id \
             WHERE e.message_id = $1 AND m.conversation_id = $2 ORDER BY e.version",
        )
        .bind(id.to_string())
        .bind(conversation.to_string())
        .fetch_all(&self.db.reader)
        .await?;
        let version = |row: &sqlx::sqlite::SqliteRow| -> Result<EditVersion, sqlx::Error> {
            let content: Vec<u8> = row.try_get("content")?;
            Ok(EditVersion {
                version: row.try_get("version")?,
                content: prost::Message::decode(content.as_slice())
                    .map_err(|e| decode_error(format!("edit content: {e}")))?,
                created_at: time(row, "created_at")?,
            })
        };
        Ok(rows.iter().map(version).collect::<Result<_, _>>()?)
    }

    async fn delete_for_me(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        delete_for_me(&self.db.writer, &self.outbox, actor, conversation, id, at).await
    }

    async fn delete_for_everyone(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        delete_for_everyone(&self.db.writer, &self.outbox, actor, conversation, id, at).await
    }
}

/// The message an edit or deletion acts on, with its actor's member row.
struct Target {
    member: Member,
    message: Message,
    /// Deleted for the actor alone.
    hidden: bool,
}

/// `actor`'s member row and message `id` (with whether they hid it), when `actor` is a
/// current member (`ConversationNotFound`) and the message is in `conversation` after their
/// join (`MessageNotFound`).
async fn target(
    conn: &mut SqliteConnection,
    actor: Uuid,
    conversation: Uuid,
    id: Uuid,
) -> Result<Target, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT conversation_id, ",
        member_fields!(),
        " FROM members WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL"
    ))
    .bind(conversation.to_string())
    .bind(actor.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let member = row
        .as_ref()
        .map(member)
        .transpose()?
        .ok_or(StoreError::ConversationNotFound)?;
    let row = sqlx::query(concat!(
        "SELECT ",
        message_columns!(),
        ", EXISTS (SELECT 1 FROM hidden_messages h \
                   WHERE h.user_id = $3 AND h.message_id = m.message_id) AS hidden \
         FROM messages m WHERE m.conversation_id = $1 AND m.message_id = $2"
    ))
    .bind(conversation.to_string())
    .bind(id.to_string())
    .bind(actor.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(StoreError::MessageNotFound);
    };
    let message = message(&row)?;
    if message.seq <= member.joined_at_seq {
        return Err(StoreError::MessageNotFound);
    }
    let hidden = row.try_get("hidden")?;
    Ok(Target {
        member,
        message,
        hidden,
    })
}

/// See [`EditStore::edit`].
async fn edit_message(
    writer: &SqlitePool,
    outbox: &Outbox,
    actor: Actor,
    edit: &Edit,
    at: DateTime<Utc>,
    window: chrono::Duration,
) -> Result<Edited, StoreError> {
    let mut tx = begin(writer).await?;
    let current = match target(
        &mut tx,
        actor.user_id,
        edit.conversation_id,
        edit.message_id,
    )
    .await
    .and_then(|target| {
        let message = target.message;
        message.check_editable(actor.user_id, target.hidden, at, window)?;
        Ok(message)
    }) {
        Ok(current) => current,
        Err(refusal) => return refuse(tx, refusal).await,
    };
    if current.edit_count != edit.base_edit_count {
        tx.rollback().await?;
        return Ok(Edited::Stale(current));
    }
    let id = current.id.to_string();
    let conversation = edit.conversation_id.to_string();
    let before: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM mentions WHERE message_id = $1")
            .bind(&id)
            .fetch_all(&mut *tx)
            .await?;
    let before: Vec<Uuid> = before
        .iter()
        .map(|user| Uuid::parse_str(user).map_err(|e| decode_error(format!("mention: {e}"))))
        .collect::<Result<_, _>>()?;
    let (added, removed) = mention_changes(&before, &edit.mentioned);
    // New mentions count only for those who can see the message: current members other than
    // the sender who joined before it and have not deleted it for themselves. Anyone else
    // stays mentioned in the content alone.
    let eligible: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM members \
         WHERE conversation_id = $1 AND user_id IN (SELECT value FROM json_each($2)) \
           AND left_at_seq IS NULL AND user_id <> $3 AND joined_at_seq < $4 \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = members.user_id AND h.message_id = $5)",
    )
    .bind(&conversation)
    .bind(json_ids(&added))
    .bind(current.sender_id.to_string())
    .bind(current.seq)
    .bind(&id)
    .fetch_all(&mut *tx)
    .await?;
    let eligible: Vec<Uuid> = eligible
        .iter()
        .map(|user| Uuid::parse_str(user).map_err(|e| decode_error(format!("member: {e}"))))
        .collect::<Result<_, _>>()?;
    let added = counted_mentions(&added, &eligible);
    let Some(old_content) = current.content.as_ref() else {
        return refuse(tx, StoreError::MessageDeleted).await;
    };
    if *old_content == edit.content {
        tx.rollback().await?;
        return Ok(Edited::Unchanged(current));
    }
    let seq = next_seq(&mut tx, edit.conversation_id, None).await?;
    sqlx::query(
        "INSERT INTO message_edits (message_id, version, content, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(current.edit_count)
    .bind(old_content.encode_to_vec())
    .bind(micros(current.edited_at.unwrap_or(current.created_at)))
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(concat!(
        "UPDATE messages SET content = $2, body = $3, edited_at = $4, \
           edit_count = edit_count + 1 \
         WHERE message_id = $1 RETURNING ",
        message_columns!()
    ))
    .bind(&id)
    .bind(edit.content.encode_to_vec())
    .bind(&edit.content.text)
    .bind(micros(at))
    .fetch_one(&mut *tx)
    .await?;
    let edited = message(&row)?;
    // Only members still counting the message as unread hold a mention of it in their count.
    sqlx::query(
        "UPDATE members SET mention_count = max(mention_count + \
           CASE WHEN user_id IN (SELECT value FROM json_each($3)) THEN 1 ELSE -1 END, 0) \
         WHERE conversation_id = $1 AND left_at_seq IS NULL AND user_id <> $4 \
           AND (user_id IN (SELECT value FROM json_each($3)) \
                OR user_id IN (SELECT value FROM json_each($5))) \
           AND $2 > last_read_seq AND $2 > joined_at_seq \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = members.user_id AND h.message_id = $6)",
    )
    .bind(&conversation)
    .bind(current.seq)
    .bind(json_ids(&added))
    .bind(current.sender_id.to_string())
    .bind(json_ids(&removed))
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM mentions WHERE message_id = $1 \
           AND user_id IN (SELECT value FROM json_each($2))",
    )
    .bind(&id)
    .bind(json_ids(&removed))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO mentions (message_id, user_id, conversation_id, seq) \
         SELECT $1, value, $2, $3 FROM json_each($4)",
    )
    .bind(&id)
    .bind(&conversation)
    .bind(current.seq)
    .bind(json_ids(&added))
    .execute(&mut *tx)
    .await?;
    let event = conversation_event(
        edit.conversation_id,
        seq,
        at,
        actor,
        message_edited(&edited, &added),
    );
    commit_with(outbox, tx, &[event]).await?;
    Ok(Edited::Changed {
        message: edited,
        newly_mentioned: added,
    })
}

/// See [`EditStore::delete_for_me`].
async fn delete_for_me(
    writer: &SqlitePool,
    outbox: &Outbox,
    actor: Actor,
    conversation: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = begin(writer).await?;
    let target = match target(&mut tx, actor.user_id, conversation, id).await {
        Ok(target) => target,
        Err(refusal) => return refuse(tx, refusal).await,
    };
    if target.hidden {
        tx.rollback().await?;
        return Ok(false);
    }
    let message = &target.message;
    let user = actor.user_id.to_string();
    sqlx::query(
        "INSERT INTO hidden_messages (user_id, message_id, conversation_id, seq, hidden_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&user)
    .bind(message.id.to_string())
    .bind(conversation.to_string())
    .bind(message.seq)
    .bind(micros(at))
    .execute(&mut *tx)
    .await?;
    let counted = message.deleted_at.is_none()
        && message.sender_id != actor.user_id
        && message.seq > target.member.last_read_seq;
    let mentioned: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM mentions WHERE message_id = $1 AND user_id = $2)",
    )
    .bind(message.id.to_string())
    .bind(&user)
    .fetch_one(&mut *tx)
    .await?;
    let (unread, mentions): (i32, i32) = sqlx::query_as(
        "UPDATE members SET \
           unread_count = max(unread_count - $3, 0), \
           mention_count = max(mention_count - $4, 0) \
         WHERE conversation_id = $1 AND user_id = $2 RETURNING unread_count, mention_count",
    )
    .bind(conversation.to_string())
    .bind(&user)
    .bind(i32::from(counted))
    .bind(i32::from(counted && mentioned))
    .fetch_one(&mut *tx)
    .await?;
    let user_seq = next_user_seq(&mut tx, actor.user_id).await?;
    let kind = message_deleted_for_me(conversation, message.id, unread, mentions);
    let event = user_event(actor.user_id, user_seq, at, Some(actor.device_id), kind);
    commit_with(outbox, tx, &[event]).await?;
    Ok(true)
}

/// See [`EditStore::delete_for_everyone`].
async fn delete_for_everyone(
    writer: &SqlitePool,
    outbox: &Outbox,
    actor: Actor,
    conversation: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = begin(writer).await?;
    let Target {
        member, message, ..
    } = match target(&mut tx, actor.user_id, conversation, id).await {
        Ok(target) => target,
        Err(refusal) => return refuse(tx, refusal).await,
    };
    let Some(found) = conversation_by_id(&mut *tx, conversation).await? else {
        return refuse(tx, StoreError::ConversationNotFound).await;
    };
    if let Err(refusal) = message.check_deletable(actor.user_id, found.kind, member.role) {
        return refuse(tx, refusal).await;
    }
    if message.deleted_at.is_some() {
        tx.rollback().await?;
        return Ok(false);
    }
    let seq = next_seq(&mut tx, conversation, None).await?;
    let conversation_text = conversation.to_string();
    let id = message.id.to_string();
    sqlx::query(
        "UPDATE members SET unread_count = max(unread_count - 1, 0), \
           mention_count = max(mention_count - EXISTS (SELECT 1 FROM mentions x \
             WHERE x.message_id = $2 AND x.user_id = members.user_id), 0) \
         WHERE conversation_id = $1 AND left_at_seq IS NULL AND user_id <> $3 \
           AND $4 > last_read_seq AND $4 > joined_at_seq \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = members.user_id AND h.message_id = $2)",
    )
    .bind(&conversation_text)
    .bind(&id)
    .bind(message.sender_id.to_string())
    .bind(message.seq)
    .execute(&mut *tx)
    .await?;
    for table in ["mentions", "reactions", "pins", "message_edits"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE message_id = $1"
        )))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE messages SET content = NULL, body = NULL, deleted_at = $2, \
           request_hash = X'' \
         WHERE message_id = $1",
    )
    .bind(&id)
    .bind(micros(at))
    .execute(&mut *tx)
    .await?;
    if let Some(root) = message.thread_root_message_id {
        sqlx::query(
            "UPDATE messages SET reply_count = max(reply_count - 1, 0) WHERE message_id = $1",
        )
        .bind(root.to_string())
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE conversations SET last_message_id = \
           (SELECT message_id FROM messages \
            WHERE conversation_id = $1 AND deleted_at IS NULL ORDER BY seq DESC LIMIT 1) \
         WHERE conversation_id = $1 AND last_message_id = $2",
    )
    .bind(&conversation_text)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    let kind = message_deleted(message.id, message.thread_root_message_id);
    let event = conversation_event(conversation, seq, at, actor, kind);
    commit_with(outbox, tx, &[event]).await?;
    Ok(true)
}
