//! The outbox relay: publishes unpublished rows to JetStream, marking them only after PubAck.
//!
//! One relay is active per outbox at a time: on PostgreSQL a session-level advisory lock held
//! on a dedicated connection is the lease (it vanishes with the connection, so a crashed
//! holder frees it); a SQLite outbox belongs to one process.
//!
//! Rows are published in id order as a window: every publish of a batch is sent, then the
//! PubAcks are awaited in order, so a batch costs about one round trip, not one per row. A
//! failure can still never let a later row overtake an earlier one in the stream: each row
//! after the first of a window carries `Nats-Expected-Last-Msg-Id` naming the row before it,
//! so JetStream refuses it unless that row is the stream's last. The first row of a window
//! carries no expectation: every row before it was acknowledged, so it either goes last or
//! is a duplicate. Progress is marked only up to the first row not acknowledged; the rows
//! after it are published again in the next window, and a row stored twice is dropped by
//! JetStream's de-dup window (`Nats-Msg-Id`).

use std::time::Duration;

use async_nats::header::NATS_EXPECTED_LAST_MESSAGE_ID;
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

    /// Publish up to one batch as one window (see the module docs); returns how many rows were
    /// published, or the first failure once the rows acknowledged before it are marked.
    async fn publish_batch(&self) -> Result<usize, BusError> {
        let rows = self.outbox.unpublished(BATCH).await?;
        let mut pending = Vec::with_capacity(rows.len());
        let mut failure = None;
        let mut previous: Option<String> = None;
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
            let sent = async {
                let mut headers = NatsBus::headers(event);
                if let Some(traceparent) = echo_telemetry::current_traceparent() {
                    headers.insert(HEADER_TRACEPARENT, traceparent.as_str());
                }
                if let Some(previous) = &previous {
                    headers.insert(NATS_EXPECTED_LAST_MESSAGE_ID, previous.as_str());
                }
                self.js
                    .publish_with_headers(subject, headers, event.payload.clone())
                    .await
            };
            match sent.instrument(span).await {
                Ok(ack) => pending.push((*id, ack)),
                Err(error) => {
                    failure = Some(BusError::Unavailable(error.to_string()));
                    break;
                }
            }
            previous = Some(event.id.to_string());
        }
        let mut acked = Vec::with_capacity(pending.len());
        for (id, ack) in pending {
            // Stop at the first row not acknowledged: the acknowledgements of later rows (a
            // refused expectation, or a row stored after a lost ack) do not count, and the
            // futures dropped here are settled by the client.
            if let Err(error) = ack.await {
                failure = Some(BusError::Unavailable(error.to_string()));
                break;
            }
            acked.push(id);
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
