//! Sending on PostgreSQL, in batches (group commit): one transaction for many sends, two
//! statements for each in the common case (a read that decides, a write that stores), so the
//! database spends its time on work rather than on round trips.
//!
//! No savepoints: every refusal is decided by reads before the send writes anything. Two rare
//! cases end an attempt instead, and the batch runs again in a fresh transaction:
//! - the same idempotency key committed by another transaction meanwhile (the insert found it
//!   after this send had taken its seq): the next attempt sees it and answers a retry;
//! - a statement failing for one send (which aborts the transaction): the next attempt leaves
//!   that send out, answered with its error.

use echo_bus::{Event, Outbox};
use prost::Message as _;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::messages::{by_idempotency_key, repeat, visible};
use super::{commit_with, corrupt, message, order_batch_writes};
use crate::events::{conversation_event, message_created};
use crate::store::live::may_post;
use crate::store::{
    BatchOutcome, Kind, Role, SendRequest, Sent, StoreError, Stored, counted_mentions,
};

/// How one attempt at a batch ended.
enum Attempt {
    /// Committed (or nothing to commit): one outcome per send still in the batch.
    Done(Vec<Result<Sent, StoreError>>),
    /// A concurrent duplicate key: run the batch again.
    Again,
    /// Send `index` failed with `error`, aborting the transaction: run again without it.
    Failed(usize, StoreError),
}

/// Why one send did not store.
enum Stop {
    /// An answer for this send (a refusal); the transaction is intact.
    Refused(StoreError),
    /// Its idempotency key was committed by another transaction after the read.
    Raced,
    /// A statement failed: the transaction is aborted.
    Failed(StoreError),
}

impl From<sqlx::Error> for Stop {
    fn from(error: sqlx::Error) -> Self {
        Stop::Failed(error.into())
    }
}

