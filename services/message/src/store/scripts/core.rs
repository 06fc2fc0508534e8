//! [`MessageStore`], written once for both backends (STYLE 15): the
//! projections of other services' events and the single-row reads here; conversations
//! (creation, the list), messages (reads, the look-ups a send decides on) and sending (group
//! commit) in their own files.

#[path = "conversations.rs"]
mod conversations;
#[path = "conversations_list.rs"]
mod conversations_list;
#[path = "messages.rs"]
mod messages;
#[path = "sending.rs"]
mod sending;
#[path = "sending_writes.rs"]
mod sending_writes;

use chrono::{DateTime, Utc};
use echo_store::{Database, Tx, with_db, with_tx};
use uuid::Uuid;

use super::MessageStore;
use crate::store::codec::{
    At, ConversationRow, Id, MemberRow, conversation_columns, member_columns,
};
use crate::store::{
    Actor, BatchOutcome, Conversation, ConversationPosition, ListFilter, Member, Message,
    NewConversation, NewMessage, SendRequest, Sent, SeqWindow, StoreError,
};

impl MessageStore {
    /// Records that `user_id` exists (`deleted_at` None) or was deleted. A deletion is final: a
    /// late "exists" does not revive the user.
    pub async fn record_user(
        &self,
        tx: &mut Tx,
        user_id: Uuid,
        deleted_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        // A deletion is final: a late or redelivered "exists" keeps the tombstone, and a
        // redelivered deletion keeps the first time.
        with_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO known_users (user_id, deleted_at) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE \
                 SET deleted_at = COALESCE(known_users.deleted_at, excluded.deleted_at)",
            )
            .bind(Id(user_id))
            .bind(deleted_at.map(At))
            .execute(c)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Records that `blocker` blocks `blocked` (`blocking` true) or no longer does.
    pub async fn record_block(
        &self,
        tx: &mut Tx,
        blocker: Uuid,
        blocked: Uuid,
        blocking: bool,
    ) -> Result<(), StoreError> {
        let sql = if blocking {
            "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2) \
             ON CONFLICT (blocker_id, blocked_id) DO NOTHING"
        } else {
            "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2"
        };
        with_tx!(tx, |c| {
            sqlx::query(sql)
                .bind(Id(blocker))
                .bind(Id(blocked))
                .execute(c)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The DIRECT conversation of `actor` and `peer`, created (id `id`) if there is none, in
    /// one transaction, also under concurrent calls from both users: `UserNotFound` when
    /// `peer` is unknown or deleted; `Blocked` when either blocks the other (for an existing
    /// conversation too). Creation takes seqs 1-3 (ConversationCreated, MemberJoined for the
    /// actor, MemberJoined for the peer) and a user seq for each (ConversationJoined). True
    /// when created now.
    pub async fn create_direct(
        &self,
        actor: Actor,
        peer: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(Conversation, bool), StoreError> {
        conversations::create_direct(self, actor, peer, id, at).await
    }

    /// Creates a GROUP or CHANNEL with `actor` as OWNER and `new.members` as MEMBERs, or
    /// returns the one `actor` created before with the same `client_request_id` (false).
    /// The key is checked first, so a retry succeeds even if a block came since. `UserNotFound`
    /// when a member is unknown or deleted; `Blocked` when a block stands between a member and
    /// the actor (either direction). Events: ConversationCreated (seq 1), then MemberJoined per member (creator
    /// first), and ConversationJoined per member (user seqs).
    pub async fn create_conversation(
        &self,
        actor: Actor,
        new: &NewConversation,
        at: DateTime<Utc>,
    ) -> Result<(Conversation, bool), StoreError> {
        conversations::create_conversation(self, actor, new, at).await
    }

    /// The conversation `id`.
    pub async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>, StoreError> {
        let row: Option<ConversationRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                conversation_columns!(),
                " FROM conversations WHERE conversation_id = $1"
            ))
            .bind(Id(id))
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(Conversation::try_from).transpose()?)
    }

    /// `user`'s member row in `conversation` (current or former).
    pub async fn member(
        &self,
        conversation: Uuid,
        user: Uuid,
    ) -> Result<Option<Member>, StoreError> {
        let row: Option<MemberRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                member_columns!(),
                " FROM members WHERE conversation_id = $1 AND user_id = $2"
            ))
            .bind(Id(conversation))
            .bind(Id(user))
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(Member::try_from).transpose()?)
    }

    /// `user`'s current conversations with their member rows, newest activity first by
    /// (last_activity_at, id) descending, after `after`; at most `limit`.
    pub async fn list_conversations(
        &self,
        user: Uuid,
        filter: ListFilter,
        after: Option<&ConversationPosition>,
        limit: usize,
    ) -> Result<Vec<(Conversation, Member)>, StoreError> {
        conversations_list::list(&self.db, user, filter, after, limit).await
    }

    /// Group commit: every send of `sends` as [`MessageStore::send`] describes, in order, in
    /// ONE transaction (one commit, one fsync). A refused send (or one that fails) is rolled
    /// back alone (a savepoint) and takes no seq; the others commit together, their events in
    /// the batch's order, so seq order and the outbox order still agree. Sends to the same
    /// conversation take consecutive seqs in batch order; an earlier send of the batch with
    /// the same key answers a later one as a retry.
    pub async fn send_batch(&self, sends: &[SendRequest<'_>]) -> BatchOutcome {
        sending::send_batch(self, sends).await
    }

    /// True when writes go through one connection (SQLite): one batch at a time then. On
    /// PostgreSQL several batches run at once, one's commit overlapping the next one's work.
    pub fn single_writer(&self) -> bool {
        matches!(self.db, Database::Sqlite(_))
    }

    /// The message `id` of `conversation`.
    pub async fn message(
        &self,
        conversation: Uuid,
        id: Uuid,
    ) -> Result<Option<Message>, StoreError> {
        messages::message(&self.db, conversation, id).await
    }

    /// The messages of `ids` (any conversation), in any order.
    pub async fn messages_by_id(&self, ids: &[Uuid]) -> Result<Vec<Message>, StoreError> {
        messages::by_id(&self.db, ids).await
    }

    /// The messages of `conversation` in `window`.
    pub async fn messages(
        &self,
        conversation: Uuid,
        window: SeqWindow,
    ) -> Result<Vec<Message>, StoreError> {
        messages::window(&self.db, conversation, window).await
    }

    /// Sends `new` as `actor`, in one transaction under the conversation's row lock:
    /// - a message with this `(actor.device_id, client_message_id)` exists: [`repeated`]
    ///   decides (checked first, so a retry succeeds even after the sender left);
    /// - `ConversationNotFound` unless `actor` is a current member; `NotAllowed` for a
    ///   MEMBER of a CHANNEL; `Blocked` in a DIRECT conversation with a block either way;
    ///   `MessageNotFound` when the reply target (a tombstone is fine) or thread root (not
    ///   deleted, not itself a thread reply) is no message of this conversation after the
    ///   actor's join. Mentions are never refused;
    /// - otherwise: the next seq; the message row; the thread root's reply_count + 1; the
    ///   conversation's last_activity_at and last_message_id; every other current member's
    ///   unread_count + 1; for the mentioned current members other than the sender (others stay
    ///   in the content, counted for nobody) a mention row and mention_count + 1; one
    ///   MessageCreated whose `mentioned_user_ids` are exactly those. The sender's read state
    ///   (watermark, read_at, counters) is untouched: own messages are never unread, and the
    ///   watermark moves only by MarkRead (with its ReadMarkerMoved). `Created`.
    ///
    /// The same as a batch of one ([`MessageStore::send_batch`]).
    pub async fn send(
        &self,
        actor: Actor,
        new: &NewMessage,
        at: DateTime<Utc>,
    ) -> Result<Sent, StoreError> {
        let trace_parent = echo_telemetry::current_traceparent();
        let request = SendRequest {
            actor,
            new,
            at,
            trace_parent: trace_parent.as_deref(),
        };
        let mut outcomes = self.send_batch(&[request]).await?;
        outcomes.pop().expect("one outcome per send")
    }
}
