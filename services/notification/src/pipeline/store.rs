//! The pipeline's statements over the projections, each one SQL text for both backends (see
//! `crate::store`), all in the event's transaction.
//!
//! Counts follow the message service's rule exactly ("unread for a member": current member,
//! not the sender, seq above their watermark and their join), so the badge equals the
//! message service's unread total; the values ReadMarkerMoved and MessageDeletedForMe carry
//! reset them to the authoritative ones.
//!
//! One piece: the membership-at-a-seq test (`joined_seq` below the seq, `left_seq` null or above
//! it) recurs in `count_unread`, `count_mention`, `recipients` and `deleted_for_everyone`, the
//! counts also checking the read watermark, while `join`, `leave` and `read_up_to` keep those
//! columns; split, one copy could drift and the badge would stop matching the message service's
//! unread total.

use echo_ids::{ConversationId, DeviceId, MessageId, UserId};
use echo_store::{Tx, with_tx};
use uuid::Uuid;

use super::decide::Recipient;

/// Remembers a message of the window; false when it was already recorded (redelivery).
pub async fn record_message(
    tx: &mut Tx,
    message: MessageId,
    conversation: ConversationId,
    seq: i64,
    sender: UserId,
    at_ms: i64,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "INSERT INTO notify_messages \
         (message_id, conversation_id, seq, sender_user_id, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING";
    with_tx!(tx, |c| {
        let done = sqlx::query(SQL)
            .bind(Uuid::from(message))
            .bind(Uuid::from(conversation))
            .bind(seq)
            .bind(Uuid::from(sender))
            .bind(at_ms)
            .execute(c)
            .await?;
        Ok(done.rows_affected() == 1)
    })
}

/// A recorded message: (conversation, seq, sender).
pub async fn message(
    tx: &mut Tx,
    message: MessageId,
) -> Result<Option<(ConversationId, i64, UserId)>, sqlx::Error> {
    const SQL: &str = "SELECT conversation_id, seq, sender_user_id FROM notify_messages \
         WHERE message_id = $1";
    let row: Option<(Uuid, i64, Uuid)> = with_tx!(tx, |c| {
        sqlx::query_as(SQL)
            .bind(Uuid::from(message))
            .fetch_optional(c)
            .await?
    });
    Ok(row.map(|(conversation, seq, sender)| (conversation.into(), seq, sender.into())))
}

