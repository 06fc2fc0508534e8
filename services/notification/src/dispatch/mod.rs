//! The delivery pipeline's second half (spec §B2–§B5): claim due push jobs, decide each alert
//! (ONLINE device → recheck after the delay; read meanwhile → drop), compose the push (text
//! or "New message from …", DND and quiet hours silent, storms summarised, the absolute
//! badge), send it through the platform's provider, and record the outcome: sent; retry with
//! full-jitter backoff (never sooner than `Retry-After`) until the job expires; token pruned
//! (only on the rows of spec §B3's table, which the providers classify); dropped.
//!
//! Several instances drain one queue: a claim locks rows it takes (`FOR UPDATE SKIP LOCKED`)
//! and holds them for a lease, so a crash mid-send releases the job for another instance,
//! whose resend carries the same device-side dedupe key.

pub mod compose;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use echo_push::{Outcome, Push, PushKind, PushProvider, Target};
use echo_store::{Database, with_db};
use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::inbox::store as inbox_store;
use crate::jobs::{self, Job, JobKind, Phase, Settled};
use crate::pipeline::decide::{self, Step};
use crate::settings::in_quiet_hours;
use crate::store::{NotificationStore, from_millis, millis};
use crate::tokens::Platform;
use crate::upstream::{Delivery, Preview, Upstream};
use compose::{About, alert_text, backoff};

/// Within this long of an alert in the same conversation, the next is silent and summarises.
const STORM_WINDOW: chrono::Duration = chrono::Duration::seconds(10);
/// More alerts than this per user per minute go silent.
const STORM_PER_MINUTE: i64 = 30;
/// Finished jobs are kept this long (then pruned).
const KEEP_FINISHED: chrono::Duration = chrono::Duration::days(1);
/// Message rows are kept as long as the bus keeps events (a MessageDeleted can come that
/// late).
const KEEP_MESSAGES: chrono::Duration = chrono::Duration::days(7);
/// How often an instance prunes finished jobs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often an instance trims the inbox (a scan of the table: rarely).
const TRIM_EVERY: Duration = Duration::from_secs(600);

/// How the dispatcher runs.
#[derive(Clone, Debug)]
pub struct DispatchSettings {
    /// Recheck delay for recipients with an ONLINE device.
    pub recheck_delay: Duration,
    /// A claim's lease.
    pub claim_lease: Duration,
    /// Idle poll interval.
    pub poll_every: Duration,
    /// Jobs per claim.
    pub batch: usize,
    /// Provider requests in flight.
    pub concurrency: usize,
}

/// Sends the queued pushes.
pub struct Dispatcher {
    store: NotificationStore,
    upstream: Arc<dyn Upstream>,
    providers: HashMap<Platform, Arc<dyn PushProvider>>,
    settings: DispatchSettings,
    wake: Arc<Notify>,
}

/// A push token as the dispatcher reads it.
#[derive(sqlx::FromRow)]
struct TokenRow {
    platform: i16,
    app_id: String,
    token: String,
    sandbox: bool,
    updated_at_ms: i64,
    last_badge_sent: Option<i32>,
}

/// What one batch's alerts share: delivery states and previews, read once per batch.
#[derive(Default)]
struct BatchContext {
    delivery: HashMap<Uuid, Delivery>,
    previews: HashMap<Uuid, Preview>,
    previews_failed: bool,
}

