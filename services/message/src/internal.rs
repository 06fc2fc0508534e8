//! MessageInternalService (spec §0.2): what other Echo services read or do here. Notification
//! previews: bus events carry no content, so the notification service reads the text of a push
//! here, when it handles the event: an edit since shows its latest text, a deletion for
//! everyone shows nothing. The operators' AdminService (in the process that runs auth) lists
//! and resolves reports and purges conversations here, since this service owns that data. No
//! reader's view applies (the caller is a service, not a member). Served on the internal
//! listener only, behind the service credential; the public port refuses the path.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, ReportId, UserId};
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::message_internal_service_server::{
    MessageInternalService, MessageInternalServiceServer,
};
use echo_runtime::{Check, Failure};
use tonic::{Request, Response, Status};

use crate::error::MessageError;
use crate::events::timestamp;
use crate::moderation::{MAX_LIST, MAX_OPERATOR, MAX_RESOLUTION, Report, Resolution};
use crate::preview::preview;
use crate::store::{Message, MessageStore};

/// Most messages one GetNotificationPreviews reads.
pub const MAX_MESSAGES: usize = 500;

/// The internal handlers.
#[derive(Clone)]
pub struct MessageInternalApi {
    store: Arc<MessageStore>,
    /// Messages per purge batch (`retention.batch_size`).
    batch_size: usize,
}

impl MessageInternalApi {
    /// Handlers over `store`, purging in batches of `batch_size`.
    pub fn new(store: Arc<MessageStore>, batch_size: usize) -> Self {
        Self { store, batch_size }
    }

    /// The server, refusing request messages over `max_request_bytes`.
    pub fn server(self, max_request_bytes: usize) -> MessageInternalServiceServer<Self> {
        MessageInternalServiceServer::new(self).max_decoding_message_size(max_request_bytes)
    }
}

/// A message found for a preview, with the sender of the message it replies to.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// The message as stored now (its latest edit; no content once deleted for everyone).
    pub message: Message,
    /// Who sent the message it replies to (None when it replies to none).
    pub reply_to_sender: Option<UserId>,
}

/// The messages of `ids` (distinct) with their reply targets' senders, in the order of `ids`;
/// None for an id no message has. Two reads by id at most: the messages, then the reply
/// targets that are not among them (a reply keeps its target, even one deleted since).
#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn read(
    store: &MessageStore,
    ids: &[MessageId],
) -> Result<Vec<(MessageId, Option<Found>)>, MessageError> {
    let mut messages: HashMap<MessageId, Message> = store
        .messages_by_id(ids)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    let mut senders: HashMap<MessageId, UserId> =
        messages.values().map(|m| (m.id, m.sender_id)).collect();
    let targets: Vec<MessageId> = messages
        .values()
        .filter_map(|m| m.reply_to_message_id)
        .filter(|target| !senders.contains_key(target))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !targets.is_empty() {
        let replied = store.messages_by_id(&targets).await?;
        senders.extend(replied.into_iter().map(|m| (m.id, m.sender_id)));
    }
    Ok(ids
        .iter()
        .map(|id| {
            let found = messages.remove(id).map(|message| Found {
                reply_to_sender: message
                    .reply_to_message_id
                    .and_then(|target| senders.get(&target).copied()),
                message,
            });
            (*id, found)
        })
        .collect())
}

/// The preview of `id`, as read.
fn preview_pb(id: MessageId, found: Option<Found>) -> pb::NotificationPreview {
    let Some(Found {
        message,
        reply_to_sender,
    }) = found
    else {
        return pb::NotificationPreview {
            message_id: id.to_string(),
            state: pb::NotificationPreviewState::NotFound.into(),
            ..Default::default()
        };
    };
    let expired = message.is_expired(Utc::now());
    let (state, text) = match (&message.content, message.deleted_at) {
        (Some(content), None) if !expired => {
            (pb::NotificationPreviewState::Available, preview(content))
        }
        _ => (pb::NotificationPreviewState::Deleted, String::new()),
    };
    pb::NotificationPreview {
        message_id: id.to_string(),
        state: state.into(),
        conversation_id: message.conversation_id.to_string(),
        sender_user_id: message.sender_id.to_string(),
        seq: message.seq,
        preview: text,
        reply_to_sender_user_id: reply_to_sender.map(|u| u.to_string()).unwrap_or_default(),
        created_at: Some(timestamp(message.created_at)),
    }
}

/// The distinct ids of `input`, in first-seen order. The count is refused before any element
/// is looked at, so an oversized request costs no parsing.
fn message_ids(input: &[String]) -> Result<Vec<MessageId>, Status> {
    if input.is_empty() {
        return Err(Failure::invalid("message_ids", "at least one message id is required").into());
    }
    if input.len() > MAX_MESSAGES {
        let message = format!("at most {MAX_MESSAGES} message ids");
        return Err(Failure::invalid("message_ids", message).into());
    }
    let mut check = Check::new();
    let mut seen = HashSet::new();
    let ids = input
        .iter()
        .enumerate()
        .filter_map(|(i, text)| check.id_of(&format!("message_ids[{i}]"), text))
        .filter(|id| seen.insert(*id))
        .collect();
    check.finish()?;
    Ok(ids)
}

