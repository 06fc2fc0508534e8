//! Blocks, one script for both backends (the pair lock is [`lock_pair`]'s business).

use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_ids::UserId;
use echo_store::{sql_limit, with_db, with_tx};

use super::codec::{At, Id, PairLock, lock_pair, refuse};
use super::{BlockEntry, BlockPosition, UserStore};
use crate::error::UserError;

impl UserStore {
    /// Blocks `blocked` for `blocker`. When the block is new: cancels the open requests
    /// between the two (both directions) and appends `event`, in one transaction; true.
    /// Contacts are left alone (visibility rules apply blocks on top of them), so a block
    /// publishes no `ContactRemoved`.
    /// Already blocked: nothing changes, no event; false. `UserNotFound` when `blocked` has no
    /// live profile.
    pub async fn block(
        &self,
        blocker: UserId,
        blocked: UserId,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<bool, UserError> {
        let mut tx = self.db.begin().await?;
        // Under the pair's lock no request between the two can be sent or accepted meanwhile, so
        // none stays open past the block.
        let live = lock_pair(&mut tx, blocker, blocked, PairLock::Update).await?;
        if !live.contains(&blocked) {
            return refuse(tx, UserError::UserNotFound).await;
        }
        let inserted = with_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
            )
            .bind(Id(blocker.into()))
            .bind(Id(blocked.into()))
            .bind(At(at))
            .execute(c)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        with_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE contact_requests SET state = 4, updated_at = $3 \
                 WHERE ((sender_id = $1 AND recipient_id = $2) \
                     OR (sender_id = $2 AND recipient_id = $1)) \
                   AND state IN (1, 3)",
            )
            .bind(Id(blocker.into()))
            .bind(Id(blocked.into()))
            .bind(At(at))
            .execute(c)
            .await?;
        });
        Outbox::append(&mut tx, event).await?;
        self.outbox.commit(tx).await?;
        Ok(true)
    }

    /// Lifts the block and appends `event` in one transaction; true. Not blocked: no event;
    /// false.
    pub async fn unblock(
        &self,
        blocker: UserId,
        blocked: UserId,
        event: &Event,
    ) -> Result<bool, UserError> {
        let mut tx = self.db.begin().await?;
        let deleted = with_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
                .bind(Id(blocker.into()))
                .bind(Id(blocked.into()))
                .execute(c)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        Outbox::append(&mut tx, event).await?;
        self.outbox.commit(tx).await?;
        Ok(true)
    }

    /// The users `blocker` blocked, newest first by (blocked_at, user_id) descending, after
    /// `after`; at most `limit`.
    pub async fn list_blocked(
        &self,
        blocker: UserId,
        after: Option<&BlockPosition>,
        limit: usize,
    ) -> Result<Vec<BlockEntry>, UserError> {
        let after = after
            .map(|position| {
                let at = DateTime::from_timestamp_micros(position.blocked_at_micros).ok_or_else(
                    || {
                        sqlx::Error::InvalidArgument(format!(
                            "block position {} is out of range",
                            position.blocked_at_micros
                        ))
                    },
                )?;
                Ok::<_, sqlx::Error>((At(at), Id(position.user_id.into())))
            })
            .transpose()?;
        let rows: Vec<(Id, At)> = with_db!(&self.db, read, |c| {
            sqlx::query_as(
                "SELECT blocked_id, created_at FROM blocks \
                 WHERE blocker_id = $1 AND ($2 IS NULL OR (created_at, blocked_id) < ($2, $3)) \
                 ORDER BY created_at DESC, blocked_id DESC LIMIT $4",
            )
            .bind(Id(blocker.into()))
            .bind(after.map(|(at, _)| at))
            .bind(after.map(|(_, id)| id))
            .bind(sql_limit(limit))
            .fetch_all(c)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(Id(user_id), At(blocked_at))| BlockEntry {
                user_id: user_id.into(),
                blocked_at,
            })
            .collect())
    }
}
