//! What a claimed batch's jobs need before they are decided, read once per batch: one
//! statement per kind of fact (tokens, badges, read marks, inbox entries, settings, recent
//! alerts) over every job of the claim, instead of one per job. Each is one SQL text for both
//! backends with an IN list of bound values (`echo_store::placeholders`). The facts are a snapshot
//! at claim time: two alerts to one user in one batch see the same badge and storm counts,
//! as two concurrent sends always could.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, DeviceId, MessageId, UserId};
use echo_store::{Database, placeholders, with_db};
use uuid::Uuid;

use crate::error::NotificationError;
use crate::jobs::{Job, JobKind};
use crate::settings::Settings;
use crate::store::{NotificationStore, millis};

/// A push token as the dispatcher reads it.
#[derive(sqlx::FromRow)]
pub struct TokenRow {
    push_token_id: Uuid,
    #[sqlx(try_from = "Uuid")]
    pub device_id: DeviceId,
    pub platform: i16,
    pub app_id: String,
    pub token: String,
    pub sandbox: bool,
    pub updated_at_ms: i64,
    pub last_badge_sent: Option<i32>,
}

/// An alert's inbox entry, with its conversation's kind and the unread count there.
#[derive(sqlx::FromRow)]
pub struct EntryRow {
    #[sqlx(try_from = "Uuid")]
    user_id: UserId,
    #[sqlx(try_from = "Uuid")]
    message_id: MessageId,
    pub kind: i16,
    pub sender_display_name: String,
    pub conversation_title: String,
    pub preview: String,
    pub conversation_kind: i32,
    pub unread: i32,
}

/// What storm damping counts (spec §B5): alerts sent to a user in a conversation since
/// `recent_since`, and to the user in all since `minute_since`, counted up to `cap`.
pub struct Damping {
    pub recent_since: DateTime<Utc>,
    pub minute_since: DateTime<Utc>,
    pub cap: i64,
}

/// One alerted (user, conversation)'s storm counts.
#[derive(sqlx::FromRow)]
struct StormRow {
    #[sqlx(try_from = "Uuid")]
    user_id: UserId,
    conversation_id: Option<Uuid>,
    last_minute: i64,
    recent: i64,
}

/// The stored facts of one batch.
#[derive(Default)]
pub struct Facts {
    /// By token id (a token gone since the job was written is missing).
    pub tokens: HashMap<Uuid, TokenRow>,
    /// The absolute badge by user (users with no counts have 0).
    pub badges: HashMap<UserId, i64>,
    /// The read watermark by (user, conversation).
    pub read_up_to: HashMap<(UserId, ConversationId), i64>,
    /// The inbox entry by (user, message) (missing: the entry or its message is gone).
    pub entries: HashMap<(UserId, MessageId), EntryRow>,
    /// Notification settings by alerted user.
    pub settings: HashMap<UserId, Settings>,
    /// The (user, conversation) pairs alerted within the storm window.
    pub recent: HashSet<(UserId, ConversationId)>,
    /// Alerts sent in the last minute by user, counted up to the damping cap.
    pub last_minute: HashMap<UserId, i64>,
    /// The seq each device acknowledged, by (user, conversation): (device, seq).
    pub receipts: HashMap<(UserId, ConversationId), Vec<(DeviceId, i64)>>,
}

impl Facts {
    /// The badge `user`'s pushes carry now.
    pub fn badge(&self, user: UserId) -> u32 {
        let badge = self.badges.get(&user).copied().unwrap_or(0);
        u32::try_from(badge.max(0)).unwrap_or(u32::MAX)
    }

    /// Whether `job`'s message is read (watermark at or past its seq).
    pub fn read(&self, job: &Job) -> bool {
        let (Some(conversation), Some(seq)) = (job.conversation_id, job.seq) else {
            return false;
        };
        self.read_up_to
            .get(&(job.user_id, conversation))
            .is_some_and(|read| *read >= seq)
    }

    /// The devices of `job`'s user that have its message.
    pub fn devices_with(&self, job: &Job) -> impl Iterator<Item = DeviceId> + '_ {
        let (conversation, seq) = (job.conversation_id, job.seq.unwrap_or(i64::MAX));
        conversation
            .and_then(|c| self.receipts.get(&(job.user_id, c)))
            .into_iter()
            .flatten()
            .filter(move |(_, delivered)| *delivered >= seq)
            .map(|(device, _)| *device)
    }

    /// Storm damping for an alert to `user` in `conversation`: whether one went there within
    /// the window, and how many went to the user in the last minute (up to the cap).
    pub fn storm(&self, user: UserId, conversation: Option<ConversationId>) -> (bool, i64) {
        let recent = conversation.is_some_and(|c| self.recent.contains(&(user, c)));
        (recent, self.last_minute.get(&user).copied().unwrap_or(0))
    }
}

