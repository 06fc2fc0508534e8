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
//!
//! One idea, kept whole: a job's way from claim to record. The parts that stand alone live
//! beside it: the batch's reads (`load`), the payloads (`compose`), the credential breaker
//! (`breaker`).
//! `handle` turns each provider `Outcome` into the `Settled` and `Effect` that `record` writes in
//! the batch's one transaction; split, a new outcome could be decided in one file and recorded
//! wrong (a token left unpruned, a badge not remembered) in another.

mod breaker;
mod compose;
pub mod load;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use echo_ids::{MessageId, UserId};
use echo_push::{Outcome, Push, PushKind, PushProvider, Target};
use echo_store::{Database, with_tx};
use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::NotificationError;
use crate::inbox::store as inbox_store;
use crate::jobs::{self, Job, JobKind, Phase, Settled};
use crate::pipeline::decide::{self, Step};
use crate::settings::in_quiet_hours;
use crate::store::{NotificationStore, from_millis, millis};
use crate::tokens::Platform;
use crate::upstream::{Delivery, Preview, Upstream};
use breaker::Breakers;
pub use breaker::MAX_CREDENTIAL_PAUSE;
use compose::{About, alert_text, backoff};
use load::Facts;

/// Within this long of an alert in the same conversation, the next is silent and summarises.
const STORM_WINDOW: chrono::Duration = chrono::Duration::seconds(10);
/// More alerts than this per user per minute go silent.
const STORM_PER_MINUTE: i64 = 30;
/// Finished jobs are kept this long (then pruned).
const KEEP_FINISHED: chrono::Duration = chrono::Duration::days(1);
/// Message rows are kept as long as the bus keeps events (a MessageDeleted can come that
/// late).
const KEEP_MESSAGES: chrono::Duration = chrono::Duration::days(7);
/// Claim loops per instance: while one loop's batch is out at the providers, another reads
/// and records its own, so the database's share of a batch hides behind the requests.
const LOOPS: usize = 2;
/// A batch whose reads failed is due again this soon (its jobs are released, not left leased).
const RELEASE_RETRY: chrono::Duration = chrono::Duration::seconds(1);
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
    /// How long a platform is paused after it refused our credentials (doubling while it
    /// keeps refusing, up to [`MAX_CREDENTIAL_PAUSE`]).
    pub credential_pause: Duration,
}

/// Sends the queued pushes.
pub struct Dispatcher {
    store: NotificationStore,
    upstream: Arc<dyn Upstream>,
    providers: HashMap<Platform, Arc<dyn PushProvider>>,
    settings: DispatchSettings,
    wake: Arc<Notify>,
    breakers: Breakers,
}