impl Dispatcher {
    /// A dispatcher sending through `providers`.
    pub fn new(
        store: NotificationStore,
        upstream: Arc<dyn Upstream>,
        providers: HashMap<Platform, Arc<dyn PushProvider>>,
        settings: DispatchSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            upstream,
            providers,
            settings,
            wake,
        }
    }

    /// Drain due jobs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_prune = tokio::time::Instant::now();
        let mut last_trim = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            let claimed = match self.claim().await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "claiming push jobs failed");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.settings.poll_every) => {}
                }
            } else {
                self.process(claimed).await;
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = tokio::time::Instant::now();
                let now = Utc::now();
                if let Err(error) =
                    jobs::prune(self.db(), now - KEEP_FINISHED, now - KEEP_MESSAGES).await
                {
                    tracing::warn!(%error, "pruning push jobs failed");
                }
            }
            if last_trim.elapsed() >= TRIM_EVERY {
                last_trim = tokio::time::Instant::now();
                let before = Utc::now() - chrono::Duration::days(inbox_store::KEEP_DAYS);
                if let Err(error) =
                    inbox_store::trim(self.db(), before, inbox_store::KEEP_PER_USER).await
                {
                    tracing::warn!(%error, "trimming the inbox failed");
                }
            }
        }
    }

    fn db(&self) -> &Database {
        self.store.database()
    }

    async fn claim(&self) -> Result<Vec<Job>, sqlx::Error> {
        let now = Utc::now();
        let lease = now + self.settings.claim_lease;
        jobs::claim(self.db(), now, lease, self.settings.batch).await
    }

    /// Handles one claimed batch, `concurrency` jobs at a time.
    pub async fn process(&self, claimed: Vec<Job>) {
        let context = self.context(&claimed).await;
        let context = &context;
        futures::stream::iter(claimed)
            .for_each_concurrent(self.settings.concurrency, |job| async move {
                let settled = match self.handle(&job, context).await {
                    Ok(settled) => settled,
                    Err(error) => {
                        tracing::warn!(job = %job.id, %error, "push job failed; retrying");
                        self.retry(&job, None, error.to_string())
                    }
                };
                if let Err(error) = jobs::settle(self.db(), &job, &settled).await {
                    // The lease runs out and another claim takes it again.
                    tracing::warn!(job = %job.id, %error, "recording a push job failed");
                }
            })
            .await;
    }

    async fn context(&self, claimed: &[Job]) -> BatchContext {
        let alerts: Vec<&Job> = claimed
            .iter()
            .filter(|j| j.kind == JobKind::Alert)
            .collect();
        if alerts.is_empty() {
            return BatchContext::default();
        }
        let users: Vec<Uuid> = alerts
            .iter()
            .map(|j| j.user_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let delivery = match self.upstream.delivery(&users).await {
            Ok(delivery) => delivery,
            Err(status) => {
                // Without presence every recipient counts as offline: a push too many beats
                // a push lost.
                tracing::warn!(%status, "no delivery state (presence); pushing as if offline");
                HashMap::new()
            }
        };
        let messages: Vec<Uuid> = alerts
            .iter()
            .filter_map(|j| j.message_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let (previews, previews_failed) = match self.upstream.previews(&messages).await {
            Ok(previews) => (previews, false),
            Err(status) => {
                tracing::warn!(%status, "no previews (message service)");
                (HashMap::new(), true)
            }
        };
        BatchContext {
            delivery,
            previews,
            previews_failed,
        }
    }

    fn retry(&self, job: &Job, after: Option<Duration>, error: String) -> Settled {
        let due = Utc::now() + backoff(job.attempts, after);
        if due > job.expires_at {
            metrics::counter!("echo_push_expired_total").increment(1);
            return Settled::Skipped(format!("expired: {error}"));
        }
        Settled::Later {
            due,
            phase: Phase::Send,
            failed: true,
            error: Some(error),
        }
    }

    async fn token(&self, id: Uuid) -> Result<Option<TokenRow>, sqlx::Error> {
        const SQL: &str = "SELECT platform, app_id, token, sandbox, updated_at_ms, \
             last_badge_sent FROM push_tokens WHERE push_token_id = $1";
        Ok(with_db!(self.db(), read, |c| {
            sqlx::query_as(SQL).bind(id).fetch_optional(c).await?
        }))
    }

    async fn handle(&self, job: &Job, context: &BatchContext) -> Result<Settled, DispatchError> {
        let now = Utc::now();
        if now > job.expires_at {
            metrics::counter!("echo_push_expired_total").increment(1);
            return Ok(Settled::Skipped("expired".into()));
        }
        let Some(token) = self.token(job.token).await? else {
            return Ok(Settled::Skipped("token gone".into()));
        };
        let Some(platform) = Platform::from_code(token.platform) else {
            return Ok(Settled::Skipped("unknown platform".into()));
        };
        let Some(provider) = self.providers.get(&platform) else {
            return Ok(Settled::Skipped("platform not configured".into()));
        };
        let badge = self.store.badge(job.user_id, now).await?.badge;
        let badge = u32::try_from(badge.max(0)).unwrap_or(u32::MAX);
        let delivery = context.delivery.get(&job.user_id);
        let push = match job.kind {
            JobKind::Alert => {
                let read = self.read(job).await?;
                let step = match job.phase {
                    Phase::New => {
                        decide::on_new(delivery.is_some_and(|d| !d.online_devices.is_empty()), read)
                    }
                    Phase::Recheck => decide::on_recheck(read),
                    Phase::Send => Step::Send,
                };
                match step {
                    Step::Read => return Ok(Settled::Skipped("read".into())),
                    Step::Recheck => {
                        return Ok(Settled::Later {
                            due: job.created_at + self.settings.recheck_delay,
                            phase: Phase::Recheck,
                            failed: false,
                            error: None,
                        });
                    }
                    Step::Send => {}
                }
                match self.alert(job, context, badge, now).await? {
                    Some(push) => push,
                    None => return Ok(Settled::Skipped("message gone".into())),
                }
            }
            JobKind::Badge => {
                // A token never sent a badge shows none: 0 needs no push.
                if token.last_badge_sent.unwrap_or(0) == i32::try_from(badge).unwrap_or(i32::MAX) {
                    return Ok(Settled::Skipped("badge unchanged".into()));
                }
                self.background(job, PushKind::BadgeOnly, badge)
            }
            JobKind::Dismiss => self.background(job, PushKind::Dismiss, badge),
        };
        let target = Target {
            token: token.token,
            app_id: Some(token.app_id).filter(|a| !a.is_empty()),
            sandbox: token.sandbox,
            updated_at: from_millis(token.updated_at_ms),
        };
        let outcome = provider.send(&push, &target).await;
        let label = match &outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Prune { .. } => "pruned",
            Outcome::Drop { .. } => "dropped",
            Outcome::CredentialError { .. } => "credential_error",
        };
        metrics::counter!("echo_push_requests_total", "platform" => platform_name(platform),
            "outcome" => label)
        .increment(1);
        Ok(match outcome {
            Outcome::Delivered => {
                self.delivered(job.token, badge, now).await?;
                Settled::Sent(now)
            }
            Outcome::Retry { after } => self.retry(job, after, "provider asked to retry".into()),
            Outcome::Prune { reason } => {
                tracing::info!(job = %job.id, %reason, "push token pruned");
                self.prune(job.token).await?;
                Settled::Skipped(format!("token pruned: {reason}"))
            }
            Outcome::Drop { reason } => {
                tracing::warn!(job = %job.id, %reason, "push dropped");
                Settled::Skipped(format!("dropped: {reason}"))
            }
            Outcome::CredentialError { reason } => {
                // Our credentials, not the token: alert, back off, never prune.
                tracing::error!(platform = platform_name(platform), %reason,
                    "push provider refused our credentials");
                self.retry(job, None, format!("credentials: {reason}"))
            }
        })
    }

    /// The message was read (watermark at or past it) by now.
    async fn read(&self, job: &Job) -> Result<bool, sqlx::Error> {
        const SQL: &str = "SELECT count(*) FROM notify_counts WHERE user_id = $1 \
             AND conversation_id = $2 AND last_read_seq >= $3";
        let (Some(conversation), Some(seq)) = (job.conversation_id, job.seq) else {
            return Ok(false);
        };
        let read: i64 = with_db!(self.db(), read, |c| {
            sqlx::query_scalar(SQL)
                .bind(job.user_id)
                .bind(conversation)
                .bind(seq)
                .fetch_one(c)
                .await?
        });
        Ok(read > 0)
    }

    /// The alert push of `job`, or None when its message or inbox entry is gone.
    async fn alert(
        &self,
        job: &Job,
        context: &BatchContext,
        badge: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<Push>, DispatchError> {
        const ENTRY: &str = "SELECT e.kind, e.sender_display_name, e.conversation_title, \
             e.preview, COALESCE(c.kind, 0), COALESCE(n.unread, 0) \
             FROM inbox_entries e \
             LEFT JOIN notify_conversations c ON c.conversation_id = e.conversation_id \
             LEFT JOIN notify_counts n ON n.user_id = e.user_id \
               AND n.conversation_id = e.conversation_id \
             WHERE e.user_id = $1 AND e.message_id = $2";
        let Some(message) = job.message_id else {
            return Ok(None);
        };
        let entry: Option<(i16, String, String, String, i32, i32)> =
            with_db!(self.db(), read, |c| {
                sqlx::query_as(ENTRY)
                    .bind(job.user_id)
                    .bind(message)
                    .fetch_optional(c)
                    .await?
            });
        let Some((kind, sender_name, title, stored_preview, conversation_kind, unread)) = entry
        else {
            return Ok(None);
        };
        let text = match context.previews.get(&message) {
            Some(Preview::Gone) => return Ok(None),
            Some(Preview::Available { text, .. }) => text.clone(),
            None if context.previews_failed => {
                return Err(DispatchError::Upstream(
                    "message service unavailable".into(),
                ));
            }
            None => stored_preview,
        };
        let settings = self.store.settings(job.user_id).await?;
        let dnd = context.delivery.get(&job.user_id).is_some_and(|d| d.dnd);
        let (in_conversation, _) = jobs::recent_alerts(
            self.db(),
            job.user_id,
            job.conversation_id,
            now - STORM_WINDOW,
        )
        .await?;
        let (_, last_minute) = jobs::recent_alerts(
            self.db(),
            job.user_id,
            None,
            now - chrono::Duration::minutes(1),
        )
        .await?;
        let storm = in_conversation > 0;
        let silent =
            dnd || in_quiet_hours(&settings, now) || storm || last_minute >= STORM_PER_MINUTE;
        let kind =
            crate::inbox::EntryKind::from_code(kind).unwrap_or(crate::inbox::EntryKind::Message);
        let words = alert_text(&About {
            conversation_kind: i16::try_from(conversation_kind).unwrap_or(0),
            conversation_title: &title,
            sender_name: &sender_name,
            text: settings.show_previews.then_some(text.as_str()),
            kind,
            summary_of: storm.then_some(i64::from(unread)),
        });
        let mut data = std::collections::BTreeMap::new();
        data.insert("kind".to_owned(), kind_name(kind).to_owned());
        Ok(Some(Push {
            kind: PushKind::Alert,
            title: Some(words.title),
            body: words.body,
            badge,
            conversation_id: job.conversation_id,
            message_id: Some(message),
            seq: job.seq.and_then(|s| u64::try_from(s).ok()),
            silent,
            job_id: job.id,
            data,
        }))
    }

    fn background(&self, job: &Job, kind: PushKind, badge: u32) -> Push {
        Push {
            kind,
            title: None,
            body: None,
            badge,
            conversation_id: job.conversation_id,
            message_id: job.message_id,
            seq: job.seq.and_then(|s| u64::try_from(s).ok()),
            silent: true,
            job_id: job.id,
            data: std::collections::BTreeMap::new(),
        }
    }

    async fn delivered(
        &self,
        token: Uuid,
        badge: u32,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        const SQL: &str = "UPDATE push_tokens SET last_badge_sent = $1, last_delivered_at_ms = $2 \
             WHERE push_token_id = $3";
        with_db!(self.db(), write, |c| {
            sqlx::query(SQL)
                .bind(i32::try_from(badge).unwrap_or(i32::MAX))
                .bind(millis(now))
                .bind(token)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Deletes a dead token and its pending jobs.
    async fn prune(&self, token: Uuid) -> Result<(), sqlx::Error> {
        let mut tx = self
            .db()
            .begin()
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        jobs::cancel_pending(&mut tx, token).await?;
        const SQL: &str = "DELETE FROM push_tokens WHERE push_token_id = $1";
        echo_store::with_tx!(&mut tx, |c| {
            sqlx::query(SQL).bind(token).execute(c).await?;
        });
        tx.commit()
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        Ok(())
    }
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Fcm => "fcm",
        Platform::Apns => "apns",
        Platform::WebPush => "webpush",
        Platform::Webhook => "webhook",
    }
}

fn kind_name(kind: crate::inbox::EntryKind) -> &'static str {
    match kind {
        crate::inbox::EntryKind::Message => "message",
        crate::inbox::EntryKind::Mention => "mention",
        crate::inbox::EntryKind::Reply => "reply",
    }
}

/// A transient failure handling one job: a failed read or write, or an upstream that did
/// not answer (the job is retried until it expires).
#[derive(Debug, thiserror::Error)]
enum DispatchError {
    /// The database.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Notification's own store.
    #[error("{0}")]
    Store(#[from] crate::error::NotificationError),
    /// Another service.
    #[error("{0}")]
    Upstream(String),
}