/// A report as the operators' contract carries it.
fn report_pb(report: Report) -> pb::ModerationReport {
    let (resolved_at, resolution, resolved_by) = match report.resolved {
        Some(r) => (Some(timestamp(r.at)), r.resolution, r.by),
        None => (None, String::new(), String::new()),
    };
    pb::ModerationReport {
        report_id: report.id.to_string(),
        conversation_id: report.conversation_id.to_string(),
        message_id: report.message_id.to_string(),
        reporter_user_id: report.reporter_id.to_string(),
        reason: report.reason.into(),
        note: report.note,
        created_at: Some(timestamp(report.created_at)),
        resolved_at,
        resolution,
        resolved_by,
        message: Some(report.snapshot),
    }
}

/// A protobuf time as UTC, or None when out of range.
fn utc(at: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?)
}

#[tonic::async_trait]
impl MessageInternalService for MessageInternalApi {
    async fn list_moderation_reports(
        &self,
        request: Request<pb::ListModerationReportsRequest>,
    ) -> Result<Response<pb::ListModerationReportsResponse>, Status> {
        let body = request.into_inner();
        let mut check = Check::new();
        let after = (!body.after_report_id.is_empty())
            .then(|| check.id_of::<ReportId>("after_report_id", &body.after_report_id))
            .flatten();
        check.finish()?;
        let limit = usize::try_from(body.limit).unwrap_or(1).clamp(1, MAX_LIST);
        let reports = self
            .store
            .reports(after, limit, body.include_resolved)
            .await?;
        Ok(Response::new(pb::ListModerationReportsResponse {
            reports: reports.into_iter().map(report_pb).collect(),
        }))
    }

    async fn resolve_moderation_report(
        &self,
        request: Request<pb::ResolveModerationReportRequest>,
    ) -> Result<Response<pb::ResolveModerationReportResponse>, Status> {
        let body = request.into_inner();
        let mut check = Check::new();
        let id = check.id_of::<ReportId>("report_id", &body.report_id);
        let resolution = check.text("resolution", &body.resolution, MAX_RESOLUTION, true);
        let by = check.text("resolved_by", &body.resolved_by, MAX_OPERATOR, true);
        check.finish()?;
        let resolution = Resolution {
            at: Utc::now(),
            resolution,
            by,
        };
        let report = self
            .store
            .resolve_report(id.expect("checked"), &resolution)
            .await?
            .ok_or(MessageError::ReportNotFound)?;
        Ok(Response::new(pb::ResolveModerationReportResponse {
            report: Some(report_pb(report)),
        }))
    }

    async fn purge_messages(
        &self,
        request: Request<pb::PurgeMessagesRequest>,
    ) -> Result<Response<pb::PurgeMessagesResponse>, Status> {
        let body = request.into_inner();
        let mut check = Check::new();
        let conversation = check.id_of::<ConversationId>("conversation_id", &body.conversation_id);
        let before = match &body.before {
            None => {
                check.push("before", "is required");
                None
            }
            Some(at) => {
                let at = utc(at);
                if at.is_none() {
                    check.push("before", "is not a valid time");
                }
                at
            }
        };
        check.finish()?;
        // Capped at now: a purge never chases messages sent while it runs.
        let before = before.expect("checked").min(Utc::now());
        let (store, batch_size) = (self.store.clone(), self.batch_size);
        let conversation = conversation.expect("checked");
        // Detached: a caller that goes away does not stop a purge between two batches.
        let purged = tokio::spawn(async move {
            crate::messages::expiry::purge(&store, conversation, before, batch_size).await
        })
        .await
        .map_err(|error| Status::internal(format!("purge task: {error}")))??;
        tracing::info!(%conversation, purged, "conversation purged by an operator");
        Ok(Response::new(pb::PurgeMessagesResponse {
            messages_purged: i64::try_from(purged).unwrap_or(i64::MAX),
        }))
    }

    async fn get_notification_previews(
        &self,
        request: Request<pb::GetNotificationPreviewsRequest>,
    ) -> Result<Response<pb::GetNotificationPreviewsResponse>, Status> {
        let ids = message_ids(&request.get_ref().message_ids)?;
        let found = read(self.store.as_ref(), &ids).await?;
        let previews = found
            .into_iter()
            .map(|(id, found)| preview_pb(id, found))
            .collect();
        Ok(Response::new(pb::GetNotificationPreviewsResponse {
            previews,
        }))
    }
}