/// What one batch's alerts share: delivery states and previews, read once per batch.
#[derive(Default)]
struct BatchContext {
    delivery: HashMap<UserId, Delivery>,
    previews: HashMap<MessageId, Preview>,
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
            breakers: Breakers::default(),
        }
    }

    /// Drain due jobs until `shutdown`: [`LOOPS`] claim loops, and the housekeeping.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut loops = tokio::task::JoinSet::new();
        for _ in 0..LOOPS {
            loops.spawn(this.clone().drain(shutdown.clone()));
        }
        this.housekeeping(&shutdown).await;
        while loops.join_next().await.is_some() {}
    }

    /// Claims and handles batches until `shutdown`.
    async fn drain(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let lease_until = Utc::now() + self.settings.claim_lease;
            let claimed = match self.claim(lease_until).await {
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
                if claimed.len() == self.settings.batch {
                    // More may be due: another loop takes the next batch meanwhile.
                    self.wake.notify_one();
                }
                self.process(claimed, lease_until).await;
            }
        }
    }

    /// Prunes finished jobs and old receipts every minute, trims the inbox every 10 minutes.
    async fn housekeeping(&self, shutdown: &CancellationToken) {
        let mut last_trim = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(PRUNE_EVERY) => {}
            }
            let now = Utc::now();
            if let Err(error) =
                jobs::prune(self.db(), now - KEEP_FINISHED, now - KEEP_MESSAGES).await
            {
                tracing::warn!(%error, "pruning push jobs failed");
            }
            if let Err(error) = crate::receipts::prune(self.db(), now - KEEP_MESSAGES).await {
                tracing::warn!(%error, "pruning delivery receipts failed");
            }
            if last_trim.elapsed() >= TRIM_EVERY {
                last_trim = tokio::time::Instant::now();
                let before = now - chrono::Duration::days(inbox_store::KEEP_DAYS);
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

    async fn claim(&self, lease_until: DateTime<Utc>) -> Result<Vec<Job>, sqlx::Error> {
        jobs::claim(self.db(), Utc::now(), lease_until, self.settings.batch).await
    }

    /// Handles one claimed batch: reads what its jobs need (one statement per kind of fact),
    /// decides and sends each, `concurrency` requests at a time, and records every outcome in
    /// one transaction. The jobs are held until `lease_until`.
    pub async fn process(&self, claimed: Vec<Job>, lease_until: DateTime<Utc>) {
        let now = Utc::now();
        let damping = load::Damping {
            recent_since: now - STORM_WINDOW,
            minute_since: now - chrono::Duration::minutes(1),
            cap: STORM_PER_MINUTE,
        };
        // The other services' answers and our own rows, side by side.
        let (context, facts) = tokio::join!(
            self.context(&claimed),
            load::facts(&self.store, &claimed, now, &damping)
        );
        let facts = match facts {
            Ok(facts) => facts,
            Err(error) => {
                // Nothing was sent: the jobs are given back, due again shortly, instead of
                // waiting out their leases. If even that fails, the leases run out and
                // another claim takes them.
                tracing::warn!(%error, jobs = claimed.len(), "reading a push batch failed; releasing it");
                let due = Utc::now() + RELEASE_RETRY;
                if let Err(error) = jobs::release(self.db(), &claimed, lease_until, due).await {
                    tracing::warn!(%error, "releasing a push batch failed; its leases will run out");
                }
                return;
            }
        };
        let read_at = Utc::now();
        let jobs = claimed.len();
        let (context, facts) = (&context, &facts);
        let outcomes: Vec<Outcomes> = futures::stream::iter(claimed)
            .map(|job| async move {
                let (settled, effect) = match self.handle(&job, context, facts, now).await {
                    Ok(done) => done,
                    Err(error) => {
                        tracing::warn!(job = %job.id, %error, "push job failed; retrying");
                        (self.retry(&job, None, error), Effect::None)
                    }
                };
                // Where a push's time goes (`RUST_LOG=echo_notification=debug`): written →
                // claimed, and claimed → settled (reads, upstream calls, the request).
                tracing::debug!(job = %job.id, kind = ?job.kind, phase = ?job.phase,
                    waited_ms = (now - job.created_at).num_milliseconds(),
                    handled_ms = (Utc::now() - now).num_milliseconds(), ?settled, "push job");
                (job, settled, effect)
            })
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        let sent_at = Utc::now();
        let recorded = record(self.db(), &outcomes).await;
        tracing::debug!(
            jobs,
            read_ms = (read_at - now).num_milliseconds(),
            send_ms = (sent_at - read_at).num_milliseconds(),
            record_ms = (Utc::now() - sent_at).num_milliseconds(),
            "push batch"
        );
        if let Err(error) = recorded {
            // One bad row must not hold the others' outcomes back: each on its own.
            tracing::warn!(%error, "recording a push batch failed; one job at a time");
            for outcome in &outcomes {
                if let Err(error) = record(self.db(), std::slice::from_ref(outcome)).await {
                    // The lease runs out and another claim takes it again.
                    tracing::warn!(job = %outcome.0.id, %error, "recording a push job failed");
                }
            }
        }
    }

    async fn context(&self, claimed: &[Job]) -> BatchContext {
        let alerts: Vec<&Job> = claimed
            .iter()
            .filter(|j| j.kind == JobKind::Alert)
            .collect();
        if alerts.is_empty() {
            return BatchContext::default();
        }
        let users: Vec<UserId> = alerts
            .iter()
            .map(|j| j.user_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let messages: Vec<MessageId> = alerts
            .iter()
            .filter_map(|j| j.message_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let (delivery, previews) = tokio::join!(
            self.upstream.delivery(&users),
            self.upstream.previews(&messages)
        );
        let delivery = match delivery {
            Ok(delivery) => delivery,
            Err(status) => {
                // Without presence every recipient counts as offline: a push too many beats
                // a push lost.
                tracing::warn!(%status, "no delivery state (presence); pushing as if offline");
                HashMap::new()
            }
        };
        let (previews, previews_failed) = match previews {
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

    /// Decides `job` and sends its push. Err: a transient failure (an upstream that did not
    /// answer), retried until the job expires.
    async fn handle(
        &self,
        job: &Job,
        context: &BatchContext,
        facts: &Facts,
        now: DateTime<Utc>,
    ) -> Result<(Settled, Effect), String> {
        let skipped = |why: &str| Ok((Settled::Skipped(why.into()), Effect::None));
        if now > job.expires_at {
            metrics::counter!("echo_push_expired_total").increment(1);
            return skipped("expired");
        }
        let Some(token) = facts.tokens.get(&job.token) else {
            return skipped("token gone");
        };
        let Some(platform) = Platform::from_code(token.platform) else {
            return skipped("unknown platform");
        };
        let Some(provider) = self.providers.get(&platform) else {
            return skipped("platform not configured");
        };
        let badge = facts.badge(job.user_id);
        let delivery = context.delivery.get(&job.user_id);
        let push = match job.kind {
            JobKind::Alert => {
                let read = facts.read(job);
                let online = delivery.map(|d| &d.online_devices);
                let step = match job.phase {
                    Phase::New => decide::on_new(online.is_some_and(|o| !o.is_empty()), read),
                    Phase::Recheck => {
                        let mut has_it = facts.devices_with(job);
                        decide::on_recheck(
                            read,
                            has_it.any(|d| online.is_some_and(|o| o.contains(&d))),
                        )
                    }
                    Phase::Send => Step::Send,
                };
                let device_has_it = facts.devices_with(job).any(|d| d == token.device_id);
                match decide::for_token(step, device_has_it) {
                    Step::Read => return skipped("read"),
                    Step::Delivered => return skipped("delivered to the device"),
                    Step::Recheck => {
                        let later = Settled::Later {
                            due: job.created_at + self.settings.recheck_delay,
                            phase: Phase::Recheck,
                            failed: false,
                            error: None,
                        };
                        return Ok((later, Effect::None));
                    }
                    Step::Send => {}
                }
                match alert(job, context, facts, badge, now)? {
                    Some(push) => push,
                    None => return skipped("message gone"),
                }
            }
            JobKind::Badge => {
                // A token never sent a badge shows none: 0 needs no push.
                if token.last_badge_sent.unwrap_or(0) == i32::try_from(badge).unwrap_or(i32::MAX) {
                    return skipped("badge unchanged");
                }
                background(job, PushKind::BadgeOnly, badge)
            }
            JobKind::Dismiss => background(job, PushKind::Dismiss, badge),
        };
        let target = Target {
            token: token.token.clone(),
            app_id: Some(token.app_id.clone()).filter(|a| !a.is_empty()),
            sandbox: token.sandbox,
            updated_at: from_millis(token.updated_at_ms),
        };
        if let Some(until) = self.breakers.paused(platform) {
            let wait = until.saturating_duration_since(std::time::Instant::now());
            let later = Settled::Later {
                due: now + wait,
                phase: Phase::Send,
                failed: false,
                error: Some("paused: the provider refused our credentials".into()),
            };
            return Ok((later, Effect::None));
        }
        let outcome = provider.send(&push, &target).await;
        if !matches!(
            outcome,
            Outcome::CredentialError { .. } | Outcome::Retry { .. }
        ) {
            self.breakers.reset(platform);
        }
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
            Outcome::Delivered => (
                Settled::Sent(now),
                Effect::Delivered {
                    token: job.token,
                    badge,
                    at: now,
                },
            ),
            Outcome::Retry { after } => (
                self.retry(job, after, "provider asked to retry".into()),
                Effect::None,
            ),
            Outcome::Prune { reason } => {
                tracing::info!(job = %job.id, %reason, "push token pruned");
                (
                    Settled::Skipped(format!("token pruned: {reason}")),
                    Effect::Prune(job.token),
                )
            }
            Outcome::Drop { reason } => {
                tracing::warn!(job = %job.id, %reason, "push dropped");
                (Settled::Skipped(format!("dropped: {reason}")), Effect::None)
            }
            Outcome::CredentialError { reason } => {
                // Our credentials, not the token: alert, pause the platform, never prune.
                let pause = self.breakers.trip(platform, self.settings.credential_pause);
                metrics::counter!("echo_push_credential_pauses_total",
                    "platform" => platform_name(platform))
                .increment(1);
                tracing::error!(platform = platform_name(platform), %reason, ?pause,
                    "push provider refused our credentials; pausing its pushes");
                (
                    self.retry(job, Some(pause), format!("credentials: {reason}")),
                    Effect::None,
                )
            }
        })
    }
}

/// A job, what became of it, and what that writes besides the job.
type Outcomes = (Job, Settled, Effect);

/// What recording an outcome writes besides the job's own row.
enum Effect {
    /// Nothing.
    None,
    /// The token showed this badge (a later badge job with the same number sends nothing).
    Delivered {
        token: Uuid,
        badge: u32,
        at: DateTime<Utc>,
    },
    /// The provider said the token is dead: delete it and its pending jobs.
    Prune(Uuid),
}

/// Records `outcomes` in one transaction (on SQLite one turn of the single writer): the jobs'
/// settles grouped (see [`jobs::settle`]), the tokens that showed one badge at one time in one
/// UPDATE, then the prunes.
async fn record(db: &Database, outcomes: &[Outcomes]) -> Result<(), NotificationError> {
    const DELIVERED: &str = "UPDATE push_tokens SET last_badge_sent = $1, \
         last_delivered_at_ms = $2 WHERE push_token_id IN";
    const PRUNE: &str = "DELETE FROM push_tokens WHERE push_token_id = $1";
    let mut delivered: BTreeMap<(i32, i64), Vec<Uuid>> = BTreeMap::new();
    for (_, _, effect) in outcomes {
        if let Effect::Delivered { token, badge, at } = effect {
            let badge = i32::try_from(*badge).unwrap_or(i32::MAX);
            delivered
                .entry((badge, millis(*at)))
                .or_default()
                .push(*token);
        }
    }
    let mut tx = db.begin().await?;
    let settled: Vec<(&Job, &Settled)> = outcomes.iter().map(|(job, s, _)| (job, s)).collect();
    jobs::settle(&mut tx, &settled).await?;
    for ((badge, at), tokens) in &delivered {
        let sql = format!(
            "{DELIVERED} ({})",
            echo_store::placeholders(3, tokens.len())
        );
        with_tx!(&mut tx, sql, |c| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(*badge)
                .bind(*at);
            for token in tokens {
                query = query.bind(*token);
            }
            query.execute(c).await?;
        });
    }
    for (_, _, effect) in outcomes {
        if let Effect::Prune(token) = effect {
            jobs::cancel_pending(&mut tx, *token).await?;
            with_tx!(&mut tx, |c| {
                sqlx::query(PRUNE).bind(*token).execute(c).await?;
            });
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The alert push of `job`, or None when its message or inbox entry is gone.
fn alert(
    job: &Job,
    context: &BatchContext,
    facts: &Facts,
    badge: u32,
    now: DateTime<Utc>,
) -> Result<Option<Push>, String> {
    let Some(message) = job.message_id else {
        return Ok(None);
    };
    let Some(entry) = facts.entries.get(&(job.user_id, message)) else {
        return Ok(None);
    };
    let text = match context.previews.get(&message) {
        Some(Preview::Gone) => return Ok(None),
        Some(Preview::Available { text, .. }) => text.as_str(),
        None if context.previews_failed => return Err("message service unavailable".into()),
        None => entry.preview.as_str(),
    };
    let settings = facts
        .settings
        .get(&job.user_id)
        .copied()
        .unwrap_or_default();
    let dnd = context.delivery.get(&job.user_id).is_some_and(|d| d.dnd);
    let (storm, last_minute) = facts.storm(job.user_id, job.conversation_id);
    let silent = dnd || in_quiet_hours(&settings, now) || storm || last_minute >= STORM_PER_MINUTE;
    let kind =
        crate::inbox::EntryKind::from_code(entry.kind).unwrap_or(crate::inbox::EntryKind::Message);
    let words = alert_text(&About {
        conversation_kind: i16::try_from(entry.conversation_kind).unwrap_or(0),
        conversation_title: &entry.conversation_title,
        sender_name: &entry.sender_display_name,
        text: settings.show_previews.then_some(text),
        kind,
        summary_of: storm.then_some(i64::from(entry.unread)),
    });
    let mut data = std::collections::BTreeMap::new();
    data.insert("kind".to_owned(), kind_name(kind).to_owned());
    Ok(Some(Push {
        kind: PushKind::Alert,
        title: Some(words.title),
        body: words.body,
        badge,
        conversation_id: job.conversation_id.map(Uuid::from),
        message_id: Some(message.into()),
        seq: job.seq.and_then(|s| u64::try_from(s).ok()),
        silent,
        job_id: job.id,
        data,
    }))
}

fn background(job: &Job, kind: PushKind, badge: u32) -> Push {
    Push {
        kind,
        title: None,
        body: None,
        badge,
        conversation_id: job.conversation_id.map(Uuid::from),
        message_id: job.message_id.map(Uuid::from),
        seq: job.seq.and_then(|s| u64::try_from(s).ok()),
        silent: true,
        job_id: job.id,
        data: std::collections::BTreeMap::new(),
    }
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Fcm => "fcm",
        Platform::Apns => "apns",
        Platform::WebPush => "webpush",
        Platform::Webhook => "webhook",
        Platform::UnifiedPush => "unifiedpush",
    }
}

fn kind_name(kind: crate::inbox::EntryKind) -> &'static str {
    match kind {
        crate::inbox::EntryKind::Message => "message",
        crate::inbox::EntryKind::Mention => "mention",
        crate::inbox::EntryKind::Reply => "reply",
    }
}