/// Every member but the sender counts one more unread message.
pub async fn count_unread(
    tx: &mut Tx,
    conversation: ConversationId,
    seq: i64,
    sender: UserId,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE notify_counts SET unread = unread + 1 \
         WHERE conversation_id = $1 AND user_id <> $2 AND last_read_seq < $3 AND user_id IN \
         (SELECT user_id FROM notify_members WHERE conversation_id = $1 AND joined_seq < $3 \
           AND (left_seq IS NULL OR left_seq > $3))";
    with_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(Uuid::from(conversation))
            .bind(Uuid::from(sender))
            .bind(seq)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// Counts a mention of `user` by message `message` (seq `seq`) when they are a member for
/// whom it is unread and it was not counted yet. Returns whether it counted.
pub async fn count_mention(
    tx: &mut Tx,
    message: MessageId,
    conversation: ConversationId,
    seq: i64,
    user: UserId,
) -> Result<bool, sqlx::Error> {
    const UNREAD_MEMBER: &str = "SELECT count(*) FROM notify_members m JOIN notify_counts n \
         ON n.user_id = m.user_id AND n.conversation_id = m.conversation_id \
         WHERE m.conversation_id = $1 AND m.user_id = $2 AND m.joined_seq < $3 \
         AND (m.left_seq IS NULL OR m.left_seq > $3) AND n.last_read_seq < $3";
    const RECORD: &str = "INSERT INTO notify_mentions (message_id, user_id) VALUES ($1, $2) \
         ON CONFLICT (message_id, user_id) DO NOTHING";
    const COUNT: &str = "UPDATE notify_counts SET mentions = mentions + 1 \
         WHERE user_id = $1 AND conversation_id = $2";
    with_tx!(tx, |c| {
        let unread: i64 = sqlx::query_scalar(UNREAD_MEMBER)
            .bind(Uuid::from(conversation))
            .bind(Uuid::from(user))
            .bind(seq)
            .fetch_one(&mut *c)
            .await?;
        if unread == 0 {
            return Ok(false);
        }
        let recorded = sqlx::query(RECORD)
            .bind(Uuid::from(message))
            .bind(Uuid::from(user))
            .execute(&mut *c)
            .await?;
        if recorded.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(COUNT)
            .bind(Uuid::from(user))
            .bind(Uuid::from(conversation))
            .execute(c)
            .await?;
        Ok(true)
    })
}

/// The members of `conversation` at `seq` other than `sender`, with what the decision needs:
/// in user id order, after `after` (a fan-out's keyset cursor), at most `limit`.
pub async fn recipients(
    tx: &mut Tx,
    (conversation, seq, sender): (ConversationId, i64, UserId),
    after: Option<UserId>,
    limit: usize,
) -> Result<Vec<Recipient>, sqlx::Error> {
    const SQL: &str = "SELECT m.user_id, n.muted_until_ms, \
           (SELECT count(*) FROM notify_blocks b \
             WHERE b.blocker_id = m.user_id AND b.blocked_id = $3) AS blocks, \
           COALESCE((SELECT s.show_previews FROM notification_settings s \
             WHERE s.user_id = m.user_id), TRUE) AS previews \
         FROM notify_members m LEFT JOIN notify_counts n \
           ON n.user_id = m.user_id AND n.conversation_id = m.conversation_id \
         WHERE m.conversation_id = $1 AND m.joined_seq < $2 AND m.user_id <> $3 \
           AND (m.left_seq IS NULL OR m.left_seq > $2) \
           AND m.user_id > $4 \
         ORDER BY m.user_id LIMIT $5";
    let rows: Vec<(Uuid, Option<i64>, i64, bool)> = with_tx!(tx, |c| {
        sqlx::query_as(SQL)
            .bind(Uuid::from(conversation))
            .bind(seq)
            .bind(Uuid::from(sender))
            // From the start: the nil id sorts before every id (a plain range on the
            // members' primary key, which `$4 IS NULL OR …` would not be).
            .bind(after.map_or(Uuid::nil(), Uuid::from))
            .bind(echo_store::sql_limit(limit))
            .fetch_all(c)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|(user, muted_until_ms, blocks, show_previews)| Recipient {
            user: user.into(),
            muted_until_ms,
            blocked_sender: blocks > 0,
            show_previews,
        })
        .collect())
}

/// The push tokens of `users`: (token, user).
pub async fn tokens_of(tx: &mut Tx, users: &[UserId]) -> Result<Vec<(Uuid, UserId)>, sqlx::Error> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT push_token_id, user_id FROM push_tokens WHERE user_id IN ({})",
        echo_store::placeholders(1, users.len())
    );
    let rows: Vec<(Uuid, Uuid)> = with_tx!(tx, sql, |c| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
        for user in users {
            query = query.bind(Uuid::from(*user));
        }
        query.fetch_all(c).await?
    });
    Ok(rows
        .into_iter()
        .map(|(token, user)| (token, user.into()))
        .collect())
}

/// The users whose mention by `message` was counted.
pub async fn mentioned(tx: &mut Tx, message: MessageId) -> Result<Vec<UserId>, sqlx::Error> {
    const SQL: &str = "SELECT user_id FROM notify_mentions WHERE message_id = $1";
    let users: Vec<Uuid> = with_tx!(tx, |c| {
        sqlx::query_scalar(SQL)
            .bind(Uuid::from(message))
            .fetch_all(c)
            .await?
    });
    Ok(users.into_iter().map(UserId::from).collect())
}

/// `user`'s push tokens.
pub async fn user_tokens(tx: &mut Tx, user: UserId) -> Result<Vec<Uuid>, sqlx::Error> {
    const SQL: &str = "SELECT push_token_id FROM push_tokens WHERE user_id = $1";
    Ok(with_tx!(tx, |c| {
        sqlx::query_scalar(SQL)
            .bind(Uuid::from(user))
            .fetch_all(c)
            .await?
    }))
}

