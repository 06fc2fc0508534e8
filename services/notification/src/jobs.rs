//! `push_jobs`, the dispatch queue (spec §B2–§B3): the pipeline writes jobs in the event's
//! transaction, the dispatcher claims due ones and records what came of each.
//!
//! A job is unique per `(message, token, kind)`, so a redelivered event creates nothing new.
//! A recheck delay is a due time on a stored job, not a sleeping task: a restart mid-delay
//! neither loses nor doubles a push. A claim is a lease: an instance that dies holding a job
//! (even after the provider's 2xx) lets it go when the lease ends, and the resend carries the
//! same device-side dedupe key.
//!
//! Every statement is one SQL text for both backends except the claim, whose row locking is
//! the one dialect-specific primitive (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's single
//! writer already serialises claims).
//!
//! One idea, kept whole: every statement on `push_jobs`, so the queue's states and indexes are
//! read in one place.
//! The statements share the state codes (`PENDING` to `DISMISSED`), the priorities and the lease
//! guard; split between the pipeline's writes and the dispatcher's claims, a new state or a changed
//! guard could be honoured by `claim` and missed by `settle`, `release` or `prune`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_store::{Database, Tx, placeholders, value_rows, with_db, with_tx};
use uuid::Uuid;

use crate::store::{from_millis, millis};

/// `push_jobs.state`: waiting (due now or later). The claim's partial index (`push_jobs_due`,
/// `WHERE state = 1`) and the statements it serves spell this value out.
pub const PENDING: i16 = 1;
const _: () = assert!(
    PENDING == 1,
    "push_jobs_due is a partial index on state = 1"
);
/// Sent: the provider accepted it.
pub const SENT: i16 = 2;
/// Not sent, and never will be: read or deleted before it was due, token pruned, expired,
/// refused by the provider as a payload error.
pub const SKIPPED: i16 = 3;
/// A sent alert whose conversation was read since: a dismiss went out for it.
pub const DISMISSED: i16 = 4;

/// What a job sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// A visible notification of one message.
    Alert,
    /// The badge number only.
    Badge,
    /// Remove the notifications of a conversation (read elsewhere) or of a message (deleted
    /// for everyone), with the badge.
    Dismiss,
}

impl JobKind {
    /// `push_jobs.kind`.
    pub fn code(self) -> i16 {
        match self {
            JobKind::Alert => 1,
            JobKind::Badge => 2,
            JobKind::Dismiss => 3,
        }
    }

    fn from_code(code: i16) -> Option<Self> {
        match code {
            1 => Some(JobKind::Alert),
            2 => Some(JobKind::Badge),
            3 => Some(JobKind::Dismiss),
            _ => None,
        }
    }
}

/// An alert's stage (`push_jobs.phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Just written: ask presence whether a device is ONLINE.
    New,
    /// A device was ONLINE: push only if the message is still unread now.
    Recheck,
    /// Decided: send (retries stay here).
    Send,
}

impl Phase {
    fn code(self) -> i16 {
        match self {
            Phase::New => 0,
            Phase::Recheck => 1,
            Phase::Send => 2,
        }
    }

    fn from_code(code: i16) -> Self {
        match code {
            0 => Phase::New,
            1 => Phase::Recheck,
            _ => Phase::Send,
        }
    }
}

/// A job to write.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// The message (alerts, and dismisses of a deleted message).
    pub message_id: Option<MessageId>,
    /// The token it goes to.
    pub token: Uuid,
    /// Whose token.
    pub user_id: UserId,
    /// What it sends.
    pub kind: JobKind,
    /// The conversation it is about.
    pub conversation_id: Option<ConversationId>,
    /// The message's seq.
    pub seq: Option<i64>,
    /// When it is due.
    pub due: DateTime<Utc>,
    /// When it expires.
    pub expires: DateTime<Utc>,
    /// Part of a channel's fan-out: claimed only when no other job is due, so a 100,000-member
    /// post never holds back a direct message's push (spec §B5, §B7).
    pub bulk: bool,
}

