//! Sending, written once for both backends, in batches (group commit): one transaction for
//! many sends, each decided by reads before it writes anything.
//!
//! So no savepoints: a refusal has written nothing and leaves the transaction as it was. Two
//! rare cases end an attempt instead, and the batch runs again in a fresh transaction:
//! - the same idempotency key committed by another transaction meanwhile (the insert found it
//!   after this send had taken its seq): the next attempt sees it and answers a retry
//!   (PostgreSQL only; SQLite's single writer makes the gate's look-up final);
//! - a statement failing for one send (on PostgreSQL that aborts the transaction; on SQLite it
//!   could leave the send half written): the next attempt leaves that send out, answered with
//!   its error.
//!
//! Round trips on PostgreSQL, as before the rewrite: two per send in the common case (the gate
//! read, the one-statement write), one more for each of a reply target, a thread root and
//! mentions; per batch the write-order locks, the counters ([`Tally`]), the outbox and COMMIT.

use echo_bus::Event;
use echo_ids::{ConversationId, UserId};
use echo_store::{Tx, placeholders, with_tx};
use sqlx::AssertSqlSafe;

use super::edits::{counted_mentions, repeated};
use super::events::message_created;
use super::sending::Stored;
use super::store::{by_idempotency_key, visible};
use super::store_sending_writes::{Tally, store};
use crate::error::MessageError;
use crate::events::conversation_event;
use crate::live::store::may_post;
use crate::store::MessageStore;
use crate::store::codec::{Id, commit_with, corrupt, kind, order_writes};
use crate::store::{BatchOutcome, Message, NewMessage, Role, SendRequest, Sent};

/// How one attempt at a batch ended.
enum Attempt {
    /// Committed (or nothing to commit): one outcome per send still in the batch.
    Done(Vec<Result<Sent, MessageError>>),
    /// A concurrent duplicate key: run the batch again.
    Again,
    /// Send `index` failed with `error`: run again without it.
    Failed(usize, MessageError),
}

/// Why one send did not store.
enum Stop {
    /// An answer for this send (a refusal); nothing was written.
    Refused(MessageError),
    /// Its idempotency key was committed by another transaction after the gate's read.
    Raced,
    /// A statement failed: the transaction is aborted (or half written).
    Failed(MessageError),
}

impl From<sqlx::Error> for Stop {
    fn from(error: sqlx::Error) -> Self {
        Stop::Failed(error.into())
    }
}

