//! What a claimed batch's jobs need before they are decided, read once per batch: one
//! statement per kind of fact (tokens, badges, read marks, inbox entries, settings, recent
//! alerts) over every job of the claim, instead of one per job. Each is one SQL text for both
//! backends with an IN list of bound values (`echo_store::placeholders`). The facts are a snapshot
//! at claim time: two alerts to one user in one batch see the same badge and storm counts,
//! as two concurrent sends always could.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use echo_store::{Database, placeholders, with_db};
use uuid::Uuid;

use crate::error::NotificationError;
use crate::jobs::{Job, JobKind};
use crate::settings::Settings;
use crate::store::{NotificationStore, millis};

/// A push token as the dispatcher reads it.
#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    push_token_id: Uuid,
    pub device_id: Uuid,
    pub platform: i16,
    pub app_id: String,
    pub token: String,
    pub sandbox: bool,
    pub updated_at_ms: i64,
    pub last_badge_sent: Option<i32>,
}

/// An alert's inbox entry, with its conversation's kind and the unread count there.
#[derive(sqlx::FromRow)]
pub(super) struct EntryRow {
    user_id: Uuid,
    message_id: Uuid,
    pub kind: i16,
    pub sender_display_name: String,
    pub conversation_title: String,
    pub preview: String,
    pub conversation_kind: i32,
    pub unread: i32,
}

/// An alert sent lately (storm damping).
#[derive(sqlx::FromRow)]
struct SentRow {
    user_id: Uuid,
    conversation_id: Option<Uuid>,
    sent_at_ms: i64,
}

/// The stored facts of one batch.
#[derive(Default)]
pub(super) struct Facts {
    /// By token id (a token gone since the job was written is missing).
    pub tokens: HashMap<Uuid, TokenRow>,
    /// The absolute badge by user (users with no counts have 0).
    pub badges: HashMap<Uuid, i64>,
    /// The read watermark by (user, conversation).
    pub read_up_to: HashMap<(Uuid, Uuid), i64>,
    /// The inbox entry by (user, message) (missing: the entry or its message is gone).
    pub entries: HashMap<(Uuid, Uuid), EntryRow>,
    /// Notification settings by alerted user.
    pub settings: HashMap<Uuid, Settings>,
    /// Alerts sent in the last minute by user: (conversation, sent at, ms).
    pub sent: HashMap<Uuid, Vec<(Option<Uuid>, i64)>>,
    /// The seq each device acknowledged, by (user, conversation): (device, seq).
    pub receipts: HashMap<(Uuid, Uuid), Vec<(Uuid, i64)>>,
}

impl Facts {
    /// The badge `user`'s pushes carry now.
    pub fn badge(&self, user: Uuid) -> u32 {
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
    pub fn devices_with(&self, job: &Job) -> impl Iterator<Item = Uuid> + '_ {
        let (conversation, seq) = (job.conversation_id, job.seq.unwrap_or(i64::MAX));
        conversation
            .and_then(|c| self.receipts.get(&(job.user_id, c)))
            .into_iter()
            .flatten()
            .filter(move |(_, delivered)| *delivered >= seq)
            .map(|(device, _)| *device)
    }

    /// Alerts sent to `user` since `since_ms`: in `conversation`, and in all.
    pub fn sent_since(&self, user: Uuid, conversation: Option<Uuid>, since_ms: i64) -> (i64, i64) {
        let mut in_conversation = 0;
        let mut all = 0;
        for (c, at) in self.sent.get(&user).into_iter().flatten() {
            if *at > since_ms {
                all += 1;
                if *c == conversation {
                    in_conversation += 1;
                }
            }
        }
        (in_conversation, all)
    }
}

/// Reads the facts of `claimed` (alerts sent since `sent_since` count for damping).
pub(super) async fn facts(
    store: &NotificationStore,
    claimed: &[Job],
    now: DateTime<Utc>,
    sent_since: DateTime<Utc>,
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
    let pairs: Vec<(Uuid, Uuid)> = alerts
        .iter()
        .filter_map(|j| Some((j.user_id, j.message_id?)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // Side by side on as many pooled readers (PostgreSQL: up to six of the pool's connections
    // per claim loop), not one after another; the settings come through their own store.
    let (tokens, badges, read_up_to, entries, sent, receipts) = tokio::try_join!(
        token_rows(db, &tokens),
        badges(db, &users, now),
        read_marks(db, &alerted, &conversations),
        entries(db, &pairs),
        sent(db, &alerted, sent_since),
        receipts(db, &alerted, &conversations),
    )?;
    Ok(Facts {
        tokens,
        badges,
        read_up_to,
        entries,
        settings: store.settings_of(&alerted).await?,
        sent,
        receipts,
    })
}

fn distinct(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
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
                query = query.bind(*value);
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
    users: &[Uuid],
    now: DateTime<Utc>,
) -> Result<HashMap<Uuid, i64>, sqlx::Error> {
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
    Ok(rows.into_iter().collect())
}

async fn read_marks(
    db: &Database,
    users: &[Uuid],
    conversations: &[Uuid],
) -> Result<HashMap<(Uuid, Uuid), i64>, sqlx::Error> {
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
    Ok(rows.into_iter().map(|(u, c, seq)| ((u, c), seq)).collect())
}

async fn receipts(
    db: &Database,
    users: &[Uuid],
    conversations: &[Uuid],
) -> Result<HashMap<(Uuid, Uuid), Vec<(Uuid, i64)>>, sqlx::Error> {
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
    let mut receipts: HashMap<(Uuid, Uuid), Vec<(Uuid, i64)>> = HashMap::new();
    for (user, conversation, device, seq) in rows {
        receipts
            .entry((user, conversation))
            .or_default()
            .push((device, seq));
    }
    Ok(receipts)
}

/// The entries of exactly these (user, message) pairs: each an equality on the
/// `(user_id, message_id)` unique key, a plan no statistics can spoil (with `user IN (…) AND
/// message IN (…)`, PostgreSQL took a channel post's 100,000 entries by message and filtered
/// them, 10–130 ms a batch).
async fn entries(
    db: &Database,
    pairs: &[(Uuid, Uuid)],
) -> Result<HashMap<(Uuid, Uuid), EntryRow>, sqlx::Error> {
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
            query = query.bind(*user).bind(*message);
        }
        query.fetch_all(c).await?
    });
    Ok(rows
        .into_iter()
        .map(|r| ((r.user_id, r.message_id), r))
        .collect())
}

async fn sent(
    db: &Database,
    users: &[Uuid],
    since: DateTime<Utc>,
) -> Result<HashMap<Uuid, Vec<(Option<Uuid>, i64)>>, sqlx::Error> {
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = fetch_in!(
        db,
        SentRow,
        format!(
            "SELECT user_id, conversation_id, sent_at_ms FROM push_jobs \
             WHERE kind = $1 AND sent_at_ms > $2 AND user_id IN ({})",
            placeholders(3, users.len())
        ),
        [JobKind::Alert.code(), millis(since)],
        [users]
    );
    let mut sent: HashMap<Uuid, Vec<(Option<Uuid>, i64)>> = HashMap::new();
    for row in rows {
        sent.entry(row.user_id)
            .or_default()
            .push((row.conversation_id, row.sent_at_ms));
    }
    Ok(sent)
}