/// Writes `job` unless an equal one exists (same message, token and kind); for badge and
/// dismiss jobs without a message, unless one of the same kind (and conversation) is still
/// pending for that token: the pending one will send the number current at its time.
/// Returns whether it was written.
pub async fn insert(tx: &mut Tx, job: &NewJob, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    const PENDING_LIKE: &str = "SELECT count(*) FROM push_jobs WHERE push_token_id = $1 \
         AND kind = $2 AND state = $3 AND message_id IS NULL \
         AND (conversation_id = $4 OR (conversation_id IS NULL AND $4 IS NULL))";
    if job.message_id.is_none() {
        let pending: i64 = with_tx!(tx, |c| {
            sqlx::query_scalar(PENDING_LIKE)
                .bind(job.token)
                .bind(job.kind.code())
                .bind(PENDING)
                .bind(job.conversation_id.map(Uuid::from))
                .fetch_one(c)
                .await?
        });
        if pending > 0 {
            return Ok(false);
        }
    }
    Ok(insert_about_messages(tx, std::slice::from_ref(job), now).await? == 1)
}

/// When a badge job for `user` may be due: `interval` after the user's last badge push, or
/// `now` if that is past (spec §B5: at most one badge push per user per interval).
pub async fn badge_slot(
    tx: &mut Tx,
    user: UserId,
    now: DateTime<Utc>,
    interval: std::time::Duration,
) -> Result<DateTime<Utc>, sqlx::Error> {
    // Served by push_jobs_user_sent (user_id, sent_at_ms, kind, …) alone.
    const SQL: &str = "SELECT max(sent_at_ms) FROM push_jobs WHERE user_id = $1 AND kind = $2";
    if interval.is_zero() {
        return Ok(now);
    }
    let last: Option<i64> = with_tx!(tx, |c| {
        sqlx::query_scalar(SQL)
            .bind(Uuid::from(user))
            .bind(JobKind::Badge.code())
            .fetch_one(c)
            .await?
    });
    let slot = last.map(|at| from_millis(at) + interval);
    Ok(slot.filter(|slot| *slot > now).unwrap_or(now))
}

/// Rows per INSERT of message jobs: 13 values each, well under SQLite's 32,766 bound values.
const JOBS_PER_INSERT: usize = 1_000;

/// Writes `batch` as multi-row INSERTs; a job about a message equal to one already written
/// (same message, token and kind: a redelivered event) is not written again. Returns how
/// many were written. (Jobs without a message go through [`insert`], which coalesces them.)
pub async fn insert_about_messages(
    tx: &mut Tx,
    batch: &[NewJob],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut written = 0;
    for chunk in batch.chunks(JOBS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO push_jobs (push_job_id, message_id, push_token_id, user_id, kind, \
               due_at_ms, state, created_at_ms, expires_at_ms, conversation_id, seq, phase, \
               priority) \
             VALUES {} ON CONFLICT (message_id, push_token_id, kind) DO NOTHING",
            value_rows(1, chunk.len(), 13)
        );
        let done = with_tx!(tx, sql, |c| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for job in chunk {
                query = query
                    .bind(Uuid::now_v7())
                    .bind(job.message_id.map(Uuid::from))
                    .bind(job.token)
                    .bind(Uuid::from(job.user_id))
                    .bind(job.kind.code())
                    .bind(millis(job.due))
                    .bind(PENDING)
                    .bind(millis(now))
                    .bind(millis(job.expires))
                    .bind(job.conversation_id.map(Uuid::from))
                    .bind(job.seq)
                    .bind(first_phase(job.kind).code())
                    .bind(priority(job));
            }
            query.execute(c).await?.rows_affected()
        });
        written += done;
    }
    Ok(written)
}

/// `push_jobs.priority`: claimed first.
const URGENT: i16 = 0;
/// `push_jobs.priority`: a channel fan-out's, claimed when nothing urgent is due.
const BULK: i16 = 1;

fn priority(job: &NewJob) -> i16 {
    if job.bulk { BULK } else { URGENT }
}

/// Channel fan-out jobs waiting to be sent (the fan-out worker writes more only below a
/// watermark, so a large post moves at the dispatcher's pace and leaves the database to the
/// other events meanwhile).
pub async fn pending_bulk(db: &Database) -> Result<i64, sqlx::Error> {
    const SQL: &str = "SELECT count(*) FROM push_jobs WHERE state = 1 AND priority = $1";
    Ok(with_db!(db, read, |c| {
        sqlx::query_scalar(SQL).bind(BULK).fetch_one(c).await?
    }))
}

/// The phase a new job starts in: an alert first checks presence, the others just send.
fn first_phase(kind: JobKind) -> Phase {
    if kind == JobKind::Alert {
        Phase::New
    } else {
        Phase::Send
    }
}

