//! Durable, idempotent consumers (DESIGN §8), the same on both buses.
//!
//! Each delivery is applied in ONE transaction of the consumer's own database: the event id is
//! recorded in `bus_processed_events` (a repeat finds it and skips the effect), the handler
//! writes its effect, and on the embedded bus the consumer's position moves too. Only after the
//! commit is the delivery acked, so a crash between commit and ack redelivers an event whose
//! effect is already there, and the record makes the repeat a no-op.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use echo_store::{Database, Tx};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{BusError, ConsumerSpec, Delivery, Event, EventBus, Position};

/// What a handler's failure looks like (logged and stored with a dead letter, never sent).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A consumer's effect.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Apply `event` inside `tx` (the consumer's database). An error rolls the effect back and
    /// the event is retried with backoff, then parked.
    async fn handle(&self, event: &Event, tx: &mut Tx) -> Result<(), HandlerError>;

    /// Called once `event`'s effect has committed (not for a repeat that changed nothing):
    /// for signals that must not go out before the data they announce is readable, such as
    /// presence's "who may see whom changed" hint. Best effort; nothing is retried.
    async fn committed(&self, _event: &Event) {}
}

/// The outcome of applying one delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The effect committed now.
    Done,
    /// The event id was already recorded: the effect exists from an earlier delivery.
    AlreadyProcessed,
    /// The handler failed; nothing was written.
    Failed(String),
}

/// Apply one delivery in one transaction (see the module docs). Does not ack.
pub async fn apply(
    db: &Database,
    spec: &ConsumerSpec,
    handler: &dyn EventHandler,
    delivery: &Delivery,
) -> Result<Applied, BusError> {
    let mut tx = db.begin().await?;
    let fresh = record_processed(&mut tx, &spec.name, delivery.event.id).await?;
    let applied = if fresh {
        match handler.handle(&delivery.event, &mut tx).await {
            Ok(()) => Applied::Done,
            Err(error) => {
                tx.rollback().await?;
                return Ok(Applied::Failed(error.to_string()));
            }
        }
    } else {
        Applied::AlreadyProcessed
    };
    if let Some(position) = delivery.position {
        save_position(&mut tx, &spec.name, position).await?;
    }
    tx.commit().await?;
    Ok(applied)
}

/// Consume until `shutdown`: apply, then ack; retry failures with backoff; park poison events
/// after `spec.max_deliver` deliveries. Broker outages resubscribe after a pause.
pub async fn run(
    bus: Arc<dyn EventBus>,
    db: Database,
    spec: ConsumerSpec,
    handler: Arc<dyn EventHandler>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let mut subscription = match bus.subscribe(&spec, &db).await {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::warn!(consumer = %spec.name, %error, "subscribe failed; retrying");
                pause(&shutdown, Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let delivery = tokio::select! {
                () = shutdown.cancelled() => return,
                next = subscription.next() => next,
            };
            let delivery = match delivery {
                Ok(delivery) => delivery,
                Err(error) => {
                    tracing::warn!(consumer = %spec.name, %error, "subscription broke; resubscribing");
                    pause(&shutdown, Duration::from_secs(1)).await;
                    break;
                }
            };
            let settled = settle(
                &db,
                &spec,
                handler.as_ref(),
                &mut *subscription,
                delivery,
                &shutdown,
            )
            .await;
            if let Err(error) = settled {
                tracing::warn!(consumer = %spec.name, %error, "settling a delivery failed");
                pause(&shutdown, Duration::from_millis(200)).await;
                break;
            }
        }
    }
}

/// Settle one delivery inside an `event.consume` span that continues the trace of the request
/// that caused the event (its `traceparent`), so a trace runs from the edge through the
/// producing service and the bus to every consumer.
async fn settle(
    db: &Database,
    spec: &ConsumerSpec,
    handler: &dyn EventHandler,
    subscription: &mut dyn crate::Subscription,
    delivery: Delivery,
    shutdown: &CancellationToken,
) -> Result<(), BusError> {
    let span = tracing::info_span!(
        "event.consume",
        consumer = %spec.name,
        event_type = %delivery.event.event_type,
        event_id = %delivery.event.id,
        attempt = delivery.attempt,
    );
    if let Some(parent) = &delivery.event.trace_parent {
        echo_telemetry::set_parent(&span, parent);
    }
    settle_traced(db, spec, handler, subscription, delivery, shutdown)
        .instrument(span)
        .await
}

