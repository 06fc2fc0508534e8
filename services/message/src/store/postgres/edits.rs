//! [`EditStore`] on postgres: edits and both deletions run under the conversation's row lock
//! (the seq's `take_seq`, or `FOR NO KEY UPDATE` for a deletion for one user, which takes no
//! conversation seq), so the counters they correct cannot race a send or each other.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use prost::Message as _;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{
    PostgresMessageStore, commit_with, corrupt, member, message, next_user_seqs, order_writes,
    refuse, take_seq,
};
use crate::events::edits::{message_deleted, message_deleted_for_me, message_edited};
use crate::events::{conversation_event, user_event};
use crate::store::counted_mentions;
use crate::store::edits::mention_changes;
use crate::store::{Actor, Edit, EditStore, EditVersion, Edited, Member, Message, StoreError};

#[async_trait]
impl EditStore for PostgresMessageStore {
    async fn deleted_for(
        &self,
        user: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT message_id, hidden_at FROM hidden_messages \
             WHERE user_id = $1 AND message_id = ANY($2)",
        )
        .bind(user)
        .bind(ids)
        .fetch_all(&self.db.pool)
        .await?)
    }

    async fn edit(
        &self,
        actor: Actor,
        edit: &Edit,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<Edited, StoreError> {
        edit_message(&self.db.pool, &self.outbox, actor, edit, at, window).await
    }

    async fn edit_history(
        &self,
        conversation: Uuid,
        id: Uuid,
    ) -> Result<Vec<EditVersion>, StoreError> {
        let rows: Vec<(i32, Vec<u8>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT e.version, e.content, e.created_at FROM message_edits e \
             JOIN messages m USING (message_id) \
             WHERE e.message_id = $1 AND m.conversation_id = $2 ORDER BY e.version",
        )
        .bind(id)
        .bind(conversation)
        .fetch_all(&self.db.pool)
        .await?;
        rows.into_iter()
            .map(|(version, content, created_at)| {
                let content = prost::Message::decode(content.as_slice())
                    .map_err(|e| corrupt("edit content", e))?;
                Ok(EditVersion {
                    version,
                    content,
                    created_at,
                })
            })
            .collect()
    }

    async fn delete_for_me(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        delete_for_me(&self.db.pool, &self.outbox, actor, conversation, id, at).await
    }

    async fn delete_for_everyone(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        delete_for_everyone(&self.db.pool, &self.outbox, actor, conversation, id, at).await
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
/// join (`MessageNotFound`). The caller holds the conversation's lock.
async fn target(
    conn: &mut PgConnection,
    actor: Uuid,
    conversation: Uuid,
    id: Uuid,
) -> Result<Target, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        member_columns!(),
        " FROM members WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL"
    ))
    .bind(conversation)
    .bind(actor)
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
    .bind(conversation)
    .bind(id)
    .bind(actor)
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
    pool: &PgPool,
    outbox: &Outbox,
    actor: Actor,
    edit: &Edit,
    at: DateTime<Utc>,
    window: chrono::Duration,
) -> Result<Edited, StoreError> {
    let mut tx = pool.begin().await?;
    order_writes(&mut tx, Some(edit.conversation_id), &[]).await?;
    let Some((seq, _)) = take_seq(&mut tx, edit.conversation_id, None).await? else {
        return refuse(tx, StoreError::ConversationNotFound).await;
    };
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
    let before: Vec<Uuid> =
        sqlx::query_scalar("SELECT user_id FROM mentions WHERE message_id = $1")
            .bind(current.id)
            .fetch_all(&mut *tx)
            .await?;
    let (added, removed) = mention_changes(&before, &edit.mentioned);
    // New mentions count only for those who can see the message: current members other than
    // the sender who joined before it and have not deleted it for themselves. Anyone else
    // stays mentioned in the content alone.
    let eligible: Vec<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM members m \
         WHERE conversation_id = $1 AND user_id = ANY($2) AND left_at_seq IS NULL \
           AND user_id <> $3 AND joined_at_seq < $4 \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = m.user_id AND h.message_id = $5)",
    )
    .bind(edit.conversation_id)
    .bind(&added)
    .bind(current.sender_id)
    .bind(current.seq)
    .bind(current.id)
    .fetch_all(&mut *tx)
    .await?;
    let added = counted_mentions(&added, &eligible);
    let Some(old_content) = current.content.as_ref() else {
        return refuse(tx, StoreError::MessageDeleted).await;
    };
    if *old_content == edit.content {
        tx.rollback().await?;
        return Ok(Edited::Unchanged(current));
    }
    sqlx::query(
        "INSERT INTO message_edits (message_id, version, content, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(current.id)
    .bind(current.edit_count)
    .bind(old_content.encode_to_vec())
    .bind(current.edited_at.unwrap_or(current.created_at))
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(concat!(
        "UPDATE messages SET content = $2, body = $3, edited_at = $4, \
           edit_count = edit_count + 1 \
         WHERE message_id = $1 RETURNING ",
        message_columns!()
    ))
    .bind(current.id)
    .bind(edit.content.encode_to_vec())
    .bind(&edit.content.text)
    .bind(at)
    .fetch_one(&mut *tx)
    .await?;
    let edited = message(&row)?;
    // Only members still counting the message as unread hold a mention of it in their count.
    sqlx::query(
        "UPDATE members m SET mention_count = \
           GREATEST(mention_count + CASE WHEN user_id = ANY($3) THEN 1 ELSE -1 END, 0) \
         WHERE conversation_id = $1 AND left_at_seq IS NULL AND user_id <> $4 \
           AND (user_id = ANY($3) OR user_id = ANY($5)) \
           AND $2 > last_read_seq AND $2 > joined_at_seq \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = m.user_id AND h.message_id = $6)",
    )
    .bind(edit.conversation_id)
    .bind(current.seq)
    .bind(&added)
    .bind(current.sender_id)
    .bind(&removed)
    .bind(current.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM mentions WHERE message_id = $1 AND user_id = ANY($2)")
        .bind(current.id)
        .bind(&removed)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO mentions (message_id, user_id, conversation_id, seq) \
         SELECT $1, mentioned, $2, $3 FROM unnest($4::uuid[]) AS mentioned",
    )
    .bind(current.id)
    .bind(edit.conversation_id)
    .bind(current.seq)
    .bind(&added)
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
    pool: &PgPool,
    outbox: &Outbox,
    actor: Actor,
    conversation: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    // Before the row lock below (which assigns the xid): only the actor's user seq is taken.
    order_writes(&mut tx, None, &[actor.user_id]).await?;
    // The lock a sequenced change takes, without a seq: a send or a deletion for everyone
    // counting this member waits, so the message is counted exactly once either way.
    let locked: Option<i16> = sqlx::query_scalar(
        "SELECT kind FROM conversations WHERE conversation_id = $1 FOR NO KEY UPDATE",
    )
    .bind(conversation)
    .fetch_optional(&mut *tx)
    .await?;
    if locked.is_none() {
        return refuse(tx, StoreError::ConversationNotFound).await;
    }
    let target = match target(&mut tx, actor.user_id, conversation, id).await {
        Ok(target) => target,
        Err(refusal) => return refuse(tx, refusal).await,
    };
    if target.hidden {
        tx.rollback().await?;
        return Ok(false);
    }
    let message = &target.message;
    sqlx::query(
        "INSERT INTO hidden_messages (user_id, message_id, conversation_id, seq, hidden_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(actor.user_id)
    .bind(message.id)
    .bind(conversation)
    .bind(message.seq)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let counted = message.deleted_at.is_none() && message.sender_id != actor.user_id;
    let mentioned: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM mentions WHERE message_id = $1 AND user_id = $2)",
    )
    .bind(message.id)
    .bind(actor.user_id)
    .fetch_one(&mut *tx)
    .await?;
    // The watermark is compared in the UPDATE itself, on the row it locks.
    let (unread, mentions): (i32, i32) = sqlx::query_as(
        "UPDATE members SET \
           unread_count = GREATEST(unread_count - \
             CASE WHEN $3 AND $4 > last_read_seq THEN 1 ELSE 0 END, 0), \
           mention_count = GREATEST(mention_count - \
             CASE WHEN $3 AND $5 AND $4 > last_read_seq THEN 1 ELSE 0 END, 0) \
         WHERE conversation_id = $1 AND user_id = $2 RETURNING unread_count, mention_count",
    )
    .bind(conversation)
    .bind(actor.user_id)
    .bind(counted)
    .bind(message.seq)
    .bind(mentioned)
    .fetch_one(&mut *tx)
    .await?;
    let user_seq = next_user_seqs(&mut tx, &[actor.user_id]).await?[&actor.user_id];
    let kind = message_deleted_for_me(conversation, message.id, unread, mentions);
    let event = user_event(actor.user_id, user_seq, at, Some(actor.device_id), kind);
    commit_with(outbox, tx, &[event]).await?;
    Ok(true)
}