/// Deletes `token`'s pending jobs in the caller's transaction (the token was unregistered,
/// replaced by another device's registration, or is about to be deleted). Returns how many.
pub async fn cancel_pending(tx: &mut Tx, token: Uuid) -> Result<u64, sqlx::Error> {
    const SQL: &str = "DELETE FROM push_jobs WHERE push_token_id = $1 AND state = $2";
    with_tx!(tx, |c| {
        let done = sqlx::query(SQL)
            .bind(token)
            .bind(PENDING)
            .execute(c)
            .await?;
        Ok(done.rows_affected())
    })
}

/// Marks `user`'s pending alerts in `conversation` up to `seq` skipped (read, muted, left).
pub async fn skip_alerts(
    tx: &mut Tx,
    user: UserId,
    conversation: ConversationId,
    up_to_seq: i64,
) -> Result<u64, sqlx::Error> {
    const SQL: &str = "UPDATE push_jobs SET state = $1, last_error = 'read' \
         WHERE user_id = $2 AND conversation_id = $3 AND kind = $4 AND state = $5 AND seq <= $6";
    with_tx!(tx, |c| {
        let done = sqlx::query(SQL)
            .bind(SKIPPED)
            .bind(Uuid::from(user))
            .bind(Uuid::from(conversation))
            .bind(JobKind::Alert.code())
            .bind(PENDING)
            .bind(up_to_seq)
            .execute(c)
            .await?;
        Ok(done.rows_affected())
    })
}

/// Marks `user`'s sent alerts in `conversation` up to `seq` dismissed; returns the tokens
/// they went to (each gets a dismiss push).
pub async fn dismiss_sent(
    tx: &mut Tx,
    user: UserId,
    conversation: ConversationId,
    up_to_seq: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    const SQL: &str = "UPDATE push_jobs SET state = $1 \
         WHERE user_id = $2 AND conversation_id = $3 AND kind = $4 AND state = $5 AND seq <= $6 \
         RETURNING push_token_id";
    let mut tokens: Vec<Uuid> = with_tx!(tx, |c| {
        sqlx::query_scalar(SQL)
            .bind(DISMISSED)
            .bind(Uuid::from(user))
            .bind(Uuid::from(conversation))
            .bind(JobKind::Alert.code())
            .bind(SENT)
            .bind(up_to_seq)
            .fetch_all(c)
            .await?
    });
    tokens.sort_unstable();
    tokens.dedup();
    Ok(tokens)
}

/// A message deleted for everyone: its pending jobs go; returns (user, token) of each alert
/// already sent for it (each gets a dismiss push).
pub async fn erase_message(
    tx: &mut Tx,
    message: MessageId,
) -> Result<Vec<(UserId, Uuid)>, sqlx::Error> {
    const CANCEL: &str = "DELETE FROM push_jobs WHERE message_id = $1 AND state = $2";
    const SENT_TO: &str = "UPDATE push_jobs SET state = $1 \
         WHERE message_id = $2 AND kind = $3 AND state = $4 RETURNING user_id, push_token_id";
    with_tx!(tx, |c| {
        sqlx::query(CANCEL)
            .bind(Uuid::from(message))
            .bind(PENDING)
            .execute(&mut *c)
            .await?;
        let sent: Vec<(Uuid, Uuid)> = sqlx::query_as(SENT_TO)
            .bind(DISMISSED)
            .bind(Uuid::from(message))
            .bind(JobKind::Alert.code())
            .bind(SENT)
            .fetch_all(c)
            .await?;
        Ok(sent
            .into_iter()
            .map(|(user, token)| (UserId::from(user), token))
            .collect())
    })
}

/// Deletes `user`'s pending jobs about `message` (deleted for them alone).
pub async fn cancel_for_message(
    tx: &mut Tx,
    user: UserId,
    message: MessageId,
) -> Result<u64, sqlx::Error> {
    const SQL: &str = "DELETE FROM push_jobs WHERE user_id = $1 AND message_id = $2 AND state = $3";
    with_tx!(tx, |c| {
        let done = sqlx::query(SQL)
            .bind(Uuid::from(user))
            .bind(Uuid::from(message))
            .bind(PENDING)
            .execute(c)
            .await?;
        Ok(done.rows_affected())
    })
}

