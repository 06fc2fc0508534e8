//! Channel fan-out has its own queue (spec §B5). A channel post may have 100,000 members:
//! writing all their entries and jobs in the event's transaction would hold the ordered
//! message consumer — and every direct message behind the post — for seconds. So the event
//! only counts (unread, mentions) and queues the post in `notify_fanouts`; this worker then
//! notifies the members in chunks of `notification.fanout_chunk`, in user id order, one
//! transaction per chunk that also moves the row's cursor, so a crash resumes after the last
//! chunk written and a chunk written twice writes nothing new (entries and jobs are unique per
//! message and user / token). The jobs it writes are `bulk`: the dispatcher takes them only
//! when no other push is due, and the next chunk waits while two chunks' worth of them are
//! still pending (back-pressure).
//!
//! Several instances may run the worker: a chunk's transaction locks the row it works on
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so instances take different posts; SQLite's single
//! writer serialises them), the one dialect-specific primitive here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_store::{Database, Tx, with_tx};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Pipeline;
use crate::store::{from_millis, millis};

/// How often an idle worker looks for posts queued by another instance, or whether the
/// dispatcher has made room for the next chunk.
const POLL: Duration = Duration::from_millis(200);

/// A queued channel post.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fanout {
    /// The post.
    pub message: MessageId,
    /// Its channel.
    pub conversation: ConversationId,
    /// Its seq.
    pub seq: i64,
    /// Its sender.
    pub sender: UserId,
    /// Its time.
    pub at: DateTime<Utc>,
    /// The last member notified so far.
    pub after: Option<UserId>,
}

/// Queues `post` (a redelivered event queues nothing twice).
pub async fn queue(tx: &mut Tx, post: &Fanout) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO notify_fanouts (message_id, conversation_id, seq, \
         sender_user_id, created_at_ms, after_user_id) VALUES ($1, $2, $3, $4, $5, NULL) \
         ON CONFLICT (message_id) DO NOTHING";
    with_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(Uuid::from(post.message))
            .bind(Uuid::from(post.conversation))
            .bind(post.seq)
            .bind(Uuid::from(post.sender))
            .bind(millis(post.at))
            .execute(c)
            .await?;
    });
    Ok(())
}

/// Stops fanning out `message` (deleted for everyone).
pub async fn cancel(tx: &mut Tx, message: MessageId) -> Result<(), sqlx::Error> {
    const SQL: &str = "DELETE FROM notify_fanouts WHERE message_id = $1";
    with_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(Uuid::from(message))
            .execute(c)
            .await?;
    });
    Ok(())
}

/// The oldest queued post no other transaction is working on, locked until `tx` ends.
async fn next(tx: &mut Tx) -> Result<Option<Fanout>, sqlx::Error> {
    macro_rules! next_sql {
        ($lock:literal) => {
            concat!(
                "SELECT message_id, conversation_id, seq, sender_user_id, created_at_ms, \
                 after_user_id FROM notify_fanouts ORDER BY message_id LIMIT 1",
                $lock
            )
        };
    }
    type Row = (Uuid, Uuid, i64, Uuid, i64, Option<Uuid>);
    let row: Option<Row> = match tx {
        Tx::Postgres(tx) => {
            sqlx::query_as(next_sql!(" FOR UPDATE SKIP LOCKED"))
                .fetch_optional(&mut **tx)
                .await?
        }
        Tx::Sqlite(tx) => {
            sqlx::query_as(next_sql!(""))
                .fetch_optional(&mut **tx)
                .await?
        }
    };
    Ok(
        row.map(|(message, conversation, seq, sender, at, after)| Fanout {
            message: message.into(),
            conversation: conversation.into(),
            seq,
            sender: sender.into(),
            at: from_millis(at),
            after: after.map(UserId::from),
        }),
    )
}

/// Moves `message`'s cursor past `last`, or removes the row when `last` is None (done).
async fn advance(tx: &mut Tx, message: MessageId, last: Option<UserId>) -> Result<(), sqlx::Error> {
    const ADVANCE: &str = "UPDATE notify_fanouts SET after_user_id = $2 WHERE message_id = $1";
    match last {
        Some(last) => with_tx!(tx, |c| {
            sqlx::query(ADVANCE)
                .bind(Uuid::from(message))
                .bind(Uuid::from(last))
                .execute(c)
                .await?;
        }),
        None => cancel(tx, message).await?,
    }
    Ok(())
}

/// Notifies queued channel posts' members, `chunk` at a time, until `shutdown`.
pub async fn run(
    pipeline: Pipeline,
    db: Database,
    chunk: usize,
    queued: std::sync::Arc<Notify>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        match pipeline.fan_out_chunk(&db, chunk.max(1)).await {
            Ok(true) => pipeline.wake.notify_one(),
            Ok(false) => {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = queued.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "channel fan-out failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

impl Pipeline {
    /// Notifies the next chunk of members of the oldest queued post; false when none is
    /// queued.
    async fn fan_out_chunk(
        &self,
        db: &Database,
        chunk: usize,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        // Back-pressure: the next chunk waits until the dispatcher has sent most of the last
        // two. The post then takes as long as sending it takes anyway, and every other event
        // (a direct message behind it, on SQLite's one writer above all) gets the database
        // between chunks instead of behind a backlog of them.
        if crate::jobs::pending_bulk(db).await? >= i64::try_from(2 * chunk).unwrap_or(i64::MAX) {
            return Ok(false);
        }
        // The post's preview is a call to the message service: made between two
        // transactions, so no chunk holds the database (SQLite's one writer above all) while
        // it waits for an answer.
        let mut peek = db.begin().await?;
        let peeked = next(&mut peek).await?;
        peek.rollback().await?;
        let Some(peeked) = peeked else {
            return Ok(false);
        };
        let preview = self.preview(peeked.message).await;
        let mut tx = db.begin().await?;
        let Some(post) = next(&mut tx).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        // Another instance may have taken the peeked post meanwhile: this one's preview is
        // then fetched in the transaction after all.
        let preview = (post.message == peeked.message).then_some(preview);
        let mentioned = super::store::mentioned(&mut tx, post.message)
            .await?
            .into_iter()
            .collect();
        let last = self
            .notify(&mut tx, &post, &mentioned, None, Some(chunk), preview)
            .await?;
        advance(&mut tx, post.message, last).await?;
        tx.commit().await?;
        Ok(true)
    }
}
