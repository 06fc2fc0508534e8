//! Expiry and retention written once for both backends (docs/lifecycle.md): one bounded batch
//! of messages whose time is up, erased exactly as a deletion for everyone
//! ([`super::store_edits::deletes::erase`]), with one MessagesExpired per conversation and
//! reason.
//!
//! A batch is one short transaction of at most `limit` messages (the sweep runs batches until
//! one comes back short), so a send waits at most one batch on a conversation it shares.
//! Due rows are first read without a lock, then, after the write-order locks of their
//! conversations (which must come before any row lock, see `codec::order_writes`), locked
//! again and re-checked: on PostgreSQL `FOR NO KEY UPDATE SKIP LOCKED`, so two instances sweeping
//! at once never erase the same row twice (a row another instance holds is skipped, one it
//! erased meanwhile no longer matches `deleted_at IS NULL`); SQLite has one writer.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use echo_bus::Event;
use echo_ids::{ConversationId, MessageId};
use echo_proto::echo::message::v1 as pb;
use echo_store::{Tx, placeholders, sql_limit, with_tx};
use sqlx::AssertSqlSafe;

use super::events::messages_expired;
use super::store_edits::deletes::erase;
use crate::error::MessageError;
use crate::events::server_conversation_event;
use crate::store::codec::{At, Id, MessageRow, commit_with, decode_all, message_columns};
use crate::store::codec::{order_writes, take_seq};
use crate::store::{Kind, Message, MessageStore};

/// The operator's retention: messages older than this, per kind of conversation, are erased
/// (reason RETENTION); None keeps them forever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// DIRECT conversations.
    pub direct: Option<TimeDelta>,
    /// GROUP conversations.
    pub group: Option<TimeDelta>,
    /// CHANNEL conversations.
    pub channel: Option<TimeDelta>,
}

impl Retention {
    /// The max age for `kind`.
    pub fn max_age(&self, kind: Kind) -> Option<TimeDelta> {
        match kind {
            Kind::Direct => self.direct,
            Kind::Group => self.group,
            Kind::Channel => self.channel,
        }
    }
}

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpiryBatch {
    /// Messages erased.
    pub erased: usize,
    /// Whether the batch read `limit` due messages: more may be due, run another.
    pub full: bool,
}

/// The most messages one batch may erase (one transaction).
pub const MAX_EXPIRY_BATCH: usize = 1_000;

impl MessageStore {
    /// Erases at most `limit` (1..=[`MAX_EXPIRY_BATCH`]) messages whose time is up at `now`, in
    /// one transaction: first those whose `expires_at` is at or before `now` (reason
    /// MESSAGE_TTL), then those created before `now - max_age` of their conversation's kind
    /// under `retention` (reason RETENTION), oldest first. Each is erased exactly as
    /// [`delete_for_everyone`](Self::delete_for_everyone) erases (counters corrected, mentions,
    /// reactions, pins, edits, search text and content gone, a tombstone with `deleted_at` =
    /// `now`), and each conversation gets one MessagesExpired per reason, server-caused, with
    /// its next seq. Returns how many were erased, and whether the batch was full (more may
    /// be due).
    pub async fn expire_batch(
        &self,
        now: DateTime<Utc>,
        retention: &Retention,
        limit: usize,
    ) -> Result<ExpiryBatch, MessageError> {
        let limit = limit.clamp(1, MAX_EXPIRY_BATCH);
        let mut tx = self.db.begin().await?;
        let due = due(&mut tx, now, retention, limit).await?;
        let full = due.len() == limit;
        let erased = self.erase_due(tx, &due, now).await?;
        Ok(ExpiryBatch { erased, full })
    }