/// A claimed job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Id (`apns-id`, the webhook's delivery id for pushes without a message).
    pub id: Uuid,
    /// The message, if any.
    pub message_id: Option<MessageId>,
    /// The token.
    pub token: Uuid,
    /// Whose.
    pub user_id: UserId,
    /// What it sends.
    pub kind: JobKind,
    /// The alert's stage.
    pub phase: Phase,
    /// The conversation.
    pub conversation_id: Option<ConversationId>,
    /// The message's seq.
    pub seq: Option<i64>,
    /// Provider attempts that failed transiently so far.
    pub attempts: u32,
    /// When the pipeline wrote it.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The lease of the claim that took it (ms): only that claim settles it.
    pub lease_until_ms: i64,
}

type JobRow = (
    Uuid,
    Option<Uuid>,
    Uuid,
    Uuid,
    i16,
    i16,
    Option<Uuid>,
    Option<i64>,
    i32,
    i64,
    i64,
    i64,
);

fn job(row: JobRow) -> Option<Job> {
    Some(Job {
        id: row.0,
        message_id: row.1.map(MessageId::from),
        token: row.2,
        user_id: row.3.into(),
        kind: JobKind::from_code(row.4)?,
        phase: Phase::from_code(row.5),
        conversation_id: row.6.map(ConversationId::from),
        seq: row.7,
        attempts: u32::try_from(row.8).unwrap_or(0),
        created_at: from_millis(row.9),
        expires_at: from_millis(row.10),
        lease_until_ms: row.11,
    })
}

/// Claims up to `limit` due jobs until `lease_until`, oldest due first: urgent ones, then
/// channel fan-out's with what room is left. Jobs another instance holds (a live lease, or a
/// row it has locked right now) are skipped.
pub async fn claim(
    db: &Database,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Job>, sqlx::Error> {
    let mut claimed = claim_of(db, URGENT, now, lease_until, limit).await?;
    if claimed.len() < limit {
        let room = limit - claimed.len();
        claimed.extend(claim_of(db, BULK, now, lease_until, room).await?);
    }
    Ok(claimed)
}

async fn claim_of(
    db: &Database,
    priority: i16,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Job>, sqlx::Error> {
    macro_rules! claim_sql {
        ($lock:literal) => {
            concat!(
                "UPDATE push_jobs SET lease_until_ms = $1 WHERE push_job_id IN (\
                   SELECT push_job_id FROM push_jobs WHERE state = 1 AND priority = $2 \
                   AND due_at_ms <= $3 AND (lease_until_ms IS NULL OR lease_until_ms <= $3) \
                   ORDER BY due_at_ms LIMIT $4",
                $lock,
                ") RETURNING push_job_id, message_id, push_token_id, user_id, kind, phase, \
                 conversation_id, seq, attempts, created_at_ms, expires_at_ms, lease_until_ms"
            )
        };
    }
    let limit = echo_store::sql_limit(limit);
    let rows: Vec<JobRow> = match db {
        Database::Postgres(db) => {
            sqlx::query_as(claim_sql!(" FOR UPDATE SKIP LOCKED"))
                .bind(millis(lease_until))
                .bind(priority)
                .bind(millis(now))
                .bind(limit)
                .fetch_all(&db.pool)
                .await?
        }
        Database::Sqlite(db) => {
            sqlx::query_as(claim_sql!(""))
                .bind(millis(lease_until))
                .bind(priority)
                .bind(millis(now))
                .bind(limit)
                .fetch_all(&db.writer)
                .await?
        }
    };
    Ok(rows.into_iter().filter_map(job).collect())
}

/// Gives `jobs` back, due again at `due`, when this claim could not handle them (the batch's
/// reads failed): without it they would wait for their lease to run out (30 s by default).
/// Only this claim's leases (`lease_until`) are released: a job whose lease ran out and was
/// claimed again meanwhile belongs to that claim. Attempts are not counted.
pub async fn release(
    db: &Database,
    jobs: &[Job],
    lease_until: DateTime<Utc>,
    due: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE push_jobs SET lease_until_ms = NULL, due_at_ms = $1 \
         WHERE lease_until_ms = $2 AND push_job_id IN ({})",
        echo_store::placeholders(3, jobs.len())
    );
    with_db!(db, write, sql, |c| {
        // Only numbered placeholders are formatted in; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(millis(due))
            .bind(millis(lease_until));
        for job in jobs {
            query = query.bind(job.id);
        }
        Ok(query.execute(c).await?.rows_affected())
    })
}

/// What became of a claimed job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Sent at this time.
    Sent(DateTime<Utc>),
    /// Never to be sent, for this reason.
    Skipped(String),
    /// Try again at this time, in this phase (a recheck, or a retry after a transient error).
    Later {
        /// When.
        due: DateTime<Utc>,
        /// In which phase.
        phase: Phase,
        /// Counts as a failed attempt (a provider retry, not a recheck).
        failed: bool,
        /// The error, if any.
        error: Option<String>,
    },
}