/// See [`crate::store::MessageStore::send_batch`].
pub(super) async fn send_batch(
    pool: &PgPool,
    outbox: &Outbox,
    sends: &[SendRequest<'_>],
) -> BatchOutcome {
    let mut left_out: Vec<Option<StoreError>> = sends.iter().map(|_| None).collect();
    // Each extra attempt leaves a send out or follows a key another transaction committed,
    // which the next attempt sees: a few more than the batch is a bug, not contention.
    for _ in 0..sends.len() + 3 {
        match attempt(pool, outbox, sends, &left_out).await? {
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
    Err(StoreError::BatchFailed {
        cause: "sends kept racing on their idempotency keys".into(),
        unavailable: false,
    })
}

/// One transaction over the sends not `left_out`.
async fn attempt(
    pool: &PgPool,
    outbox: &Outbox,
    sends: &[SendRequest<'_>],
    left_out: &[Option<StoreError>],
) -> Result<Attempt, StoreError> {
    let mut tx = pool.begin().await?;
    let conversations: Vec<Uuid> = sends.iter().map(|s| s.new.conversation_id).collect();
    order_batch_writes(&mut tx, &conversations, &[]).await?;
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
    commit_with(outbox, tx, &events).await?;
    Ok(Attempt::Done(outcomes))
}

/// The read that decides a send, in the contract's order of checks: the message an earlier
/// send with this key stored, whether the conversation exists, the sender's membership and
/// role, and a block between the two users of a direct conversation.
const GATE: &str = "\
    SELECT (SELECT true FROM messages WHERE sender_device_id = $3 AND client_message_id = $4) \
             AS earlier, \
           c.kind, m.role, m.joined_at_seq, \
           (c.direct_key IS NOT NULL AND EXISTS (SELECT 1 FROM blocks b \
              WHERE (b.blocker_id, b.blocked_id) IN ( \
                (split_part(c.direct_key, ':', 1)::uuid, split_part(c.direct_key, ':', 2)::uuid), \
                (split_part(c.direct_key, ':', 2)::uuid, split_part(c.direct_key, ':', 1)::uuid)))) \
             AS blocked \
    FROM (SELECT 1) AS one \
    LEFT JOIN conversations c ON c.conversation_id = $1 \
    LEFT JOIN members m ON m.conversation_id = c.conversation_id AND m.user_id = $2 \
                       AND m.left_at_seq IS NULL";

/// The write: the next seq (under the conversation's row lock, held to the commit), the
/// message, and what it counts in (the thread root's replies, the mention rows; the members'
/// counters once per batch, [`Tally`]). Nothing but the seq when the key turns out taken.
const STORE: &str = concat!(
    "WITH c AS (\
       UPDATE conversations \
       SET last_seq = last_seq + 1, last_activity_at = $12, last_message_id = $1 \
       WHERE conversation_id = $2 RETURNING last_seq), \
     ins AS (\
       INSERT INTO messages (message_id, conversation_id, seq, sender_id, sender_device_id, \
         client_message_id, request_hash, content, body, reply_to_message_id, \
         thread_root_message_id, created_at) \
       SELECT $1, $2, c.last_seq, $3, $4, $5, $6, $7, $8, $9, $10, $12 FROM c \
       ON CONFLICT ON CONSTRAINT messages_idempotency DO NOTHING \
       RETURNING ",
    message_columns!(),
    "), \
     replied AS (\
       UPDATE messages SET reply_count = reply_count + 1 \
       WHERE message_id = $10 AND EXISTS (SELECT 1 FROM ins)), \
     mentioned AS (\
       INSERT INTO mentions (message_id, user_id, conversation_id, seq) \
       SELECT ins.message_id, m, ins.conversation_id, ins.seq \
       FROM ins, unnest($11::uuid[]) AS m) \
     SELECT * FROM ins"
);

/// One send, inside the batch's transaction (which holds the write-order locks of every
/// conversation in the batch, so what the gate read stays true until the commit).
async fn send(
    conn: &mut PgConnection,
    request: &SendRequest<'_>,
    tally: &mut Tally,
) -> Result<Stored, Stop> {
    let SendRequest { actor, new, at, .. } = *request;
    let gate = sqlx::query(GATE)
        .bind(new.conversation_id)
        .bind(actor.user_id)
        .bind(actor.device_id)
        .bind(&new.client_message_id)
        .fetch_one(&mut *conn)
        .await?;
    // First, so that a retry succeeds whatever changed since (the sender left, a block).
    if gate.try_get::<Option<bool>, _>("earlier")?.is_some() {
        let stored = by_idempotency_key(&mut *conn, actor, &new.client_message_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        return repeat(stored, new)
            .map(Stored::Repeated)
            .map_err(Stop::Refused);
    }
    let kind: Option<i16> = gate.try_get("kind")?;
    let role: Option<i16> = gate.try_get("role")?;
    let (Some(kind), Some(role)) = (kind, role) else {
        return Err(Stop::Refused(StoreError::ConversationNotFound));
    };
    let joined_at_seq: i64 = gate.try_get("joined_at_seq")?;
    let role = Role::from_code(role.into()).ok_or_else(|| corrupt("member role", role))?;
    let kind = Kind::from_code(kind.into()).ok_or_else(|| corrupt("conversation kind", kind))?;
    may_post(kind, role).map_err(Stop::Refused)?;
    if gate.try_get::<Option<bool>, _>("blocked")? == Some(true) {
        return Err(Stop::Refused(StoreError::Blocked(None)));
    }
    if let Some(target) = new.reply_to_message_id
        && visible(conn, new.conversation_id, target, joined_at_seq, true)
            .await?
            .is_none()
    {
        return Err(Stop::Refused(StoreError::MessageNotFound));
    }
    if let Some(root) = new.thread_root_message_id {
        // A thread hangs off a top-level message: a reply in a thread cannot root another.
        match visible(conn, new.conversation_id, root, joined_at_seq, false).await? {
            Some(None) => {}
            _ => return Err(Stop::Refused(StoreError::MessageNotFound)),
        }
    }
    let mentioned = counted(conn, actor.user_id, new).await?;
    let stored = sqlx::query(STORE)
        .bind(new.id)
        .bind(new.conversation_id)
        .bind(actor.user_id)
        .bind(actor.device_id)
        .bind(&new.client_message_id)
        .bind(&new.request_hash[..])
        .bind(new.content.encode_to_vec())
        .bind(&new.content.text)
        .bind(new.reply_to_message_id)
        .bind(new.thread_root_message_id)
        .bind(&mentioned)
        .bind(at)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(stored) = stored else {
        return Err(Stop::Raced);
    };
    let sent = message(&stored)?;
    tally.add(new.conversation_id, actor.user_id, &mentioned);
    let event = conversation_event(
        new.conversation_id,
        sent.seq,
        at,
        actor,
        message_created(&sent, &mentioned),
    );
    Ok(Stored::Created(sent, event))
}

/// What a batch's messages add to the other members' unread and mention counters, written in
/// one statement before the commit: a message into a group of 1,000 updates 1,000 member rows,
/// and the batch's messages into one conversation then update them once, not once each.
/// (Membership cannot change in between: the batch holds its conversations' write-order
/// locks, which every join and leave takes too.)
#[derive(Default)]
struct Tally {
    /// Conversation and sender of each message.
    conversations: Vec<Uuid>,
    senders: Vec<Uuid>,
    /// Conversation and user of each counted mention (a member other than the sender).
    mention_conversations: Vec<Uuid>,
    mentioned: Vec<Uuid>,
}

impl Tally {
    fn add(&mut self, conversation: Uuid, sender: Uuid, mentioned: &[Uuid]) {
        self.conversations.push(conversation);
        self.senders.push(sender);
        for user in mentioned {
            self.mention_conversations.push(conversation);
            self.mentioned.push(*user);
        }
    }

    async fn count(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.conversations.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "WITH sent AS (\
               SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS s(conversation_id, sender_id)), \
             unread AS (\
               SELECT m.conversation_id, m.user_id, count(*) AS n \
               FROM members m JOIN sent s \
                 ON s.conversation_id = m.conversation_id AND s.sender_id <> m.user_id \
               WHERE m.left_at_seq IS NULL GROUP BY 1, 2), \
             mentions AS (\
               SELECT conversation_id, user_id, count(*) AS n \
               FROM unnest($3::uuid[], $4::uuid[]) AS x(conversation_id, user_id) GROUP BY 1, 2) \
             UPDATE members m SET unread_count = m.unread_count + u.n::int, \
               mention_count = m.mention_count + COALESCE((SELECT x.n::int FROM mentions x \
                 WHERE x.conversation_id = m.conversation_id AND x.user_id = m.user_id), 0) \
             FROM unread u WHERE m.conversation_id = u.conversation_id AND m.user_id = u.user_id",
        )
        .bind(&self.conversations)
        .bind(&self.senders)
        .bind(&self.mention_conversations)
        .bind(&self.mentioned)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Of the mentioned users, those the message counts for: current members other than the
/// sender (a mention of anyone else stays in the content and counts for nobody).
async fn counted(
    conn: &mut PgConnection,
    sender: Uuid,
    new: &crate::store::NewMessage,
) -> Result<Vec<Uuid>, sqlx::Error> {
    if new.mentioned.is_empty() {
        return Ok(Vec::new());
    }
    let members: Vec<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM members \
         WHERE conversation_id = $1 AND user_id = ANY($2) AND user_id <> $3 \
           AND left_at_seq IS NULL",
    )
    .bind(new.conversation_id)
    .bind(&new.mentioned)
    .bind(sender)
    .fetch_all(conn)
    .await?;
    Ok(counted_mentions(&new.mentioned, &members))
}