/// See [`crate::store::MessageStore::send_batch`].
pub(super) async fn send_batch(store: &MessageStore, sends: &[SendRequest<'_>]) -> BatchOutcome {
    let mut left_out: Vec<Option<MessageError>> = sends.iter().map(|_| None).collect();
    // Each extra attempt leaves a send out or follows a key another transaction committed,
    // which the next attempt sees: a few more than the batch is a bug, not contention.
    for _ in 0..sends.len() + 3 {
        match attempt(store, sends, &left_out).await? {
            Attempt::Done(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                return Ok(left_out
                    .into_iter()
                    .map(|failed| match failed {
                        Some(error) => Err(error),
                        None => outcomes.next().expect("one outcome per send"),
                    })
                    .collect());
            }
            Attempt::Again => {}
            Attempt::Failed(index, error) => left_out[index] = Some(error),
        }
    }
    Err(MessageError::Internal(
        "sends kept racing on their idempotency keys",
    ))
}

/// One transaction over the sends not `left_out`.
async fn attempt(
    store: &MessageStore,
    sends: &[SendRequest<'_>],
    left_out: &[Option<MessageError>],
) -> Result<Attempt, MessageError> {
    let mut tx = store.db.begin().await?;
    // Every conversation's write-order lock, in one statement, before any write (a no-op on
    // SQLite): the batch's xid then follows the seqs it takes.
    let conversations: Vec<ConversationId> = sends.iter().map(|s| s.new.conversation_id).collect();
    order_writes(&mut tx, &conversations, &[]).await?;
    let mut outcomes = Vec::with_capacity(sends.len());
    let mut events: Vec<Event> = Vec::with_capacity(sends.len());
    let mut tally = Tally::default();
    for (index, request) in sends.iter().enumerate() {
        if left_out[index].is_some() {
            continue;
        }
        match send(&mut tx, request, &mut tally).await {
            Ok(stored) => outcomes.push(Ok(stored.record(request, &mut events))),
            Err(Stop::Refused(refusal)) => outcomes.push(Err(refusal)),
            Err(Stop::Raced) => {
                tx.rollback().await?;
                return Ok(Attempt::Again);
            }
            Err(Stop::Failed(error)) => {
                tx.rollback().await?;
                return Ok(Attempt::Failed(index, error));
            }
        }
    }
    if events.is_empty() {
        tx.rollback().await?;
        return Ok(Attempt::Done(outcomes));
    }
    if let Err(error) = tally.count(&mut tx).await {
        // Not one send's fault: every send of the attempt gets this error.
        tx.rollback().await?;
        return Err(error.into());
    }
    commit_with(&store.outbox, tx, &events).await?;
    Ok(Attempt::Done(outcomes))
}

/// The read that decides a send, in the contract's order of checks: whether an earlier send
/// used this key, whether the conversation exists, the sender's membership and role, and a
/// block between the two users of a direct conversation. The pair is the sender and the other
/// member (a DIRECT conversation's member rows are exactly its pair's, and stay when one
/// leaves), not `direct_key` split into ids as the PostgreSQL-only gate did: SQLite has no
/// uuid cast, and each block is then a primary-key look-up on both backends.
const GATE: &str = "\
    SELECT (SELECT true FROM messages WHERE sender_device_id = $3 AND client_message_id = $4) \
             AS earlier, \
           c.kind, c.message_ttl_seconds, m.role, m.joined_at_seq, \
           (c.direct_key IS NOT NULL AND EXISTS (SELECT 1 FROM members o \
              WHERE o.conversation_id = c.conversation_id AND o.user_id <> $2 \
                AND (EXISTS (SELECT 1 FROM blocks b \
                             WHERE b.blocker_id = o.user_id AND b.blocked_id = $2) \
                  OR EXISTS (SELECT 1 FROM blocks b \
                             WHERE b.blocker_id = $2 AND b.blocked_id = o.user_id)))) \
             AS blocked \
    FROM (SELECT 1) AS one \
    LEFT JOIN conversations c ON c.conversation_id = $1 \
    LEFT JOIN members m ON m.conversation_id = c.conversation_id AND m.user_id = $2 \
                       AND m.left_at_seq IS NULL";

/// The [`GATE`]'s row.
#[derive(sqlx::FromRow)]
struct Gate {
    earlier: Option<bool>,
    kind: Option<i16>,
    message_ttl_seconds: Option<i64>,
    role: Option<i16>,
    joined_at_seq: Option<i64>,
    blocked: Option<bool>,
}

/// One send, inside the batch's transaction (which, on PostgreSQL, holds the write-order
/// locks of every conversation in the batch, and on SQLite the single writer: what the gate
/// read stays true until the commit).
async fn send(tx: &mut Tx, request: &SendRequest<'_>, tally: &mut Tally) -> Result<Stored, Stop> {
    let SendRequest { actor, new, .. } = *request;
    let gate: Gate = with_tx!(&mut *tx, |c| {
        sqlx::query_as(GATE)
            .bind(Id(new.conversation_id.into()))
            .bind(Id(actor.user_id.into()))
            .bind(Id(actor.device_id.into()))
            .bind(&new.client_message_id)
            .fetch_one(c)
            .await
    })?;
    // First, so that a retry succeeds whatever changed since (the sender left, a block).
    if gate.earlier.is_some() {
        let (stored, request_hash) = by_idempotency_key(tx, actor, &new.client_message_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        return repeated(stored, &request_hash, new)
            .map(Stored::Repeated)
            .map_err(Stop::Refused);
    }
    let (Some(kind_code), Some(role_code), Some(joined_at_seq)) =
        (gate.kind, gate.role, gate.joined_at_seq)
    else {
        return Err(Stop::Refused(MessageError::ConversationNotFound));
    };
    let role =
        Role::from_code(role_code.into()).ok_or_else(|| corrupt("member role", role_code))?;
    may_post(kind(kind_code)?, role).map_err(Stop::Refused)?;
    if gate.blocked == Some(true) {
        return Err(Stop::Refused(MessageError::Blocked(None)));
    }
    if let Some(target) = new.reply_to_message_id
        && visible(tx, new.conversation_id, target, joined_at_seq, true)
            .await?
            .is_none()
    {
        return Err(Stop::Refused(MessageError::MessageNotFound));
    }
    if let Some(root) = new.thread_root_message_id {
        // A thread hangs off a top-level message: a reply in a thread cannot root another.
        match visible(tx, new.conversation_id, root, joined_at_seq, false).await? {
            Some(None) => {}
            _ => return Err(Stop::Refused(MessageError::MessageNotFound)),
        }
    }
    let mentioned = counted(tx, actor.user_id, new).await?;
    // The ttl read here stays until the commit: an update of it takes the conversation's
    // write-order lock (PostgreSQL) or the single writer (SQLite) too.
    let expires_at = gate
        .message_ttl_seconds
        .map(|ttl| request.at + chrono::TimeDelta::seconds(ttl));
    let Some(sent) = store(tx, request, &mentioned, expires_at).await? else {
        return Err(Stop::Raced);
    };
    let sent = Message::try_from(sent)?;
    tally.add(new.conversation_id, actor.user_id, &mentioned);
    let event = conversation_event(
        new.conversation_id,
        sent.seq,
        request.at,
        actor,
        message_created(&sent, &mentioned),
    );
    Ok(Stored::Created(sent, event))
}

/// Of the mentioned users, those the message counts for: current members other than the
/// sender (a mention of anyone else stays in the content and counts for nobody).
async fn counted(
    tx: &mut Tx,
    sender: UserId,
    new: &NewMessage,
) -> Result<Vec<UserId>, sqlx::Error> {
    if new.mentioned.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT user_id FROM members \
         WHERE conversation_id = $1 AND user_id <> $2 AND left_at_seq IS NULL \
           AND user_id IN ({})",
        placeholders(3, new.mentioned.len())
    );
    let members: Vec<Id> = with_tx!(tx, sql, |c| {
        let mut query = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(Id(new.conversation_id.into()))
            .bind(Id(sender.into()));
        for user in &new.mentioned {
            query = query.bind(Id((*user).into()));
        }
        query.fetch_all(c).await
    })?;
    let members: Vec<UserId> = members
        .into_iter()
        .map(|Id(user)| UserId::from(user))
        .collect();
    Ok(counted_mentions(&new.mentioned, &members))
}
