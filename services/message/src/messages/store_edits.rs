//! [`MessageStore`], one script per operation for both backends (STYLE 15): the
//! edit with its history and mention changes, and the reads (history, deletions for one user)
//! here; both deletions in [`deletes`].
//!
//! Every write takes the conversation's lock first ([`take_seq`], or a plain row lock for a
//! deletion for one user, which takes no conversation seq), so the counters it corrects cannot
//! race a send or another deletion; a refusal or a no-op rolls back and gives the seq back. On
//! SQLite the single writer (`BEGIN IMMEDIATE`) already excludes every other write.
//!
//! Over 400 lines as one piece: the edit script and the mention bookkeeping it shares with the
//! deletions (which mentions an edit adds or drops, and the counters they move) are one rule,
//! read together; the deletions themselves are apart in `store_deletes.rs`.

#[path = "store_deletes.rs"]
pub(super) mod deletes;

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_store::{Tx, placeholders, value_rows, with_db, with_tx};
use prost::Message as _;
use sqlx::AssertSqlSafe;

use super::edits::{counted_mentions, mention_changes};
use super::events::message_edited;
use crate::error::MessageError;
use crate::events::conversation_event;
use crate::store::MessageStore;
use crate::store::codec::{
    At, Id, MessageRow, commit_with, corrupt, current_member, message_columns, order_writes,
    refuse, take_seq,
};
use crate::store::{Actor, Edit, EditVersion, Edited, Member, Message};

