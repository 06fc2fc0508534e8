//! [`MessageStore`]: a member's private settings (mute, pin, archive) and
//! read watermark, each a transaction script under the member row's lock that takes the
//! user's next seq and appends one user event; per-device delivery receipts as forward-only
//! upserts (no event); and the receipts others see. Written once for both backends.
//!
//! Locking: on PostgreSQL the member row is read `FOR UPDATE` after the write-order locks,
//! then the user's `user_sequences` row is locked (the store's lock order: conversation,
//! members, user sequences); on SQLite the `BEGIN IMMEDIATE` single writer excludes every
//! other write, which gives the same guarantees.

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, UserId};
use echo_store::{Tx, sql_limit, with_db, with_tx};

use super::events::{member_settings_changed, read_marker_moved};
use super::{apply, newly_pinned};
use crate::error::MessageError;
use crate::events::user_event;
use crate::store::MessageStore;
use crate::store::codec::{
    At, Id, MemberRow, commit_with, for_update, member_columns, next_user_seq, order_writes, refuse,
};
use crate::store::{
    Actor, Delivered, DeviceReceipt, MAX_PINNED_CONVERSATIONS, Member, MemberReceipt, PINNED_LIMIT,
    ReadMark, SettingsChange, SettingsUpdate,
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

/// A `device_receipts` row: device, watermark, when it last moved.
type ReceiptRow = (Id, i64, At);

fn device_receipt((device, up_to, at): ReceiptRow) -> DeviceReceipt {
    DeviceReceipt {
        device_id: device.0.into(),
        delivered_up_to_seq: up_to,
        delivered_at: Some(at.0),
    }
}

/// Another member's receipt as read: user, read watermark and time (0 and NULL until they
/// read past their join), highest delivered watermark (0: none) and when it was reached.
type MemberReceiptRow = (Id, i64, Option<At>, i64, Option<At>);

impl MessageStore {
    /// Changes `actor`'s own settings in `conversation` (any kind), in one transaction under
    /// the member row's lock: `ConversationNotFound` unless `actor` is a current member. A
    /// setting is changed only when its new value differs from the stored one (pinning an
    /// already pinned conversation keeps its `pinned_at`); nothing changed: the current row,
    /// no user seq, no event. Pinning sets `pinned_at = at` (the pin order); when the user
    /// already has [`MAX_PINNED_CONVERSATIONS`] other current conversations pinned it is
    /// refused with `LimitExceeded(PINNED_LIMIT)`, counted under the user's `user_sequences`
    /// row lock (PostgreSQL) or the single writer (SQLite), so concurrent pins of one user
    /// cannot overshoot. Otherwise: the row updated, the user's next seq, one
    /// MemberSettingsChanged (all settings after, mask of what changed).
    pub async fn update_settings(
        &self,
        actor: Actor,
        conversation: ConversationId,
        change: &SettingsChange,
        at: DateTime<Utc>,
    ) -> Result<SettingsUpdate, MessageError> {
        let mut tx = self.db.begin().await?;
        order_writes(&mut tx, &[], &[actor.user_id]).await?;
        let Some(current) = locked_member(&mut tx, conversation, actor.user_id).await? else {
            return refuse(tx, MessageError::ConversationNotFound).await;
        };
        let (next, changed) = apply(&current, change, at);
        if changed.is_empty() {
            tx.rollback().await?;
            return Ok(SettingsUpdate {
                member: current,
                changed,
            });
        }
        // The user's seq first: on PostgreSQL its row lock serialises every settings change of
        // this user, so the pinned count below cannot be overtaken by a concurrent pin (on
        // SQLite the single writer does; a refusal rolls the seq back on both).
        let seq = next_user_seq(&mut tx, actor.user_id).await?;
        if newly_pinned(&current, &next) {
            let pinned: i64 = with_tx!(&mut tx, |c| {
                sqlx::query_scalar(
                    "SELECT count(*) FROM members WHERE user_id = $1 AND pinned_at IS NOT NULL \
                       AND left_at_seq IS NULL AND conversation_id <> $2",
                )
                .bind(Id(actor.user_id.into()))
                .bind(Id(conversation.into()))
                .fetch_one(c)
                .await?
            });
            if pinned >= MAX_PINNED_CONVERSATIONS {
                return refuse(tx, MessageError::LimitExceeded(PINNED_LIMIT)).await;
            }
        }
        let row: MemberRow = with_tx!(&mut tx, |c| {
            sqlx::query_as(concat!(
                "UPDATE members SET mute_until = $3, pinned_at = $4, archived = $5 \
                 WHERE conversation_id = $1 AND user_id = $2 RETURNING ",
                member_columns!()
            ))
            .bind(Id(conversation.into()))
            .bind(Id(actor.user_id.into()))
            .bind(next.mute_until.map(At))
            .bind(next.pinned_at.map(At))
            .bind(next.archived)
            .fetch_one(c)
            .await?
        });
        let updated = Member::try_from(row)?;
        let kind = member_settings_changed(&updated, &changed);
        let event = user_event(actor.user_id, seq, at, Some(actor.device_id), kind);
        commit_with(&self.outbox, tx, &[event]).await?;
        Ok(SettingsUpdate {
            member: updated,
            changed,
        })
    }

    /// Moves `actor`'s read watermark in `conversation` to `up_to` (≥ 0), lowered to the
    /// conversation's `last_seq`, under the member row's lock (so a concurrent send's counter
    /// increment is either seen by the recount or applied after it): `ConversationNotFound`
    /// unless a current member. At or below the current watermark: nothing changes (`moved`
    /// false, no seq, no event). Otherwise `last_read_seq`, `read_at = at`, and the counters
    /// recounted from the messages above the new watermark and after the member's join, sent
    /// by others, not deleted for everyone nor hidden for the member (`mention_count`: those
    /// with a mention row for the member); the user's next seq and one ReadMarkerMoved.
    pub async fn mark_read(
        &self,
        actor: Actor,
        conversation: ConversationId,
        up_to: i64,
        at: DateTime<Utc>,
    ) -> Result<ReadMark, MessageError> {
        let mut tx = self.db.begin().await?;
        order_writes(&mut tx, &[], &[actor.user_id]).await?;
        // The member row's lock (PostgreSQL; the single writer on SQLite): a send updating the
        // counters commits before the recount below starts (it then sees the message) or waits
        // for this transaction (and adds its message to the recounted value).
        let Some(current) = locked_member(&mut tx, conversation, actor.user_id).await? else {
            return refuse(tx, MessageError::ConversationNotFound).await;
        };
        let target = up_to.min(last_seq(&mut tx, conversation).await?);
        if target <= current.last_read_seq {
            tx.rollback().await?;
            return Ok(ReadMark {
                member: current,
                moved: false,
            });
        }
        let row: MemberRow = with_tx!(&mut tx, |c| {
            sqlx::query_as(concat!(
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
            .bind(Id(conversation.into()))
            .bind(Id(actor.user_id.into()))
            .bind(target)
            .bind(At(at))
            .fetch_one(c)
            .await?
        });
        let updated = Member::try_from(row)?;
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

    /// Moves the delivered watermark of `actor.device_id` in `conversation` to `up_to` (≥ 0),
    /// lowered to `last_seq`, forward only: `ConversationNotFound` unless a current member.
    /// No durable event (receipts are merged state). `moved` when it went up.
    pub async fn mark_delivered(
        &self,
        actor: Actor,
        conversation: ConversationId,
        up_to: i64,
        at: DateTime<Utc>,
    ) -> Result<Delivered, MessageError> {
        // No event, so no write order to keep: no order_writes, and no member row lock (the
        // upsert below is atomic on its own).
        let mut tx = self.db.begin().await?;
        let current: bool = with_tx!(&mut tx, |c| {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 \
                   AND user_id = $2 AND left_at_seq IS NULL)",
            )
            .bind(Id(conversation.into()))
            .bind(Id(actor.user_id.into()))
            .fetch_one(c)
            .await?
        });
        if !current {
            return refuse(tx, MessageError::ConversationNotFound).await;
        }
        let target = up_to.min(last_seq(&mut tx, conversation).await?);
        let (conversation, user, device) = (
            Id(conversation.into()),
            Id(actor.user_id.into()),
            Id(actor.device_id.into()),
        );
        // Forward only, atomically: of two racing acknowledgements the higher one stays.
        let moved = target > 0
            && with_tx!(&mut tx, |c| {
                sqlx::query(
                    "INSERT INTO device_receipts (conversation_id, user_id, device_id, \
                       delivered_up_to_seq, delivered_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (conversation_id, user_id, device_id) DO UPDATE \
                     SET delivered_up_to_seq = excluded.delivered_up_to_seq, \
                         delivered_at = excluded.delivered_at \
                     WHERE device_receipts.delivered_up_to_seq < excluded.delivered_up_to_seq",
                )
                .bind(conversation)
                .bind(user)
                .bind(device)
                .bind(target)
                .bind(At(at))
                .execute(c)
                .await?
                .rows_affected()
            }) == 1;
        let row: Option<ReceiptRow> = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT device_id, delivered_up_to_seq, delivered_at FROM device_receipts \
                 WHERE conversation_id = $1 AND user_id = $2 AND device_id = $3",
            )
            .bind(conversation)
            .bind(user)
            .bind(device)
            .fetch_optional(c)
            .await?
        });
        tx.commit().await?;
        let receipt = row.map(device_receipt).unwrap_or(DeviceReceipt {
            device_id: actor.device_id,
            delivered_up_to_seq: 0,
            delivered_at: None,
        });
        Ok(Delivered { receipt, moved })
    }

    /// The delivery receipts of `user`'s devices in `conversation`, by device id.
    pub async fn device_receipts(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<Vec<DeviceReceipt>, MessageError> {
        let rows: Vec<ReceiptRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(
                "SELECT device_id, delivered_up_to_seq, delivered_at FROM device_receipts \
                 WHERE conversation_id = $1 AND user_id = $2 ORDER BY device_id",
            )
            .bind(Id(conversation.into()))
            .bind(Id(user.into()))
            .fetch_all(c)
            .await?
        });
        Ok(rows.into_iter().map(device_receipt).collect())
    }

    /// The receipts of the current members of `conversation` other than `except` who
    /// acknowledged anything (read or delivered above 0), delivered at least `min_seq` (when
    /// positive), ordered by user id after `after`; at most `limit`. The delivered watermark is the
    /// maximum over the member's devices. A member has read only once their watermark is above
    /// their `joined_at_seq` (joining sets it there, which is not a read): until then
    /// `last_read_seq` is 0 and `read_at` None. Delivery receipts of an earlier membership do
    /// not count: joining again deletes them (see `MessageStore::add_members`).
    pub async fn member_receipts(
        &self,
        conversation: ConversationId,
        except: UserId,
        min_seq: i64,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<MemberReceipt>, MessageError> {
        // Per member, the device that got furthest (the earliest to get there on a tie), each
        // an index lookup on device_receipts' key. A watermark still at the join was set by
        // joining, not by reading: no read receipt. Receipts rows exist only above 0 (see
        // mark_delivered), so "delivered anything" is "delivered above 0".
        let rows: Vec<MemberReceiptRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(
                "SELECT * FROM ( \
                   SELECT m.user_id, \
                     CASE WHEN m.last_read_seq > m.joined_at_seq THEN m.last_read_seq ELSE 0 END \
                       AS last_read_seq, \
                     CASE WHEN m.last_read_seq > m.joined_at_seq THEN m.read_at END AS read_at, \
                     COALESCE((SELECT max(r.delivered_up_to_seq) FROM device_receipts r \
                       WHERE r.conversation_id = m.conversation_id AND r.user_id = m.user_id), 0) \
                       AS delivered_up_to_seq, \
                     (SELECT r.delivered_at FROM device_receipts r \
                       WHERE r.conversation_id = m.conversation_id AND r.user_id = m.user_id \
                       ORDER BY r.delivered_up_to_seq DESC, r.delivered_at LIMIT 1) \
                       AS delivered_at \
                   FROM members m \
                   WHERE m.conversation_id = $1 AND m.left_at_seq IS NULL AND m.user_id <> $2 \
                     AND ($4 IS NULL OR m.user_id > $4)) AS receipts \
                 WHERE (last_read_seq > 0 OR delivered_up_to_seq > 0) \
                   AND delivered_up_to_seq >= $3 \
                 ORDER BY user_id LIMIT $5",
            )
            .bind(Id(conversation.into()))
            .bind(Id(except.into()))
            .bind(min_seq)
            .bind(after.map(|id| Id(id.into())))
            .bind(sql_limit(limit))
            .fetch_all(c)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(user, last_read_seq, read_at, delivered_up_to_seq, delivered_at)| MemberReceipt {
                    user_id: user.0.into(),
                    last_read_seq,
                    read_at: read_at.map(|at| at.0),
                    delivered_up_to_seq,
                    delivered_at: delivered_at.map(|at| at.0),
                },
            )
            .collect())
    }
}

/// `user`'s current member row in `conversation`, locked to the end of the transaction on
/// PostgreSQL (SQLite's writer transaction already excludes every other write).
async fn locked_member(
    tx: &mut Tx,
    conversation: ConversationId,
    user: UserId,
) -> Result<Option<Member>, sqlx::Error> {
    let sql = for_update(
        tx,
        concat!(
            "SELECT ",
            member_columns!(),
            " FROM members WHERE conversation_id = $1 AND user_id = $2 AND left_at_seq IS NULL"
        ),
    );
    let row: Option<MemberRow> = with_tx!(tx, |c| {
        sqlx::query_as(sql)
            .bind(Id(conversation.into()))
            .bind(Id(user.into()))
            .fetch_optional(c)
            .await
    })?;
    row.map(Member::try_from).transpose()
}

/// The conversation's committed `last_seq` (the highest seq a watermark may name).
async fn last_seq(tx: &mut Tx, conversation: ConversationId) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar("SELECT last_seq FROM conversations WHERE conversation_id = $1")
            .bind(Id(conversation.into()))
            .fetch_one(c)
            .await
    })
}
