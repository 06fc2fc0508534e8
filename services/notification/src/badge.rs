//! GetBadgeCount (spec §B5): the number an app icon shows, from the per-(user, conversation)
//! counts the delivery pipeline keeps in `notify_counts`, and the writes that keep them.
//!
//! - badge: Σ unread over conversations that are not muted (muted = `muted_until_ms` in the
//!   future), the number pushes carry too;
//! - unread conversations: not muted, with unread > 0;
//! - unread mentions: over all conversations, muted ones included (a mention is still news);
//! - unread inbox entries.

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, UserId};
use echo_proto::echo::notification::v1 as pb;
use echo_store::{Tx, with_db, with_tx};
use uuid::Uuid;

use crate::error::NotificationError;
use crate::store::{NotificationStore, count32, millis};

/// The counts of one user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Badge {
    /// Σ unread over non-muted conversations.
    pub badge: i64,
    /// Non-muted conversations with unread messages.
    pub unread_conversations: i64,
    /// Unread mentions over all conversations.
    pub unread_mentions: i64,
    /// Unread inbox entries.
    pub unread_inbox_entries: i64,
}

/// GetBadgeCount.
#[tracing::instrument(skip(store))]
pub async fn get(
    store: &NotificationStore,
    user: UserId,
) -> Result<pb::GetBadgeCountResponse, NotificationError> {
    let badge = store.badge(user, Utc::now()).await?;
    Ok(pb::GetBadgeCountResponse {
        badge_count: count32(badge.badge),
        unread_conversations: count32(badge.unread_conversations),
        unread_mentions: count32(badge.unread_mentions),
        unread_inbox_entries: count32(badge.unread_inbox_entries),
    })
}

impl NotificationStore {
    /// `user`'s counts as of `now` (which decides whose mute has ended), in one statement.
    pub async fn badge(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Badge, NotificationError> {
        const SQL: &str = "SELECT \
             COALESCE(SUM(CASE WHEN muted_until_ms IS NULL OR muted_until_ms <= $2 \
               THEN unread ELSE 0 END), 0) AS badge, \
             COALESCE(SUM(CASE WHEN (muted_until_ms IS NULL OR muted_until_ms <= $2) \
               AND unread > 0 THEN 1 ELSE 0 END), 0) AS unread_conversations, \
             COALESCE(SUM(mentions), 0) AS unread_mentions, \
             (SELECT count(*) FROM inbox_entries WHERE user_id = $1 AND NOT read) \
               AS unread_inbox_entries \
           FROM notify_counts WHERE user_id = $1";
        let row: (i64, i64, i64, i64) = with_db!(&self.db, read, |c| {
            sqlx::query_as(SQL)
                .bind(Uuid::from(user))
                .bind(millis(now))
                .fetch_one(c)
                .await?
        });
        Ok(Badge {
            badge: row.0,
            unread_conversations: row.1,
            unread_mentions: row.2,
            unread_inbox_entries: row.3,
        })
    }
}

/// Sets `user`'s unread and mention counts in `conversation` to the authoritative values (the
/// pipeline's write, from MessageCreated increments or the values ReadMarkerMoved carries).
pub async fn set_counts(
    tx: &mut Tx,
    user: UserId,
    conversation: ConversationId,
    unread: i32,
    mentions: i32,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO notify_counts (user_id, conversation_id, unread, mentions) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, conversation_id) \
         DO UPDATE SET unread = excluded.unread, mentions = excluded.mentions";
    with_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(Uuid::from(user))
            .bind(Uuid::from(conversation))
            .bind(unread)
            .bind(mentions)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// Sets until when `user` muted `conversation` (None: not muted), keeping the counts.
pub async fn set_muted(
    tx: &mut Tx,
    user: UserId,
    conversation: ConversationId,
    until: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO notify_counts (user_id, conversation_id, muted_until_ms) \
         VALUES ($1, $2, $3) ON CONFLICT (user_id, conversation_id) \
         DO UPDATE SET muted_until_ms = excluded.muted_until_ms";
    with_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(Uuid::from(user))
            .bind(Uuid::from(conversation))
            .bind(until.map(millis))
            .execute(c)
            .await?;
    });
    Ok(())
}