impl MessageStore {
    /// Of `ids`, the messages `user` deleted for themselves, with when.
    pub async fn deleted_for(
        &self,
        user: UserId,
        ids: &[MessageId],
    ) -> Result<Vec<(MessageId, DateTime<Utc>)>, MessageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT message_id, hidden_at FROM hidden_messages \
             WHERE user_id = $1 AND message_id IN ({})",
            placeholders(2, ids.len())
        );
        let rows: Vec<(Id, At)> = with_db!(&self.db, read, sql, |c| {
            let mut query = sqlx::query_as(AssertSqlSafe(sql)).bind(Id(user.into()));
            for id in ids {
                query = query.bind(Id((*id).into()));
            }
            query.fetch_all(c).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, at)| (id.0.into(), at.0))
            .collect())
    }

    /// Edits a message as `actor`, in one transaction under the conversation's row lock. In
    /// this order:
    /// - `ConversationNotFound` unless `actor` is a current member;
    /// - `MessageNotFound` unless the message is in the conversation after the actor's join
    ///   and not deleted for them;
    /// - `NotAllowed` unless `actor` sent it (in any kind of conversation);
    /// - `MessageDeleted` when it was deleted for everyone;
    /// - `EditWindowExpired` when `at` is more than `window` after its creation;
    /// - `LimitExceeded("edits")` when it was edited [`MAX_EDITS`](super::edits::MAX_EDITS) times already;
    /// - `Stale` when its edit_count is no longer `base_edit_count` (nothing written);
    /// - `Unchanged` when the content equals the current one (nothing written).
    ///
    /// Mentions are never refused. Of the users `mentioned` adds to the message's mention
    /// rows, only those who can see the message are counted (mention row, counter, event):
    /// current members other than the sender who joined before it (`joined_at_seq` < its seq)
    /// and have not deleted it for themselves; anyone else stays mentioned in the content
    /// alone. Mention rows kept from before stay, even of users who left since.
    ///
    /// Otherwise: the next seq (no activity: the conversation keeps its place in lists); the
    /// replaced version appended to the history (version = the old edit_count, created_at =
    /// when that version came to be); content, search body, edited_at = `at` and
    /// edit_count + 1 on the message; its mention rows for users no longer mentioned deleted
    /// and rows for the counted new ones added, and for the members for whom it is unread (see
    /// the module doc) mention_count + 1 when newly counted and - 1 when no longer mentioned;
    /// one MessageEdited event (no content; `newly_mentioned_user_ids` = the counted new
    /// ones). `Changed`.
    pub async fn edit(
        &self,
        actor: Actor,
        edit: &Edit,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<Edited, MessageError> {
        edit_message(self, actor, edit, at, window).await
    }

    /// The earlier versions of message `id` of `conversation`, oldest first (empty if never
    /// edited or deleted for everyone). A plain read: who may see them is decided above.
    pub async fn edit_history(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Vec<EditVersion>, MessageError> {
        let rows: Vec<(i32, Vec<u8>, At)> = with_db!(&self.db, read, |c| {
            sqlx::query_as(
                "SELECT e.version, e.content, e.created_at FROM message_edits e \
                 JOIN messages m ON m.message_id = e.message_id \
                 WHERE e.message_id = $1 AND m.conversation_id = $2 ORDER BY e.version",
            )
            .bind(Id(id.into()))
            .bind(Id(conversation.into()))
            .fetch_all(c)
            .await
        })?;
        rows.into_iter()
            .map(|(version, content, created_at)| {
                let content = prost::Message::decode(content.as_slice())
                    .map_err(|e| corrupt("edit content", e))?;
                Ok(EditVersion {
                    version,
                    content,
                    created_at: created_at.0,
                })
            })
            .collect()
    }

    /// Deletes message `id` of `conversation` for `actor` alone, in one transaction under the
    /// conversation's row lock (so its counters cannot race a send or a deletion for
    /// everyone): `ConversationNotFound` unless `actor` is a current member; `MessageNotFound`
    /// unless the message is in the conversation after their join (a tombstone deleted for
    /// everyone may be hidden too). Already deleted for them: false, nothing written.
    /// Otherwise: a `hidden_messages` row; when the message was unread for them,
    /// unread_count - 1 (and mention_count - 1 when it mentions them); the actor's next user
    /// seq with one MessageDeletedForMe carrying their counters after. True.
    pub async fn delete_for_me(
        &self,
        actor: Actor,
        conversation: ConversationId,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> Result<bool, MessageError> {
        deletes::delete_for_me(self, actor, conversation, id, at).await
    }

    /// Deletes message `id` of `conversation` for everyone, in one transaction under the
    /// conversation's row lock: `ConversationNotFound` unless `actor` is a current member;
    /// `MessageNotFound` unless the message is in the conversation after their join;
    /// `NotAllowed` unless `actor` sent it or is OWNER/ADMIN of a GROUP or CHANNEL (in a
    /// DIRECT conversation only the sender). Already deleted for everyone: false, nothing
    /// written. Otherwise, with the next seq (no activity): every member for whom it was
    /// unread gets unread_count - 1 (and mention_count - 1 when mentioned); the content is
    /// erased everywhere the store holds it (content and search body NULL, deleted_at = `at`,
    /// the request hash overwritten with zero bytes, since an unsalted hash of the content is a
    /// guessable trace of it; edit history, mention rows, reactions and pin deleted; a later
    /// retry of its send key answers the tombstone, see [`repeated`](super::edits::repeated)); its thread root's
    /// reply_count - 1; when it was the conversation's last message, the newest remaining
    /// message not deleted for everyone (or none) takes its place; one MessageDeleted event.
    /// True.
    pub async fn delete_for_everyone(
        &self,
        actor: Actor,
        conversation: ConversationId,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> Result<bool, MessageError> {
        deletes::delete_for_everyone(self, actor, conversation, id, at).await
    }
}

/// The message an edit or deletion acts on, with its actor's member row.
struct Target {
    member: Member,
    message: Message,
    /// Deleted for the actor alone.
    hidden: bool,
}

/// A `messages` row with whether the actor deleted it for themselves.
#[derive(sqlx::FromRow)]
struct SeenRow {
    #[sqlx(flatten)]
    message: MessageRow,
    hidden: bool,
}

/// `actor`'s member row and message `id` (with whether they hid it), when `actor` is a
/// current member (`ConversationNotFound`) and the message is in `conversation` after their
/// join (`MessageNotFound`). The caller holds the conversation's lock.
async fn target(
    tx: &mut Tx,
    actor: UserId,
    conversation: ConversationId,
    id: MessageId,
) -> Result<Target, MessageError> {
    let member = current_member(tx, conversation, actor)
        .await?
        .ok_or(MessageError::ConversationNotFound)?;
    let row: Option<SeenRow> = with_tx!(tx, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            message_columns!(),
            ", EXISTS (SELECT 1 FROM hidden_messages h \
                       WHERE h.user_id = $3 AND h.message_id = m.message_id) AS hidden \
             FROM messages m WHERE m.conversation_id = $1 AND m.message_id = $2"
        ))
        .bind(Id(conversation.into()))
        .bind(Id(id.into()))
        .bind(Id(actor.into()))
        .fetch_optional(c)
        .await
    })?;
    let Some(row) = row else {
        return Err(MessageError::MessageNotFound);
    };
    let message = Message::try_from(row.message)?;
    if message.seq <= member.joined_at_seq {
        return Err(MessageError::MessageNotFound);
    }
    Ok(Target {
        member,
        message,
        hidden: row.hidden,
    })
}