/// Reads the facts of `claimed`, with storm counts as `damping` says.
pub async fn facts(
    store: &NotificationStore,
    claimed: &[Job],
    now: DateTime<Utc>,
    damping: &Damping,
) -> Result<Facts, NotificationError> {
    let db = store.database();
    let tokens = distinct(claimed.iter().map(|j| j.token));
    let users = distinct(claimed.iter().map(|j| j.user_id));
    let alerts: Vec<&Job> = claimed
        .iter()
        .filter(|j| j.kind == JobKind::Alert)
        .collect();
    let alerted = distinct(alerts.iter().map(|j| j.user_id));
    let conversations = distinct(alerts.iter().filter_map(|j| j.conversation_id));
    let alerted_in: Vec<(UserId, Option<ConversationId>)> = alerts
        .iter()
        .map(|j| (j.user_id, j.conversation_id))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let pairs: Vec<(UserId, MessageId)> = alerts
        .iter()
        .filter_map(|j| Some((j.user_id, j.message_id?)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // Side by side on as many pooled readers (PostgreSQL: up to six of the pool's connections
    // per claim loop), not one after another; the settings come through their own store.
    let (tokens, badges, read_up_to, entries, storms, receipts) = tokio::try_join!(
        token_rows(db, &tokens),
        badges(db, &users, now),
        read_marks(db, &alerted, &conversations),
        entries(db, &pairs),
        storms(db, &alerted_in, damping),
        receipts(db, &alerted, &conversations),
    )?;
    Ok(Facts {
        tokens,
        badges,
        read_up_to,
        entries,
        settings: store.settings_of(&alerted).await?,
        recent: storms
            .iter()
            .filter(|r| r.recent > 0)
            .filter_map(|r| Some((r.user_id, r.conversation_id?.into())))
            .collect(),
        last_minute: storms
            .into_iter()
            .map(|r| (r.user_id, r.last_minute))
            .collect(),
        receipts,
    })
}

fn distinct<T: Eq + std::hash::Hash>(ids: impl Iterator<Item = T>) -> Vec<T> {
    ids.collect::<HashSet<_>>().into_iter().collect()
}

/// Runs `$sql` (a `format!` with the IN lists spliced) binding `$first` then each list in order,
/// on either backend's readers, into `Vec<$row>`.
macro_rules! fetch_in {
    ($db:expr, $row:ty, $sql:expr, [$($first:expr),*], [$($list:expr),+]) => {{
        let sql = $sql;
        let rows: Vec<$row> = with_db!($db, read, sql, |c| {
            #[allow(unused_mut)]
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))$(.bind($first))*;
            $(for value in $list {
                query = query.bind(Uuid::from(*value));
            })+
            query.fetch_all(c).await?
        });
        rows
    }};
}

async fn token_rows(
    db: &Database,
    tokens: &[Uuid],
) -> Result<HashMap<Uuid, TokenRow>, sqlx::Error> {
    if tokens.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = fetch_in!(
        db,
        TokenRow,
        format!(
            "SELECT push_token_id, device_id, platform, app_id, token, sandbox, updated_at_ms, \
             last_badge_sent FROM push_tokens WHERE push_token_id IN ({})",
            placeholders(1, tokens.len())
        ),
        [],
        [tokens]
    );
    Ok(rows.into_iter().map(|r| (r.push_token_id, r)).collect())
}

/// Σ unread over the conversations not muted at `now` (the expression of GetBadgeCount).
async fn badges(
    db: &Database,
    users: &[UserId],
    now: DateTime<Utc>,
) -> Result<HashMap<UserId, i64>, sqlx::Error> {
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = fetch_in!(
        db,
        (Uuid, i64),
        format!(
            "SELECT user_id, COALESCE(SUM(CASE WHEN muted_until_ms IS NULL \
               OR muted_until_ms <= $1 THEN unread ELSE 0 END), 0) \
             FROM notify_counts WHERE user_id IN ({}) GROUP BY user_id",
            placeholders(2, users.len())
        ),
        [millis(now)],
        [users]
    );
    Ok(rows
        .into_iter()
        .map(|(user, badge)| (UserId::from(user), badge))
        .collect())
}

async fn read_marks(
    db: &Database,
    users: &[UserId],
    conversations: &[ConversationId],
) -> Result<HashMap<(UserId, ConversationId), i64>, sqlx::Error> {
    if users.is_empty() || conversations.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = fetch_in!(
        db,
        (Uuid, Uuid, i64),
        format!(
            "SELECT user_id, conversation_id, last_read_seq FROM notify_counts \
             WHERE user_id IN ({}) AND conversation_id IN ({})",
            placeholders(1, users.len()),
            placeholders(1 + users.len(), conversations.len())
        ),
        [],
        [users, conversations]
    );
    Ok(rows
        .into_iter()
        .map(|(u, c, seq)| ((u.into(), c.into()), seq))
        .collect())
}