    /// Erases at most `limit` (1..=[`MAX_EXPIRY_BATCH`]) live messages of `conversation`
    /// created before `before` whose seq is above `after_seq`, lowest seq first, in one
    /// transaction, as [`expire_batch`](Self::expire_batch) erases (reason OPERATOR_PURGE).
    /// Returns the batch and the highest seq it read (the next batch's `after_seq`: erased
    /// tombstones are never scanned again).
    pub async fn purge_batch(
        &self,
        conversation: ConversationId,
        before: DateTime<Utc>,
        after_seq: i64,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<(ExpiryBatch, i64), MessageError> {
        let limit = limit.clamp(1, MAX_EXPIRY_BATCH);
        let mut tx = self.db.begin().await?;
        let rows: Vec<(Id, i64)> = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT message_id, seq FROM messages \
                 WHERE conversation_id = $1 AND seq > $2 AND created_at < $3 \
                   AND deleted_at IS NULL \
                 ORDER BY seq LIMIT $4",
            )
            .bind(Id(conversation.into()))
            .bind(after_seq)
            .bind(At(before))
            .bind(sql_limit(limit))
            .fetch_all(c)
            .await
        })?;
        let last_seq = rows.last().map_or(after_seq, |(_, seq)| *seq);
        let due: Vec<_> = rows
            .into_iter()
            .map(|(m, _)| (m.0.into(), conversation, pb::ExpiryReason::OperatorPurge))
            .collect();
        let full = due.len() == limit;
        let erased = self.erase_due(tx, &due, now).await?;
        Ok((ExpiryBatch { erased, full }, last_seq))
    }

    /// Erases `due` (read in `tx` without a lock) and commits `tx` with one MessagesExpired
    /// per conversation and reason; how many were erased (rows another instance took meanwhile
    /// are skipped). Rolls back when there is nothing to erase.
    async fn erase_due(
        &self,
        mut tx: Tx,
        due: &[(MessageId, ConversationId, pb::ExpiryReason)],
        now: DateTime<Utc>,
    ) -> Result<usize, MessageError> {
        if due.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let conversations: Vec<ConversationId> = {
            let mut ids: Vec<ConversationId> = due.iter().map(|d| d.1).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        order_writes(&mut tx, &conversations, &[]).await?;
        let locked = lock_due(&mut tx, due).await?;
        // Per conversation (in id order) and reason, the messages in seq order.
        let reasons: BTreeMap<MessageId, pb::ExpiryReason> =
            due.iter().map(|&(id, _, reason)| (id, reason)).collect();
        let mut groups: BTreeMap<(ConversationId, i32), Vec<Message>> = BTreeMap::new();
        for message in locked {
            let reason = reasons[&message.id];
            groups
                .entry((message.conversation_id, reason.into()))
                .or_default()
                .push(message);
        }
        let mut events: Vec<Event> = Vec::with_capacity(groups.len());
        let mut erased = 0;
        for ((conversation, reason), mut messages) in groups {
            // No activity: an erasure does not move the conversation up in lists.
            let Some((seq, _)) = take_seq(&mut tx, conversation, None).await? else {
                continue;
            };
            messages.sort_by_key(|m| m.seq);
            erase(&mut tx, conversation, &messages, now).await?;
            erased += messages.len();
            let reason = pb::ExpiryReason::try_from(reason).unwrap_or_default();
            let kind = messages_expired(&messages, reason);
            events.push(server_conversation_event(conversation, seq, now, kind));
        }
        if events.is_empty() {
            // Everything read was taken by another instance meanwhile.
            tx.rollback().await?;
            return Ok(0);
        }
        commit_with(&self.outbox, tx, &events).await?;
        Ok(erased)
    }
}

/// Up to `limit` live messages due at `now`: (id, conversation, reason), TTL first. A plain
/// read (no lock, so no xid before the write-order locks).
async fn due(
    tx: &mut Tx,
    now: DateTime<Utc>,
    retention: &Retention,
    limit: usize,
) -> Result<Vec<(MessageId, ConversationId, pb::ExpiryReason)>, MessageError> {
    let rows: Vec<(Id, Id)> = with_tx!(&mut *tx, |c| {
        sqlx::query_as(
            "SELECT message_id, conversation_id FROM messages \
             WHERE expires_at IS NOT NULL AND expires_at <= $1 AND deleted_at IS NULL \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(At(now))
        .bind(sql_limit(limit))
        .fetch_all(c)
        .await
    })?;
    let mut due: Vec<_> = rows
        .into_iter()
        .map(|(m, c)| (m.0.into(), c.0.into(), pb::ExpiryReason::MessageTtl))
        .collect();
    for kind in [Kind::Direct, Kind::Group, Kind::Channel] {
        let left = limit - due.len();
        let Some(max_age) = retention.max_age(kind) else {
            continue;
        };
        if left == 0 {
            break;
        }
        let rows: Vec<(Id, Id)> = with_tx!(&mut *tx, |c| {
            sqlx::query_as(
                "SELECT m.message_id, m.conversation_id \
                 FROM messages m JOIN conversations c ON c.conversation_id = m.conversation_id \
                 WHERE c.kind = $1 AND m.created_at < $2 AND m.deleted_at IS NULL \
                   AND (m.expires_at IS NULL OR m.expires_at > $3) \
                 ORDER BY m.created_at LIMIT $4",
            )
            .bind(kind.code())
            .bind(At(now - max_age))
            .bind(At(now))
            .bind(sql_limit(left))
            .fetch_all(c)
            .await
        })?;
        due.extend(
            rows.into_iter()
                .map(|(m, c)| (m.0.into(), c.0.into(), pb::ExpiryReason::Retention)),
        );
    }
    Ok(due)
}

/// The messages of `due` still live, locked for this transaction. Dialect: PostgreSQL skips
/// rows another transaction holds (`FOR NO KEY UPDATE SKIP LOCKED`: the weaker lock, so a
/// foreign-key check on the row, e.g. a delete-for-me inserting into `hidden_messages`, which
/// takes `FOR KEY SHARE`, neither waits for it nor deadlocks with it); SQLite's writer excludes
/// all.
async fn lock_due(
    tx: &mut Tx,
    due: &[(MessageId, ConversationId, pb::ExpiryReason)],
) -> Result<Vec<Message>, MessageError> {
    let select = format!(
        concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE deleted_at IS NULL AND message_id IN ({})"
        ),
        placeholders(1, due.len())
    );
    let sql = match tx {
        Tx::Postgres(_) => format!("{select} FOR NO KEY UPDATE SKIP LOCKED"),
        Tx::Sqlite(_) => select,
    };
    let rows: Vec<MessageRow> = with_tx!(&mut *tx, sql, |c| {
        let mut query = sqlx::query_as(AssertSqlSafe(sql));
        for (id, _, _) in due {
            query = query.bind(Id((*id).into()));
        }
        query.fetch_all(c).await
    })?;
    Ok(decode_all(rows)?)
}