/// See [`MessageStore::edit`].
async fn edit_message(
    db: &MessageStore,
    actor: Actor,
    edit: &Edit,
    at: DateTime<Utc>,
    window: chrono::Duration,
) -> Result<Edited, MessageError> {
    let mut tx = db.db.begin().await?;
    order_writes(&mut tx, &[edit.conversation_id], &[]).await?;
    // An edit does not move the conversation up in lists (activity None).
    let Some((seq, _)) = take_seq(&mut tx, edit.conversation_id, None).await? else {
        return refuse(tx, MessageError::ConversationNotFound).await;
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
    let before: Vec<Id> = with_tx!(&mut tx, |c| {
        sqlx::query_scalar("SELECT user_id FROM mentions WHERE message_id = $1")
            .bind(Id(current.id.into()))
            .fetch_all(c)
            .await
    })?;
    let before: Vec<UserId> = before.into_iter().map(|id| UserId::from(id.0)).collect();
    let (added, removed) = mention_changes(&before, &edit.mentioned);
    let eligible = eligible(&mut tx, &current, &added).await?;
    let added = counted_mentions(&added, &eligible);
    let Some(old_content) = current.content.as_ref() else {
        return refuse(tx, MessageError::MessageDeleted).await;
    };
    if *old_content == edit.content {
        tx.rollback().await?;
        return Ok(Edited::Unchanged(current));
    }
    with_tx!(&mut tx, |c| {
        sqlx::query(
            "INSERT INTO message_edits (message_id, version, content, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(Id(current.id.into()))
        .bind(current.edit_count)
        .bind(old_content.encode_to_vec())
        .bind(At(current.edited_at.unwrap_or(current.created_at)))
        .execute(c)
        .await?;
    });
    let row: MessageRow = with_tx!(&mut tx, |c| {
        sqlx::query_as(concat!(
            "UPDATE messages SET content = $2, body = $3, edited_at = $4, \
               edit_count = edit_count + 1 \
             WHERE message_id = $1 RETURNING ",
            message_columns!()
        ))
        .bind(Id(current.id.into()))
        .bind(edit.content.encode_to_vec())
        .bind(&edit.content.text)
        .bind(At(at))
        .fetch_one(c)
        .await
    })?;
    let edited = Message::try_from(row)?;
    // Only members still counting the message as unread hold a mention of it in their count.
    shift_mention_counts(&mut tx, &current, &added, Shift::Up).await?;
    shift_mention_counts(&mut tx, &current, &removed, Shift::Down).await?;
    if !removed.is_empty() {
        let sql = format!(
            "DELETE FROM mentions WHERE message_id = $1 AND user_id IN ({})",
            placeholders(2, removed.len())
        );
        with_tx!(&mut tx, sql, |c| {
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(Id(current.id.into()));
            for user in &removed {
                query = query.bind(Id((*user).into()));
            }
            query.execute(c).await?;
        });
    }
    if !added.is_empty() {
        let sql = format!(
            "INSERT INTO mentions (message_id, user_id, conversation_id, seq) VALUES {}",
            value_rows(1, added.len(), 4)
        );
        with_tx!(&mut tx, sql, |c| {
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for user in &added {
                query = query
                    .bind(Id(current.id.into()))
                    .bind(Id((*user).into()))
                    .bind(Id(edit.conversation_id.into()))
                    .bind(current.seq);
            }
            query.execute(c).await?;
        });
    }
    let event = conversation_event(
        edit.conversation_id,
        seq,
        at,
        actor,
        message_edited(&edited, &added),
    );
    commit_with(&db.outbox, tx, &[event]).await?;
    Ok(Edited::Changed {
        message: edited,
        newly_mentioned: added,
    })
}

/// Of `added`, those who can see `message` and so count a new mention of it: current members
/// other than the sender who joined before it and have not deleted it for themselves. Anyone
/// else stays mentioned in the content alone.
async fn eligible(
    tx: &mut Tx,
    message: &Message,
    added: &[UserId],
) -> Result<Vec<UserId>, MessageError> {
    if added.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT user_id FROM members \
         WHERE conversation_id = $1 AND left_at_seq IS NULL AND user_id <> $2 \
           AND joined_at_seq < $3 \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = members.user_id AND h.message_id = $4) \
           AND user_id IN ({})",
        placeholders(5, added.len())
    );
    let eligible: Vec<Id> = with_tx!(tx, sql, |c| {
        let mut query = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(Id(message.conversation_id.into()))
            .bind(Id(message.sender_id.into()))
            .bind(message.seq)
            .bind(Id(message.id.into()));
        for user in added {
            query = query.bind(Id((*user).into()));
        }
        query.fetch_all(c).await
    })?;
    Ok(eligible.into_iter().map(|id| id.0.into()).collect())
}

