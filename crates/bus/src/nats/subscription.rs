//! Durable JetStream pull consumers: explicit acks, nak-with-delay backoff, a dead-letter
//! stream (`ECHO_DLQ`) after `max_deliver` deliveries.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::DateTime;
use echo_store::Database;
use futures::StreamExt;
use uuid::Uuid;

use super::{HEADER_OCCURRED, HEADER_TRACEPARENT, HEADER_TYPE, NatsBus};
use crate::subject::{dead_letter_subject, domain, sanitize_token};
use crate::{BusError, ConsumerSpec, Delivery, DeliveryHandle, Event, NatsSettings};

/// How long an unconfirmed ack is sent again before the delivery is left to the broker's
/// redelivery after ack_wait (the consumer loop stops waiting for it at shutdown).
const ACK_RETRY_FOR: Duration = Duration::from_secs(12);

pub(super) struct NatsSubscription {
    messages: consumer::pull::Stream,
    js: jetstream::Context,
    settings: NatsSettings,
    consumer: String,
}

impl NatsSubscription {
    pub(super) async fn open(
        js: &jetstream::Context,
        settings: &NatsSettings,
        spec: &ConsumerSpec,
        _db: &Database,
    ) -> Result<Self, BusError> {
        let domain = domain(&spec.filter)
            .ok_or_else(|| BusError::Config(format!("filter `{}` names no domain", spec.filter)))?;
        let stream = NatsBus::ensure_stream(js, settings, domain).await?;
        let durable = sanitize_token(&format!("{}{}", settings.subject_prefix, spec.name));
        let mut config = consumer::pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: NatsBus::wire_subject(settings, &spec.filter),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            // We park events ourselves (with the error) after spec.max_deliver deliveries.
            max_deliver: -1,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        };
        if spec.ordered {
            config.max_ack_pending = 1;
        }
        let consumer = stream
            .get_or_create_consumer(&durable, config)
            .await
            .map_err(|e| BusError::Unavailable(format!("consumer {durable}: {e}")))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| BusError::Unavailable(format!("consumer {durable}: {e}")))?;
        Ok(Self {
            messages,
            js: js.clone(),
            settings: settings.clone(),
            consumer: spec.name.clone(),
        })
    }

    fn decode(&self, message: &jetstream::Message) -> Result<Event, BusError> {
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let id = header(async_nats::header::NATS_MESSAGE_ID.as_ref())
            .and_then(|id| Uuid::parse_str(&id).ok())
            .ok_or_else(|| BusError::Malformed("missing or bad Nats-Msg-Id".into()))?;
        let micros = header(HEADER_OCCURRED)
            .and_then(|m| m.parse::<i64>().ok())
            .unwrap_or(0);
        let subject = message.subject.as_str();
        let subject = subject
            .strip_prefix(self.settings.subject_prefix.as_str())
            .unwrap_or(subject);
        Ok(Event {
            id,
            subject: subject.to_owned(),
            event_type: header(HEADER_TYPE).unwrap_or_default(),
            payload: message.payload.clone(),
            occurred_at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
            trace_parent: header(HEADER_TRACEPARENT),
        })
    }
}

fn unavailable(error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(error.to_string())
}

fn message(delivery: Delivery) -> Result<jetstream::Message, BusError> {
    match delivery.handle {
        DeliveryHandle::Nats(message) => Ok(*message),
        DeliveryHandle::Embedded => Err(BusError::Config("not a NATS delivery".into())),
    }
}

#[async_trait]
impl crate::Subscription for NatsSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let message = match self.messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => return Err(unavailable(error)),
                None => return Err(unavailable("consumer stream ended")),
            };
            let attempt = message
                .info()
                .map(|i| i.delivered.max(1) as u32)
                .unwrap_or(1);
            match self.decode(&message) {
                Ok(event) => {
                    let handle = DeliveryHandle::Nats(Box::new(message));
                    return Ok(Delivery {
                        event,
                        attempt,
                        position: None,
                        handle,
                    });
                }
                Err(error) => {
                    // Not ours to retry: nothing can ever decode it. Keep it out of the way.
                    tracing::error!(consumer = %self.consumer, %error, "undecodable event terminated");
                    message.ack_with(AckKind::Term).await.map_err(unavailable)?;
                }
            }
        }
    }

    async fn ack(&mut self, delivery: Delivery) -> Result<(), BusError> {
        // double_ack waits for the server's confirmation, so an ack lost in flight is noticed.
        // It is sent again (acks are idempotent) while the connection comes back: otherwise
        // the broker redelivers only after ack_wait (30 s), and an ordered consumer
        // (max_ack_pending 1) stands still that long after every broker outage.
        let message = message(delivery)?;
        let mut delay = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        loop {
            match message.double_ack().await {
                Ok(()) => return Ok(()),
                Err(error) if waited < ACK_RETRY_FOR => {
                    tracing::debug!(consumer = %self.consumer, %error, "ack not confirmed; sending it again");
                    tokio::time::sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(error) => return Err(unavailable(error)),
            }
        }
    }

    async fn retry(&mut self, delivery: Delivery, delay: Duration) -> Result<(), BusError> {
        message(delivery)?
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(unavailable)
    }

    async fn dead_letter(&mut self, delivery: Delivery, error: &str) -> Result<(), BusError> {
        NatsBus::ensure_stream(&self.js, &self.settings, "dlq").await?;
        let mut headers = NatsBus::headers(&delivery.event);
        headers.insert("Echo-Original-Subject", delivery.event.subject.as_str());
        headers.insert(
            "Echo-Error",
            error.chars().take(512).collect::<String>().as_str(),
        );
        let subject = NatsBus::wire_subject(&self.settings, &dead_letter_subject(&self.consumer));
        let payload: Bytes = delivery.event.payload.clone();
        self.js
            .publish_with_headers(subject, headers, payload)
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        message(delivery)?
            .ack_with(AckKind::Term)
            .await
            .map_err(unavailable)
    }
}
