//! Pins ([`MessageStore::pin`], [`MessageStore::unpin`] and their reads), one script each
//! for both backends, over the common steps of [`super`] (the conversation's seq first, then
//! the checks, a refusal or a no-op rolling the seq back).
//!
//! [`MessageStore::pin`]: crate::store::MessageStore::pin
//! [`MessageStore::unpin`]: crate::store::MessageStore::unpin

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId};
use echo_store::{placeholders, sql_limit, with_db, with_tx};
use sqlx::AssertSqlSafe;

use super::{MessageStore, locked, position_time, target};
use crate::error::MessageError;
use crate::events::conversation_event;
use crate::reactions::events::{message_pinned, message_unpinned};
use crate::reactions::may_pin;
use crate::reactions::{MAX_PINS, Pin, PinPosition};
use crate::store::Actor;
use crate::store::codec::{At, Id, commit_with, refuse};

/// A `pins` row (select [`PIN_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct PinRow {
    message_id: Id,
    conversation_id: Id,
    pinned_by: Id,
    pinned_at: At,
}

/// The pin columns, in [`PinRow`]'s order.
const PIN_COLUMNS: &str = "message_id, conversation_id, pinned_by, pinned_at";

impl From<PinRow> for Pin {
    fn from(row: PinRow) -> Self {
        Pin {
            message_id: row.message_id.0.into(),
            conversation_id: row.conversation_id.0.into(),
            pinned_by: row.pinned_by.0.into(),
            pinned_at: row.pinned_at.0,
        }
    }
}

/// See [`crate::store::MessageStore::pin`].
pub(super) async fn pin(
    db: &MessageStore,
    actor: Actor,
    conversation: ConversationId,
    message: MessageId,
    at: DateTime<Utc>,
) -> Result<(Pin, bool), MessageError> {
    let (mut tx, seq, kind) = locked(db, conversation).await?;
    let target = match target(&mut tx, actor, conversation, message).await? {
        Ok(target) => target,
        Err(refusal) => return refuse(tx, refusal).await,
    };
    if let Err(refusal) = may_pin(kind, target.role) {
        return refuse(tx, refusal).await;
    }
    if target.deleted {
        return refuse(tx, MessageError::MessageDeleted).await;
    }
    let sql = format!("SELECT {PIN_COLUMNS} FROM pins WHERE message_id = $1");
    let existing: Option<PinRow> = with_tx!(&mut tx, |c| {
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(Id(message.into()))
            .fetch_optional(c)
            .await
    })?;
    if let Some(existing) = existing {
        tx.rollback().await?;
        return Ok((existing.into(), false));
    }
    let pins: i64 = with_tx!(&mut tx, |c| {
        sqlx::query_scalar("SELECT count(*) FROM pins WHERE conversation_id = $1")
            .bind(Id(conversation.into()))
            .fetch_one(c)
            .await
    })?;
    if pins >= MAX_PINS {
        return refuse(tx, MessageError::LimitExceeded("pins")).await;
    }
    let sql =
        format!("INSERT INTO pins ({PIN_COLUMNS}) VALUES ($1, $2, $3, $4) RETURNING {PIN_COLUMNS}");
    let row: PinRow = with_tx!(&mut tx, |c| {
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(Id(message.into()))
            .bind(Id(conversation.into()))
            .bind(Id(actor.user_id.into()))
            .bind(At(at))
            .fetch_one(c)
            .await
    })?;
    let event = conversation_event(conversation, seq, at, actor, message_pinned(message));
    commit_with(&db.outbox, tx, &[event]).await?;
    Ok((row.into(), true))
}

/// See [`crate::store::MessageStore::unpin`].
pub(super) async fn unpin(
    db: &MessageStore,
    actor: Actor,
    conversation: ConversationId,
    message: MessageId,
    at: DateTime<Utc>,
) -> Result<bool, MessageError> {
    let (mut tx, seq, kind) = locked(db, conversation).await?;
    let target = match target(&mut tx, actor, conversation, message).await? {
        Ok(target) => target,
        Err(refusal) => return refuse(tx, refusal).await,
    };
    if let Err(refusal) = may_pin(kind, target.role) {
        return refuse(tx, refusal).await;
    }
    let removed = with_tx!(&mut tx, |c| {
        sqlx::query("DELETE FROM pins WHERE message_id = $1")
            .bind(Id(message.into()))
            .execute(c)
            .await?
            .rows_affected()
    });
    if removed == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    let event = conversation_event(conversation, seq, at, actor, message_unpinned(message));
    commit_with(&db.outbox, tx, &[event]).await?;
    Ok(true)
}

/// See [`crate::store::MessageStore::pins`].
pub(super) async fn pins(
    db: &MessageStore,
    conversation: ConversationId,
    above_seq: i64,
    after: Option<&PinPosition>,
    limit: usize,
) -> Result<Vec<Pin>, MessageError> {
    let after = after
        .map(|p| Ok::<_, sqlx::Error>((position_time(p.pinned_micros)?, Id(p.message_id.into()))))
        .transpose()?;
    let rows: Vec<PinRow> = with_db!(&db.db, read, |c| {
        sqlx::query_as(
            "SELECT p.message_id, p.conversation_id, p.pinned_by, p.pinned_at \
             FROM pins p JOIN messages m ON m.message_id = p.message_id \
             WHERE p.conversation_id = $1 AND m.seq > $2 \
               AND ($3 IS NULL OR (p.pinned_at, p.message_id) < ($3, $4)) \
             ORDER BY p.pinned_at DESC, p.message_id DESC LIMIT $5",
        )
        .bind(Id(conversation.into()))
        .bind(above_seq)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(sql_limit(limit))
        .fetch_all(c)
        .await
    })?;
    Ok(rows.into_iter().map(Pin::from).collect())
}

/// See [`crate::store::MessageStore::pinned_among`].
pub(super) async fn pinned_among(
    db: &MessageStore,
    ids: &[MessageId],
) -> Result<Vec<MessageId>, MessageError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT message_id FROM pins WHERE message_id IN ({})",
        placeholders(1, ids.len())
    );
    let pinned: Vec<Id> = with_db!(&db.db, read, sql, |c| {
        let mut query = sqlx::query_scalar(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(Id((*id).into()));
        }
        query.fetch_all(c).await
    })?;
    Ok(pinned.into_iter().map(|id| id.0.into()).collect())
}