/// A conversation's (kind, title); (0, "") when unknown.
pub async fn conversation(
    tx: &mut Tx,
    conversation: ConversationId,
) -> Result<(i16, String), sqlx::Error> {
    const SQL: &str = "SELECT kind, title FROM notify_conversations WHERE conversation_id = $1";
    let row: Option<(i16, String)> = with_tx!(tx, |c| {
        sqlx::query_as(SQL)
            .bind(Uuid::from(conversation))
            .fetch_optional(c)
            .await?
    });
    Ok(row.unwrap_or_default())
}

/// Records a conversation's kind and title.
pub async fn set_conversation(
    tx: &mut Tx,
    conversation: ConversationId,
    kind: i16,
    title: &str,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO notify_conversations (conversation_id, kind, title) \
         VALUES ($1, $2, $3) ON CONFLICT (conversation_id) \
         DO UPDATE SET kind = excluded.kind, title = excluded.title";
    with_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(Uuid::from(conversation))
            .bind(kind)
            .bind(title)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// A user's display name ("" when unknown).
pub async fn name(tx: &mut Tx, user: UserId) -> Result<String, sqlx::Error> {
    const SQL: &str = "SELECT display_name FROM notify_names WHERE user_id = $1";
    let name: Option<String> = with_tx!(tx, |c| {
        sqlx::query_scalar(SQL)
            .bind(Uuid::from(user))
            .fetch_optional(c)
            .await?
    });
    Ok(name.unwrap_or_default())
}

/// Records a user's display name.
pub async fn set_name(tx: &mut Tx, user: UserId, name: &str) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO notify_names (user_id, display_name) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name";
    with_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(Uuid::from(user))
            .bind(name)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// `user` became a member of `conversation` at `joined_seq`: nothing before it is unread.
/// Membership comes from two streams (see migration 0005): a join already recorded, or older
/// than the membership's last join or leave, changes nothing. Returns whether it applied.
pub async fn join(
    tx: &mut Tx,
    conversation: ConversationId,
    user: UserId,
    joined_seq: i64,
) -> Result<bool, sqlx::Error> {
    const MEMBER: &str = "INSERT INTO notify_members (conversation_id, user_id, joined_seq) \
         VALUES ($1, $2, $3) ON CONFLICT (conversation_id, user_id) \
         DO UPDATE SET joined_seq = excluded.joined_seq, left_seq = NULL \
         WHERE excluded.joined_seq > notify_members.joined_seq \
           AND notify_members.left_seq IS NOT NULL \
           AND excluded.joined_seq > notify_members.left_seq";
    const COUNTS: &str = "INSERT INTO notify_counts \
         (user_id, conversation_id, unread, mentions, last_read_seq) VALUES ($1, $2, 0, 0, $3) \
         ON CONFLICT (user_id, conversation_id) DO UPDATE SET unread = 0, mentions = 0, \
         last_read_seq = excluded.last_read_seq";
    with_tx!(tx, |c| {
        let joined = sqlx::query(MEMBER)
            .bind(Uuid::from(conversation))
            .bind(Uuid::from(user))
            .bind(joined_seq)
            .execute(&mut *c)
            .await?
            .rows_affected();
        if joined == 0 {
            return Ok(false);
        }
        sqlx::query(COUNTS)
            .bind(Uuid::from(user))
            .bind(Uuid::from(conversation))
            .bind(joined_seq)
            .execute(c)
            .await?;
        Ok(true)
    })
}

/// `user` left `conversation` at `left_seq`: no longer a member after it, its counts leave
/// the badge, its pending alerts go. A leave already recorded, or of a membership that began
/// after it, changes nothing. Returns whether it applied.
pub async fn leave(
    tx: &mut Tx,
    conversation: ConversationId,
    user: UserId,
    left_seq: i64,
) -> Result<bool, sqlx::Error> {
    const MEMBER: &str = "UPDATE notify_members SET left_seq = $3 \
         WHERE conversation_id = $1 AND user_id = $2 AND joined_seq < $3 AND left_seq IS NULL";
    const COUNTS: &str = "DELETE FROM notify_counts WHERE conversation_id = $1 AND user_id = $2";
    const JOBS: &str = "DELETE FROM push_jobs WHERE conversation_id = $1 AND user_id = $2 \
         AND state = $3";
    with_tx!(tx, |c| {
        let left = sqlx::query(MEMBER)
            .bind(Uuid::from(conversation))
            .bind(Uuid::from(user))
            .bind(left_seq)
            .execute(&mut *c)
            .await?
            .rows_affected();
        if left == 0 {
            return Ok(false);
        }
        sqlx::query(COUNTS)
            .bind(Uuid::from(conversation))
            .bind(Uuid::from(user))
            .execute(&mut *c)
            .await?;
        sqlx::query(JOBS)
            .bind(Uuid::from(conversation))
            .bind(Uuid::from(user))
            .bind(crate::jobs::PENDING)
            .execute(c)
            .await?;
        Ok(true)
    })
}

/// `user`'s read watermark in `conversation` moved to `seq` with these authoritative counts:
/// store them, and mark the inbox entries up to `seq` read.
pub async fn read_up_to(
    tx: &mut Tx,
    user: UserId,
    conversation: ConversationId,
    seq: i64,
    unread: i32,
    mentions: i32,
) -> Result<(), sqlx::Error> {
    const COUNTS: &str = "UPDATE notify_counts SET unread = $3, mentions = $4, \
         last_read_seq = CASE WHEN last_read_seq > $5 THEN last_read_seq ELSE $5 END \
         WHERE user_id = $1 AND conversation_id = $2";
    const INBOX: &str = "UPDATE inbox_entries SET read = TRUE WHERE user_id = $1 \
         AND conversation_id = $2 AND seq <= $3 AND NOT read";
    const MENTIONS: &str = "DELETE FROM notify_mentions WHERE user_id = $1 AND message_id IN \
         (SELECT message_id FROM notify_messages WHERE conversation_id = $2 AND seq <= $3)";
    with_tx!(tx, |c| {
        sqlx::query(COUNTS)
            .bind(Uuid::from(user))
            .bind(Uuid::from(conversation))
            .bind(unread)
            .bind(mentions)
            .bind(seq)
            .execute(&mut *c)
            .await?;
        for sql in [INBOX, MENTIONS] {
            sqlx::query(sql)
                .bind(Uuid::from(user))
                .bind(Uuid::from(conversation))
                .bind(seq)
                .execute(&mut *c)
                .await?;
        }
    });
    Ok(())
}

/// `user` deleted `message` for themselves, leaving these authoritative counts.
pub async fn deleted_for_me(
    tx: &mut Tx,
    user: UserId,
    conversation: ConversationId,
    message: MessageId,
    unread: i32,
    mentions: i32,
) -> Result<(), sqlx::Error> {
    const INBOX: &str = "DELETE FROM inbox_entries WHERE user_id = $1 AND message_id = $2";
    const MENTION: &str = "DELETE FROM notify_mentions WHERE user_id = $1 AND message_id = $2";
    crate::badge::set_counts(tx, user, conversation, unread, mentions).await?;
    with_tx!(tx, |c| {
        for sql in [INBOX, MENTION] {
            sqlx::query(sql)
                .bind(Uuid::from(user))
                .bind(Uuid::from(message))
                .execute(&mut *c)
                .await?;
        }
    });
    Ok(())
}

/// `message` (seq `seq` by `sender`) was deleted for everyone: it leaves the counts of every
/// member for whom it was unread, and every inbox with its preview.
pub async fn deleted_for_everyone(
    tx: &mut Tx,
    message: MessageId,
    conversation: ConversationId,
    seq: i64,
    sender: UserId,
) -> Result<(), sqlx::Error> {
    const MENTIONS: &str = "UPDATE notify_counts SET mentions = mentions - 1 \
         WHERE conversation_id = $1 AND last_read_seq < $3 AND mentions > 0 AND user_id IN \
         (SELECT user_id FROM notify_mentions WHERE message_id = $2)";
    const UNREAD: &str = "UPDATE notify_counts SET unread = unread - 1 \
         WHERE conversation_id = $1 AND user_id <> $2 AND last_read_seq < $3 AND unread > 0 \
         AND user_id IN (SELECT user_id FROM notify_members \
           WHERE conversation_id = $1 AND joined_seq < $3 \
             AND (left_seq IS NULL OR left_seq > $3))";
    const FORGET: &str = "DELETE FROM notify_mentions WHERE message_id = $1";
    const INBOX: &str = "DELETE FROM inbox_entries WHERE message_id = $1";
    with_tx!(tx, |c| {
        sqlx::query(MENTIONS)
            .bind(Uuid::from(conversation))
            .bind(Uuid::from(message))
            .bind(seq)
            .execute(&mut *c)
            .await?;
        sqlx::query(UNREAD)
            .bind(Uuid::from(conversation))
            .bind(Uuid::from(sender))
            .bind(seq)
            .execute(&mut *c)
            .await?;
        for sql in [FORGET, INBOX] {
            sqlx::query(sql)
                .bind(Uuid::from(message))
                .execute(&mut *c)
                .await?;
        }
    });
    Ok(())
}

/// Records (or, `blocked = false`, removes) that `blocker` blocked `blocked`.
pub async fn block(
    tx: &mut Tx,
    blocker: UserId,
    blocked: UserId,
    blocking: bool,
) -> Result<(), sqlx::Error> {
    const ADD: &str = "INSERT INTO notify_blocks (blocker_id, blocked_id) VALUES ($1, $2) \
         ON CONFLICT (blocker_id, blocked_id) DO NOTHING";
    const REMOVE: &str = "DELETE FROM notify_blocks WHERE blocker_id = $1 AND blocked_id = $2";
    with_tx!(tx, |c| {
        sqlx::query(if blocking { ADD } else { REMOVE })
            .bind(Uuid::from(blocker))
            .bind(Uuid::from(blocked))
            .execute(c)
            .await?;
    });
    Ok(())
}

/// A device's session ended: its tokens and their pending jobs go.
pub async fn remove_device_tokens(
    tx: &mut Tx,
    user: UserId,
    device: DeviceId,
) -> Result<u64, sqlx::Error> {
    const JOBS: &str = "DELETE FROM push_jobs WHERE state = $3 AND push_token_id IN \
         (SELECT push_token_id FROM push_tokens WHERE user_id = $1 AND device_id = $2)";
    const TOKENS: &str = "DELETE FROM push_tokens WHERE user_id = $1 AND device_id = $2";
    with_tx!(tx, |c| {
        sqlx::query(JOBS)
            .bind(Uuid::from(user))
            .bind(Uuid::from(device))
            .bind(crate::jobs::PENDING)
            .execute(&mut *c)
            .await?;
        let done = sqlx::query(TOKENS)
            .bind(Uuid::from(user))
            .bind(Uuid::from(device))
            .execute(c)
            .await?;
        Ok(done.rows_affected())
    })
}

/// An account was deleted: everything notification holds about it goes.
pub async fn erase_user(tx: &mut Tx, user: UserId) -> Result<(), sqlx::Error> {
    const BY_USER: [&str; 9] = [
        "DELETE FROM push_jobs WHERE user_id = $1",
        "DELETE FROM push_tokens WHERE user_id = $1",
        "DELETE FROM inbox_entries WHERE user_id = $1",
        "DELETE FROM notify_counts WHERE user_id = $1",
        "DELETE FROM notify_members WHERE user_id = $1",
        "DELETE FROM notify_mentions WHERE user_id = $1",
        "DELETE FROM notify_names WHERE user_id = $1",
        "DELETE FROM notification_settings WHERE user_id = $1",
        "DELETE FROM notify_blocks WHERE blocker_id = $1 OR blocked_id = $1",
    ];
    with_tx!(tx, |c| {
        for sql in BY_USER {
            sqlx::query(sql)
                .bind(Uuid::from(user))
                .execute(&mut *c)
                .await?;
        }
    });
    Ok(())
}
