//! The outbox relay: publishes unpublished rows to JetStream, marking them only after PubAck.
//!
//! One relay is active per outbox at a time: on PostgreSQL a session-level advisory lock held
//! on a dedicated connection is the lease (it vanishes with the connection, so a crashed
//! holder frees it); a SQLite outbox belongs to one process. Rows are published one at a time
//! in id order, each awaited, so a failure can never let a later row overtake an earlier one
//! in the stream; a retried row is dropped by JetStream's de-dup window (`Nats-Msg-Id`).

use std::time::Duration;

use async_nats::jetstream;
use echo_store::Database;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{HEADER_TRACEPARENT, NatsBus};
use crate::{BusError, NatsSettings, Outbox};

/// Rows read per round.
const BATCH: i64 = 256;
/// Fallback poll when no commit signal arrives (the LISTEN connection is down).
const POLL: Duration = Duration::from_secs(1);
/// Longest pause between attempts while NATS is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(super) struct Relay {
    outbox: Outbox,
    js: jetstream::Context,
    settings: NatsSettings,
}

/// Proof that this process may relay the outbox (dropping it releases the lease).
enum Lease {
    Postgres(PgConnection),
    Local,
}

impl Relay {
    pub(super) fn new(outbox: Outbox, js: jetstream::Context, settings: NatsSettings) -> Self {
        Self {
            outbox,
            js,
            settings,
        }
    }

    pub(super) async fn run(self, shutdown: CancellationToken) {
        let service = self.outbox.service();
        while !shutdown.is_cancelled() {
            let lease = tokio::select! {
                () = shutdown.cancelled() => return,
                lease = self.acquire_lease() => lease,
            };
            let mut lease = match lease {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    pause(&shutdown, POLL).await; // another instance relays; stand by
                    continue;
                }
                Err(error) => {
                    tracing::warn!(service, %error, "outbox lease unavailable");
                    pause(&shutdown, MAX_BACKOFF).await;
                    continue;
                }
            };
            tracing::info!(service, "outbox relay active");
            let stopped = tokio::select! {
                () = shutdown.cancelled() => return,
                stopped = self.relay_while_leased(&mut lease) => stopped,
            };
            if let Err(error) = stopped {
                tracing::warn!(service, %error, "outbox relay lost its lease; re-acquiring");
            }
        }
    }

    async fn acquire_lease(&self) -> Result<Option<Lease>, BusError> {
        let Database::Postgres(db) = self.outbox.database() else {
            return Ok(Some(Lease::Local));
        };
        let mut conn = db.pool.acquire().await?.detach();
        let key = format!("{}.outbox_relay", db.schema);
        let granted: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(&key)
            .fetch_one(&mut conn)
            .await?;
        Ok(granted.then_some(Lease::Postgres(conn)))
    }

    /// Relay until the lease is lost (an error) or forever.
    async fn relay_while_leased(&self, lease: &mut Lease) -> Result<(), BusError> {
        let mut commits = self.outbox.watch_commits();
        let mut backoff = Duration::from_millis(50);
        let domain = self.outbox.service();
        let mut stream_ready = false;
        loop {
            if let Lease::Postgres(conn) = lease {
                conn.ping().await?; // a dead lease connection means another relay may start
            }
            if !stream_ready {
                match NatsBus::ensure_stream(&self.js, &self.settings, domain).await {
                    Ok(_) => stream_ready = true,
                    Err(error) => {
                        tracing::warn!(service = domain, %error, "stream not ready; waiting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let published = self.publish_batch().await;
            self.report_lag().await;
            match published {
                Ok(0) => {
                    backoff = Duration::from_millis(50);
                    // Woken by a commit in any process; the poll covers a LISTEN outage.
                    let _ = tokio::time::timeout(POLL, commits.changed()).await;
                }
                Ok(_) => backoff = Duration::from_millis(50),
                Err(error) => {
                    tracing::warn!(service = domain, %error, ?backoff, "publishing failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Publish up to one batch, in order; returns how many rows were published.
    async fn publish_batch(&self) -> Result<usize, BusError> {
        let rows = self.outbox.unpublished(BATCH).await?;
        let mut acked = Vec::with_capacity(rows.len());
        let mut failure = None;
        for (id, event) in &rows {
            let subject = NatsBus::wire_subject(&self.settings, &event.subject);
            // The publish continues the trace of the request that appended the event, and the
            // message carries the publish span's context, so consumers hang below it.
            let span = tracing::info_span!(
                "outbox.publish",
                subject = %event.subject,
                event_type = %event.event_type,
                event_id = %event.id,
            );
            if let Some(parent) = &event.trace_parent {
                echo_telemetry::set_parent(&span, parent);
            }
            let published = async {
                let mut headers = NatsBus::headers(event);
                if let Some(traceparent) = echo_telemetry::current_traceparent() {
                    headers.insert(HEADER_TRACEPARENT, traceparent.as_str());
                }
                self.js
                    .publish_with_headers(subject, headers, event.payload.clone())
                    .await?
                    .await
            };
            match published.instrument(span).await {
                Ok(_ack) => acked.push(*id),
                Err(error) => {
                    failure = Some(BusError::Unavailable(error.to_string()));
                    break;
                }
            }
        }
        self.outbox.mark_published(&acked).await?;
        metrics::counter!("echo_events_published_total", "service" => self.outbox.service())
            .increment(acked.len() as u64);
        match failure {
            Some(error) => Err(error),
            None => Ok(acked.len()),
        }
    }

    async fn report_lag(&self) {
        if let Ok(lag) = self.outbox.unpublished_count().await {
            metrics::gauge!("echo_outbox_lag", "service" => self.outbox.service()).set(lag as f64);
        }
    }
}

async fn pause(shutdown: &CancellationToken, delay: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}
