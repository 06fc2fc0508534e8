//! Which devices already have a message (spec §B2, "when" and "to whom"): the highest seq
//! each device acknowledged per conversation, from the message service's ephemeral
//! `echo.live.receipt.<conversation>` updates (MarkDelivered; DIRECT and GROUP conversations of
//! at most `live.receipt_max_members`, never channels). The dispatcher then sends no alert to
//! a device that has the message, and at the recheck skips the push when an ONLINE device has
//! it.
//!
//! The updates are ephemeral, so one can be lost (a broker hiccup, a lagging receiver): that
//! only costs a push that could have been skipped, never a missing one. The instances share
//! one subscription (a NATS queue group), so each update is written once, by one of them (an
//! upsert that only moves forward, so order between instances does not matter); updates are
//! coalesced per device and written as one multi-row statement every
//! [`FLUSH_EVERY`] or [`FLUSH_AT`] devices, whichever comes first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use echo_bus::EventBus;
use echo_ids::{ConversationId, DeviceId, UserId};
use echo_proto::echo::message::v1::ReceiptUpdate;
use echo_store::{Database, value_rows, with_db};
use futures::StreamExt as _;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::millis;

/// The updates listened to.
pub const SUBJECT: &str = "echo.live.receipt.>";
/// The instances share one subscription: each update is written by one of them.
const GROUP: &str = "notification.receipts";
/// Longest an update waits before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Devices that make a write at once.
const FLUSH_AT: usize = 512;
/// Rows per upsert: 5 values each.
const ROWS_PER_WRITE: usize = 1_000;

/// A device's receipt in a conversation: (user, conversation, device).
pub type Key = (UserId, ConversationId, DeviceId);

/// Records receipt updates until `shutdown`, resubscribing when the bus drops the stream.
pub async fn listen(bus: Arc<dyn EventBus>, db: Database, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let mut updates = match bus.subscribe_ephemeral_shared(SUBJECT, GROUP).await {
            Ok(updates) => updates,
            Err(error) => {
                tracing::warn!(%error, "receipt updates unavailable; retrying");
                pause(&shutdown).await;
                continue;
            }
        };
        let mut pending: HashMap<Key, i64> = HashMap::new();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    flush(&db, &mut pending).await;
                    return;
                }
                update = updates.next() => {
                    let Some((_, payload)) = update else { break };
                    if let Some((key, seq)) = decode(&payload) {
                        let highest = pending.entry(key).or_insert(seq);
                        *highest = (*highest).max(seq);
                    }
                    if pending.len() >= FLUSH_AT {
                        flush(&db, &mut pending).await;
                    }
                }
                _ = tick.tick() => flush(&db, &mut pending).await,
            }
        }
        flush(&db, &mut pending).await;
        pause(&shutdown).await;
    }
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

fn decode(payload: &[u8]) -> Option<(Key, i64)> {
    let update = ReceiptUpdate::decode(payload).ok()?;
    let key = (
        update.user_id.parse().ok()?,
        update.conversation_id.parse().ok()?,
        update.device_id.parse().ok()?,
    );
    Some((key, update.delivered_up_to_seq))
}

async fn flush(db: &Database, pending: &mut HashMap<Key, i64>) {
    if pending.is_empty() {
        return;
    }
    let batch: Vec<(Key, i64)> = pending.drain().collect();
    if let Err(error) = record(db, &batch, Utc::now()).await {
        // Best effort by design (see the module docs): the pushes go out as if undelivered.
        tracing::warn!(%error, devices = batch.len(), "recording delivery receipts failed");
    }
}

/// Raises each device's delivered seq to the given one (never lowers it). Keys must be
/// distinct (one statement cannot update a row twice).
pub async fn record(
    db: &Database,
    receipts: &[(Key, i64)],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    for chunk in receipts.chunks(ROWS_PER_WRITE) {
        let sql = format!(
            "INSERT INTO notify_device_receipts (user_id, conversation_id, device_id, \
               delivered_up_to_seq, updated_at_ms) VALUES {} \
             ON CONFLICT (user_id, conversation_id, device_id) DO UPDATE SET \
               delivered_up_to_seq = excluded.delivered_up_to_seq, \
               updated_at_ms = excluded.updated_at_ms \
             WHERE excluded.delivered_up_to_seq > notify_device_receipts.delivered_up_to_seq",
            value_rows(1, chunk.len(), 5)
        );
        with_db!(db, write, sql, |c| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for ((user, conversation, device), seq) in chunk {
                query = query
                    .bind(Uuid::from(*user))
                    .bind(Uuid::from(*conversation))
                    .bind(Uuid::from(*device))
                    .bind(*seq)
                    .bind(millis(now));
            }
            query.execute(c).await?;
        });
    }
    Ok(())
}

/// Deletes receipts not updated since `before` (older than any message still pushed).
pub async fn prune(db: &Database, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    const SQL: &str = "DELETE FROM notify_device_receipts WHERE updated_at_ms < $1";
    Ok(with_db!(db, write, |c| {
        sqlx::query(SQL)
            .bind(millis(before))
            .execute(c)
            .await?
            .rows_affected()
    }))
}