/// See [`EditStore::delete_for_everyone`].
async fn delete_for_everyone(
    pool: &PgPool,
    outbox: &Outbox,
    actor: Actor,
    conversation: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    order_writes(&mut tx, Some(conversation), &[]).await?;
    let Some((seq, kind)) = take_seq(&mut tx, conversation, None).await? else {
        return refuse(tx, StoreError::ConversationNotFound).await;
    };
    let Target {
        member, message, ..
    } = match target(&mut tx, actor.user_id, conversation, id).await {
        Ok(target) => target,
        Err(refusal) => return refuse(tx, refusal).await,
    };
    if let Err(refusal) = message.check_deletable(actor.user_id, kind, member.role) {
        return refuse(tx, refusal).await;
    }
    if message.deleted_at.is_some() {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "UPDATE members m SET unread_count = GREATEST(unread_count - 1, 0), \
           mention_count = GREATEST(mention_count - CASE WHEN EXISTS \
             (SELECT 1 FROM mentions x WHERE x.message_id = $2 AND x.user_id = m.user_id) \
             THEN 1 ELSE 0 END, 0) \
         WHERE conversation_id = $1 AND left_at_seq IS NULL AND user_id <> $3 \
           AND $4 > last_read_seq AND $4 > joined_at_seq \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = m.user_id AND h.message_id = $2)",
    )
    .bind(conversation)
    .bind(message.id)
    .bind(message.sender_id)
    .bind(message.seq)
    .execute(&mut *tx)
    .await?;
    for table in ["mentions", "reactions", "pins", "message_edits"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE message_id = $1"
        )))
        .bind(message.id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE messages SET content = NULL, body = NULL, deleted_at = $2, \
           request_hash = ''::bytea \
         WHERE message_id = $1",
    )
    .bind(message.id)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    if let Some(root) = message.thread_root_message_id {
        sqlx::query(
            "UPDATE messages SET reply_count = GREATEST(reply_count - 1, 0) WHERE message_id = $1",
        )
        .bind(root)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE conversations SET last_message_id = \
           (SELECT message_id FROM messages \
            WHERE conversation_id = $1 AND deleted_at IS NULL ORDER BY seq DESC LIMIT 1) \
         WHERE conversation_id = $1 AND last_message_id = $2",
    )
    .bind(conversation)
    .bind(message.id)
    .execute(&mut *tx)
    .await?;
    let kind = message_deleted(message.id, message.thread_root_message_id);
    let event = conversation_event(conversation, seq, at, actor, kind);
    commit_with(outbox, tx, &[event]).await?;
    Ok(true)
}