/// Which way [`shift_mention_counts`] moves the counters.
#[derive(Clone, Copy)]
enum Shift {
    /// A newly counted mention: + 1.
    Up,
    /// A mention no longer there: - 1, never below 0.
    Down,
}

/// Moves the mention counter of each of `users` for whom `message` is unread (see the module
/// doc of [`crate::messages::edits`]) by one in the direction of `shift`. Counters are never
/// negative (every write keeps them at 0 or above), so "- 1 unless 0" is the old
/// `GREATEST(n - 1, 0)` / `max(n - 1, 0)` written once for both dialects.
async fn shift_mention_counts(
    tx: &mut Tx,
    message: &Message,
    users: &[UserId],
    shift: Shift,
) -> Result<(), MessageError> {
    if users.is_empty() {
        return Ok(());
    }
    let change = match shift {
        Shift::Up => "mention_count + 1",
        Shift::Down => "mention_count - CASE WHEN mention_count > 0 THEN 1 ELSE 0 END",
    };
    let sql = format!(
        "UPDATE members SET mention_count = {change} \
         WHERE conversation_id = $1 AND left_at_seq IS NULL AND user_id <> $2 \
           AND $3 > last_read_seq AND $3 > joined_at_seq \
           AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                           WHERE h.user_id = members.user_id AND h.message_id = $4) \
           AND user_id IN ({})",
        placeholders(5, users.len())
    );
    with_tx!(tx, |c| {
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(Id(message.conversation_id.into()))
            .bind(Id(message.sender_id.into()))
            .bind(message.seq)
            .bind(Id(message.id.into()));
        for user in users {
            query = query.bind(Id((*user).into()));
        }
        query.execute(c).await?;
    });
    Ok(())
}
