//! [`ReceiptStore`] on PostgreSQL: settings and read watermarks under the member row's lock,
//! then the user's `user_sequences` row (the lock order of the store: conversation, members,
//! user sequences), and per-device delivery receipts as forward-only upserts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{
    PostgresMessageStore, commit_with, member, next_user_seq, order_writes, refuse, sql_limit,
};
use crate::events::receipts::{member_settings_changed, read_marker_moved};
use crate::events::user_event;
use crate::store::receipts::{apply, newly_pinned};
use crate::store::{
    Actor, Delivered, DeviceReceipt, MAX_PINNED_CONVERSATIONS, Member, MemberReceipt, PINNED_LIMIT,
    ReadMark, ReceiptStore, SettingsChange, SettingsUpdate, StoreError,
};

/// The messages that count as unread for the member row being updated (`members`) whose
/// user is `$2` and whose new watermark is `$3`: after the watermark and the member's join,
/// from someone else, not deleted for everyone nor for the member.
macro_rules! unread {
    () => {
        "FROM messages m WHERE m.conversation_id = $1 AND m.seq > $3 \
           AND m.seq > members.joined_at_seq AND m.sender_id <> $2 AND m.deleted_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = $2 AND h.message_id = m.message_id)"
    };
}

#[async_trait]
impl ReceiptStore for PostgresMessageStore {
    async fn update_settings(
        &self,
        actor: Actor,
        conversation: Uuid,
        change: &SettingsChange,
        at: DateTime<Utc>,
    ) -> Result<SettingsUpdate, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        order_writes(&mut tx, None, &[actor.user_id]).await?;
        let Some(current) = locked_member(&mut tx, conversation, actor.user_id).await? else {
            return refuse(tx, StoreError::ConversationNotFound).await;
        };
        let (next, changed) = apply(&current, change, at);
        if changed.is_empty() {
            tx.rollback().await?;
            return Ok(SettingsUpdate {
                member: current,
                changed,
            });
        }
        // The user's seq first: its row lock serialises every settings change of this user,
        // so the pinned count below cannot be overtaken by a concurrent pin.
        let seq = next_user_seq(&mut tx, actor.user_id).await?;
        if newly_pinned(&current, &next) {
            let pinned: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM members WHERE user_id = $1 AND pinned_at IS NOT NULL \
                   AND left_at_seq IS NULL AND conversation_id <> $2",
            )
            .bind(actor.user_id)
            .bind(conversation)
            .fetch_one(&mut *tx)
            .await?;
            if pinned >= MAX_PINNED_CONVERSATIONS {
                return refuse(tx, StoreError::LimitExceeded(PINNED_LIMIT)).await;
            }
        }
        let row = sqlx::query(concat!(
            "UPDATE members SET mute_until = $3, pinned_at = $4, archived = $5 \
             WHERE conversation_id = $1 AND user_id = $2 RETURNING ",
            member_columns!()
        ))
        .bind(conversation)
        .bind(actor.user_id)
        .bind(next.mute_until)
        .bind(next.pinned_at)
        .bind(next.archived)
        .fetch_one(&mut *tx)
        .await?;
        let updated = member(&row)?;
        let kind = member_settings_changed(&updated, &changed);
        let event = user_event(actor.user_id, seq, at, Some(actor.device_id), kind);
        commit_with(&self.outbox, tx, &[event]).await?;
        Ok(SettingsUpdate {
            member: updated,
            changed,
        })
    }

    async fn mark_read(
        &self,
        actor: Actor,
        conversation: Uuid,
        up_to: i64,
        at: DateTime<Utc>,
    ) -> Result<ReadMark, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        order_writes(&mut tx, None, &[actor.user_id]).await?;
        // The member row's lock: a send updating the counters commits before the recount
        // below starts (it then sees the message) or waits for this transaction (and adds
        // its message to the recounted value).
        let Some(current) = locked_member(&mut tx, conversation, actor.user_id).await? else {
            return refuse(tx, StoreError::ConversationNotFound).await;
        };
        let target = up_to.min(last_seq(&mut tx, conversation).await?);
        if target <= current.last_read_seq {
            tx.rollback().await?;
            return Ok(ReadMark {
                member: current,
                moved: false,
            });
        }
        let row = sqlx::query(concat!(
            "UPDATE members SET last_read_seq = $3, read_at = $4, \
               unread_count = (SELECT count(*) ",
            unread!(),
            "), mention_count = (SELECT count(*) ",
            unread!(),
            " AND EXISTS (SELECT 1 FROM mentions n \
                          WHERE n.message_id = m.message_id AND n.user_id = $2)) \
             WHERE conversation_id = $1 AND user_id = $2 RETURNING ",
            member_columns!()
        ))
        .bind(conversation)
        .bind(actor.user_id)
        .bind(target)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        let updated = member(&row)?;
        let seq = next_user_seq(&mut tx, actor.user_id).await?;
        let event = user_event(
            actor.user_id,
            seq,
            at,
            Some(actor.device_id),
            read_marker_moved(&updated),
        );
        commit_with(&self.outbox, tx, &[event]).await?;
        Ok(ReadMark {
            member: updated,
            moved: true,
        })
    }

    async fn mark_delivered(
        &self,
        actor: Actor,
        conversation: Uuid,
        up_to: i64,
        at: DateTime<Utc>,
    ) -> Result<Delivered, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let current: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2 \
               AND left_at_seq IS NULL)",
        )
        .bind(conversation)
        .bind(actor.user_id)
        .fetch_one(&mut *tx)
        .await?;
        if !current {
            return refuse(tx, StoreError::ConversationNotFound).await;
        }
        let target = up_to.min(last_seq(&mut tx, conversation).await?);
        // Forward only, atomically: of two racing acknowledgements the higher one stays.
        let moved = target > 0
            && sqlx::query(
                "INSERT INTO device_receipts (conversation_id, user_id, device_id, \
                   delivered_up_to_seq, delivered_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (conversation_id, user_id, device_id) DO UPDATE \
                 SET delivered_up_to_seq = excluded.delivered_up_to_seq, \
                     delivered_at = excluded.delivered_at \
                 WHERE device_receipts.delivered_up_to_seq < excluded.delivered_up_to_seq",
            )
            .bind(conversation)
            .bind(actor.user_id)
            .bind(actor.device_id)
            .bind(target)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
        let row = sqlx::query(
            "SELECT device_id, delivered_up_to_seq, delivered_at FROM device_receipts \
             WHERE conversation_id = $1 AND user_id = $2 AND device_id = $3",
        )
        .bind(conversation)
        .bind(actor.user_id)
        .bind(actor.device_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let receipt = match row {
            Some(row) => device_receipt(&row)?,
            None => DeviceReceipt {
                device_id: actor.device_id,
                delivered_up_to_seq: 0,
                delivered_at: None,
            },
        };
        Ok(Delivered { receipt, moved })
    }

    async fn device_receipts(
        &self,
        conversation: Uuid,
        user: Uuid,
    ) -> Result<Vec<DeviceReceipt>, StoreError> {
        let rows = sqlx::query(
            "SELECT device_id, delivered_up_to_seq, delivered_at FROM device_receipts \
             WHERE conversation_id = $1 AND user_id = $2 ORDER BY device_id",
        )
        .bind(conversation)
        .bind(user)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(device_receipt).collect::<Result<_, _>>()?)
    }

    async fn member_receipts(
        &self,
        conversation: Uuid,
        except: Uuid,
        min_seq: i64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<MemberReceipt>, StoreError> {
        // Per member, the device that got furthest (the earliest to get there on a tie). A
        // watermark still at the join was set by joining, not by reading: no read receipt.
        let rows = sqlx::query(
            "SELECT m.user_id, \
               CASE WHEN m.last_read_seq > m.joined_at_seq THEN m.last_read_seq ELSE 0 END \
                 AS last_read_seq, \
               CASE WHEN m.last_read_seq > m.joined_at_seq THEN m.read_at END AS read_at, \
               COALESCE(d.delivered_up_to_seq, 0) AS delivered_up_to_seq, d.delivered_at \
             FROM members m LEFT JOIN LATERAL ( \
               SELECT r.delivered_up_to_seq, r.delivered_at FROM device_receipts r \
               WHERE r.conversation_id = m.conversation_id AND r.user_id = m.user_id \
               ORDER BY r.delivered_up_to_seq DESC, r.delivered_at LIMIT 1) d ON TRUE \
             WHERE m.conversation_id = $1 AND m.left_at_seq IS NULL AND m.user_id <> $2 \
               AND (m.last_read_seq > m.joined_at_seq OR d.delivered_up_to_seq IS NOT NULL) \
               AND COALESCE(d.delivered_up_to_seq, 0) >= $3 \
               AND ($4::uuid IS NULL OR m.user_id > $4) \
             ORDER BY m.user_id LIMIT $5",
        )
        .bind(conversation)
        .bind(except)
        .bind(min_seq)
        .bind(after)
        .bind(sql_limit(limit))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MemberReceipt {
                    user_id: row.try_get("user_id")?,
                    last_read_seq: row.try_get("last_read_seq")?,
                    read_at: row.try_get("read_at")?,
                    delivered_up_to_seq: row.try_get("delivered_up_to_seq")?,
                    delivered_at: row.try_get("delivered_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// `user`'s current member row in `conversation`, locked to the end of the transaction.
async fn locked_member(
    conn: &mut PgConnection,
    conversation: Uuid,
    user: Uuid,
) -> Result<Option<Member>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        member_columns!(),
        " FROM members WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL \
          FOR UPDATE"
    ))
    .bind(conversation)
    .bind(user)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(member).transpose()
}

/// The conversation's committed `last_seq` (the highest seq a watermark may name).
async fn last_seq(conn: &mut PgConnection, conversation: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT last_seq FROM conversations WHERE conversation_id = $1")
        .bind(conversation)
        .fetch_one(conn)
        .await
}

fn device_receipt(row: &PgRow) -> Result<DeviceReceipt, sqlx::Error> {
    Ok(DeviceReceipt {
        device_id: row.try_get("device_id")?,
        delivered_up_to_seq: row.try_get("delivered_up_to_seq")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}