async fn receipts(
    db: &Database,
    users: &[UserId],
    conversations: &[ConversationId],
) -> Result<HashMap<(UserId, ConversationId), Vec<(DeviceId, i64)>>, sqlx::Error> {
    if users.is_empty() || conversations.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = fetch_in!(
        db,
        (Uuid, Uuid, Uuid, i64),
        format!(
            "SELECT user_id, conversation_id, device_id, delivered_up_to_seq \
             FROM notify_device_receipts \
             WHERE user_id IN ({}) AND conversation_id IN ({})",
            placeholders(1, users.len()),
            placeholders(1 + users.len(), conversations.len())
        ),
        [],
        [users, conversations]
    );
    let mut receipts: HashMap<(UserId, ConversationId), Vec<(DeviceId, i64)>> = HashMap::new();
    for (user, conversation, device, seq) in rows {
        receipts
            .entry((user.into(), conversation.into()))
            .or_default()
            .push((device.into(), seq));
    }
    Ok(receipts)
}

/// The entries of exactly these (user, message) pairs: each an equality on the
/// `(user_id, message_id)` unique key, a plan no statistics can spoil (with `user IN (…) AND
/// message IN (…)`, PostgreSQL took a channel post's 100,000 entries by message and filtered
/// them, 10–130 ms a batch).
async fn entries(
    db: &Database,
    pairs: &[(UserId, MessageId)],
) -> Result<HashMap<(UserId, MessageId), EntryRow>, sqlx::Error> {
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<String> = (0..pairs.len())
        .map(|k| {
            format!(
                "(e.user_id = ${} AND e.message_id = ${})",
                2 * k + 1,
                2 * k + 2
            )
        })
        .collect();
    let sql = format!(
        "SELECT e.user_id, e.message_id, e.kind, e.sender_display_name, \
           e.conversation_title, e.preview, COALESCE(c.kind, 0) AS conversation_kind, \
           COALESCE(n.unread, 0) AS unread \
         FROM inbox_entries e \
         LEFT JOIN notify_conversations c ON c.conversation_id = e.conversation_id \
         LEFT JOIN notify_counts n ON n.user_id = e.user_id \
           AND n.conversation_id = e.conversation_id \
         WHERE {}",
        keys.join(" OR ")
    );
    let rows: Vec<EntryRow> = with_db!(db, read, sql, |c| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
        for (user, message) in pairs {
            query = query.bind(Uuid::from(*user)).bind(Uuid::from(*message));
        }
        query.fetch_all(c).await?
    });
    Ok(rows
        .into_iter()
        .map(|r| ((r.user_id, r.message_id), r))
        .collect())
}

/// Storm counts per alerted (user, conversation). Each count is a correlated subquery that
/// stops at its LIMIT on the `(user_id, sent_at_ms)` index: the work is per alerted user, not
/// per sent job (an `IN` list over `push_jobs` read every alert of the last minute, and
/// PostgreSQL planned it as a scan of the whole table while the table had no statistics).
async fn storms(
    db: &Database,
    alerted: &[(UserId, Option<ConversationId>)],
    damping: &Damping,
) -> Result<Vec<StormRow>, sqlx::Error> {
    if alerted.is_empty() {
        return Ok(Vec::new());
    }
    // Numbered in the order they appear, each once, so SQLite binds them anonymously.
    let n = 2 * alerted.len();
    let values: Vec<String> = (0..alerted.len())
        .map(|k| format!("(${}, ${})", 2 * k + 1, 2 * k + 2))
        .collect();
    let sql = format!(
        "WITH v(user_id, conversation_id) AS (VALUES {}) \
         SELECT v.user_id, v.conversation_id, \
           (SELECT COUNT(*) FROM (SELECT 1 FROM push_jobs j WHERE j.user_id = v.user_id \
              AND j.sent_at_ms > ${} AND j.kind = ${} LIMIT ${}) AS m) AS last_minute, \
           (SELECT COUNT(*) FROM (SELECT 1 FROM push_jobs j WHERE j.user_id = v.user_id \
              AND j.sent_at_ms > ${} AND j.kind = ${} \
              AND j.conversation_id = v.conversation_id LIMIT 1) AS r) AS recent \
         FROM v",
        values.join(", "),
        n + 1,
        n + 2,
        n + 3,
        n + 4,
        n + 5,
    );
    let rows: Vec<StormRow> = with_db!(db, read, sql, |c| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
        for (user, conversation) in alerted {
            query = query
                .bind(Uuid::from(*user))
                .bind(conversation.map(Uuid::from));
        }
        query = query
            .bind(millis(damping.minute_since))
            .bind(JobKind::Alert.code())
            .bind(damping.cap)
            .bind(millis(damping.recent_since))
            .bind(JobKind::Alert.code());
        query.fetch_all(c).await?
    });
    Ok(rows)
}