async fn settle_traced(
    db: &Database,
    spec: &ConsumerSpec,
    handler: &dyn EventHandler,
    subscription: &mut dyn crate::Subscription,
    delivery: Delivery,
    shutdown: &CancellationToken,
) -> Result<(), BusError> {
    let event_id = delivery.event.id;
    let applied = match apply(db, spec, handler, &delivery).await {
        Ok(applied) => applied,
        // The consumer's own database failed: not the event's fault, so it is retried with
        // backoff and never parked for it (parking would drop it for this consumer).
        Err(error) => {
            let delay = spec.backoff_after(delivery.attempt);
            tracing::warn!(consumer = %spec.name, %event_id, attempt = delivery.attempt, %error,
                ?delay, "consumer database failed; will retry");
            return subscription.retry(delivery, delay).await;
        }
    };
    if applied == Applied::Done {
        handler.committed(&delivery.event).await;
    }
    match applied {
        Applied::Done | Applied::AlreadyProcessed => {
            metrics::counter!("echo_events_consumed_total", "consumer" => spec.name.clone())
                .increment(1);
            // An ack the broker does not confirm is sent again for a while (NATS); shutdown
            // does not wait for it: the event is recorded as processed, so its redelivery to
            // the next run is dropped as a duplicate.
            tokio::select! {
                () = shutdown.cancelled() => Ok(()),
                acked = subscription.ack(delivery) => acked,
            }
        }
        Applied::Failed(error) if delivery.attempt >= spec.max_deliver => {
            tracing::error!(consumer = %spec.name, %event_id, attempts = delivery.attempt, %error,
                "event parked in the dead-letter store");
            metrics::counter!("echo_events_dead_lettered_total", "consumer" => spec.name.clone())
                .increment(1);
            subscription.dead_letter(delivery, &error).await
        }
        Applied::Failed(error) => {
            let delay = spec.backoff_after(delivery.attempt);
            tracing::warn!(consumer = %spec.name, %event_id, attempt = delivery.attempt, %error,
                ?delay, "event failed; will retry");
            subscription.retry(delivery, delay).await
        }
    }
}

async fn pause(shutdown: &CancellationToken, delay: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

/// Record `event_id` for `consumer`; false when it was already there.
async fn record_processed(tx: &mut Tx, consumer: &str, event_id: Uuid) -> Result<bool, BusError> {
    let sql = "INSERT INTO bus_processed_events (consumer, event_id) VALUES ($1, $2) \
               ON CONFLICT DO NOTHING";
    let inserted = match tx {
        Tx::Postgres(tx) => {
            sqlx::query(sql)
                .bind(consumer)
                .bind(event_id)
                .execute(&mut **tx)
                .await?
        }
        .rows_affected(),
        Tx::Sqlite(tx) => {
            sqlx::query(sql)
                .bind(consumer)
                .bind(event_id.to_string())
                .execute(&mut **tx)
                .await?
        }
        .rows_affected(),
    };
    Ok(inserted == 1)
}

pub(crate) async fn save_position(
    tx: &mut Tx,
    consumer: &str,
    position: Position,
) -> Result<(), BusError> {
    let sql = "INSERT INTO bus_consumer_offsets (consumer, position_tx, position_id) \
               VALUES ($1, $2, $3) ON CONFLICT (consumer) DO UPDATE \
               SET position_tx = excluded.position_tx, position_id = excluded.position_id";
    match tx {
        Tx::Postgres(tx) => {
            let query = sqlx::query(sql)
                .bind(consumer)
                .bind(position.tx)
                .bind(position.id);
            query.execute(&mut **tx).await?;
        }
        Tx::Sqlite(tx) => {
            let query = sqlx::query(sql)
                .bind(consumer)
                .bind(position.tx)
                .bind(position.id);
            query.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

pub(crate) async fn load_position(db: &Database, consumer: &str) -> Result<Position, BusError> {
    let sql = "SELECT position_tx, position_id FROM bus_consumer_offsets WHERE consumer = $1";
    let row: Option<(i64, i64)> = match db {
        Database::Postgres(db) => {
            sqlx::query_as(sql)
                .bind(consumer)
                .fetch_optional(&db.pool)
                .await?
        }
        Database::Sqlite(db) => {
            sqlx::query_as(sql)
                .bind(consumer)
                .fetch_optional(&db.writer)
                .await?
        }
    };
    Ok(row.map(|(tx, id)| Position { tx, id }).unwrap_or_default())
}

/// Park `event` for `consumer` in its database (the embedded bus's parking lot), moving the
/// position past it in the same transaction.
pub(crate) async fn park(
    db: &Database,
    consumer: &str,
    delivery: &Delivery,
    error: &str,
) -> Result<(), BusError> {
    let event = &delivery.event;
    let sql = "INSERT INTO bus_dead_letters (consumer, event_id, subject, event_type, payload, \
               error, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
    let attempts = i32::try_from(delivery.attempt).unwrap_or(i32::MAX);
    let mut tx = db.begin().await?;
    match &mut tx {
        Tx::Postgres(tx) => {
            sqlx::query(sql)
                .bind(consumer)
                .bind(event.id)
                .bind(&event.subject)
                .bind(&event.event_type)
                .bind(event.payload.as_ref())
                .bind(error)
                .bind(attempts)
                .execute(&mut **tx)
                .await?;
        }
        Tx::Sqlite(tx) => {
            sqlx::query(sql)
                .bind(consumer)
                .bind(event.id.to_string())
                .bind(&event.subject)
                .bind(&event.event_type)
                .bind(event.payload.as_ref())
                .bind(error)
                .bind(attempts)
                .execute(&mut **tx)
                .await?;
        }
    }
    if let Some(position) = delivery.position {
        save_position(&mut tx, consumer, position).await?;
    }
    tx.commit().await?;
    Ok(())
}