/// Ids per statement of a batch's settles (the dispatcher's batches are smaller).
const IDS_PER_SETTLE: usize = 1_000;

/// Records what became of each job and releases its lease, in the caller's transaction (the
/// dispatcher settles a whole batch in one): one UPDATE per group of jobs settled alike
/// (a batch sent at one time is one statement), one per job to try again later (each has its
/// own due time). Only the claim that holds a job settles it: a job cancelled meanwhile
/// (deleted), or whose lease ran out and was claimed again, is left as it is. The guard is the
/// lease, not `state = 1`: that would let a planner without statistics serve the UPDATE from
/// the pending-jobs index and filter every pending job against the batch's ids (70–100 ms a
/// settle during a backlog) instead of looking the ids up by primary key.
pub async fn settle(tx: &mut Tx, settled: &[(&Job, &Settled)]) -> Result<(), sqlx::Error> {
    // Sent: its time; skipped: its reason (a sent job keeps the error of a failed attempt).
    const FINAL_SQL: &str = "UPDATE push_jobs SET state = $1, sent_at_ms = $2, \
         last_error = COALESCE($3, last_error), lease_until_ms = NULL \
         WHERE lease_until_ms = $4 AND push_job_id IN";
    const LATER_SQL: &str = "UPDATE push_jobs SET due_at_ms = $1, phase = $2, \
         attempts = attempts + $3, last_error = $4, lease_until_ms = NULL \
         WHERE push_job_id = $5 AND lease_until_ms = $6";
    // (state, sent at, reason, lease) → the jobs settled so.
    type Final<'a> = (i16, Option<i64>, Option<&'a str>, i64);
    let mut finished: BTreeMap<Final<'_>, Vec<Uuid>> = BTreeMap::new();
    for &(job, settled) in settled {
        let key = match settled {
            Settled::Sent(at) => (SENT, Some(millis(*at)), None, job.lease_until_ms),
            Settled::Skipped(reason) => (SKIPPED, None, Some(reason.as_str()), job.lease_until_ms),
            Settled::Later {
                due,
                phase,
                failed,
                error,
            } => {
                with_tx!(&mut *tx, |c| {
                    sqlx::query(LATER_SQL)
                        .bind(millis(*due))
                        .bind(phase.code())
                        .bind(i32::from(*failed))
                        .bind(error.as_deref())
                        .bind(job.id)
                        .bind(job.lease_until_ms)
                        .execute(c)
                        .await?;
                });
                continue;
            }
        };
        finished.entry(key).or_default().push(job.id);
    }
    for ((state, sent_at, reason, lease), ids) in &finished {
        for chunk in ids.chunks(IDS_PER_SETTLE) {
            let sql = format!("{FINAL_SQL} ({})", placeholders(5, chunk.len()));
            with_tx!(&mut *tx, sql, |c| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(*state)
                    .bind(*sent_at)
                    .bind(*reason)
                    .bind(*lease);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.execute(c).await?;
            });
        }
    }
    Ok(())
}

/// Deletes finished jobs created before `jobs_before`, and the message rows (with their
/// mentions) of messages created before `messages_before`.
pub async fn prune(
    db: &Database,
    jobs_before: DateTime<Utc>,
    messages_before: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    const JOBS: &str = "DELETE FROM push_jobs WHERE state <> $1 AND created_at_ms < $2";
    const MESSAGES: &str = "DELETE FROM notify_messages WHERE created_at_ms < $1";
    const MENTIONS: &str = "DELETE FROM notify_mentions WHERE message_id NOT IN \
         (SELECT message_id FROM notify_messages)";
    with_db!(db, write, |c| {
        let jobs = sqlx::query(JOBS)
            .bind(PENDING)
            .bind(millis(jobs_before))
            .execute(c)
            .await?;
        sqlx::query(MESSAGES)
            .bind(millis(messages_before))
            .execute(c)
            .await?;
        sqlx::query(MENTIONS).execute(c).await?;
        Ok(jobs.rows_affected())
    })
}
