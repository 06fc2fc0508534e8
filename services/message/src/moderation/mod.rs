//! Reports and the moderation record (docs/lifecycle.md, "Reports"; DESIGN §6's one named
//! exception to "no trace"): a member reports someone else's message; a copy of the message as
//! they see it is kept with the report, so it outlives a deletion for everyone, an expiry or a
//! purge; operators read and resolve the queue through the internal contract that the admin API
//! calls ([`crate::internal`]). The sender is never told. Resolved reports are erased after
//! `retention.resolved_reports` by the expiry sweep.

pub mod api;
pub mod store;

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, ReportId, UserId};
use echo_proto::echo::message::v1 as pb;

use crate::conversations::Conversations;
use crate::error::MessageError;
use crate::store::Actor;

/// Longest report note, in characters.
pub const MAX_NOTE: usize = 1_000;
/// Longest resolution, in characters.
pub const MAX_RESOLUTION: usize = 500;
/// Longest operator name recorded with a resolution, in characters.
pub const MAX_OPERATOR: usize = 100;
/// Most reports one internal ListModerationReports call returns.
pub const MAX_LIST: usize = 201;

/// A report with its copy of the reported message.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// UUIDv7: report ids order the queue by time.
    pub id: ReportId,
    /// The reported message's conversation.
    pub conversation_id: ConversationId,
    /// The reported message.
    pub message_id: MessageId,
    /// Who reported it.
    pub reporter_id: UserId,
    /// Why.
    pub reason: pb::ReportReason,
    /// The reporter's note (may be empty).
    pub note: String,
    /// The message as the reporter saw it when reporting, content included.
    pub snapshot: pb::Message,
    /// When it was reported.
    pub created_at: DateTime<Utc>,
    /// How it was resolved; None while open.
    pub resolved: Option<Resolution>,
}

/// An operator's resolution of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// When.
    pub at: DateTime<Utc>,
    /// What was decided (`no action`, `user suspended`, ...).
    pub resolution: String,
    /// The operator.
    pub by: String,
}

impl Conversations {
    /// `actor` reports `message` of `conversation`: a current member who can read it, not its
    /// sender, the message not deleted for everyone. Reporting the same message again answers
    /// the first report's id (nothing changes). Rate limited per user ([`crate::rules::REPORT`]).
    pub async fn report(
        &self,
        actor: Actor,
        conversation: ConversationId,
        message: MessageId,
        reason: pb::ReportReason,
        note: String,
    ) -> Result<ReportId, MessageError> {
        self.limits
            .take(&[(crate::rules::REPORT, &actor.user_id.to_string())])
            .await
            .map_err(MessageError::RateLimited)?;
        let found = self.message(actor.user_id, conversation, message).await?;
        if found.deleted_at.is_some() || found.is_expired(Utc::now()) {
            return Err(MessageError::MessageDeleted);
        }
        if found.sender_id == actor.user_id {
            return Err(MessageError::NotAllowed);
        }
        let seen = self
            .present(actor.user_id, std::slice::from_ref(&found))
            .await?;
        let snapshot = seen
            .into_iter()
            .next()
            .map(crate::convert::seen)
            .ok_or(MessageError::MessageNotFound)?;
        let report = Report {
            id: ReportId::new_v7(),
            conversation_id: conversation,
            message_id: message,
            reporter_id: actor.user_id,
            reason,
            note,
            snapshot,
            created_at: Utc::now(),
            resolved: None,
        };
        let id = self.store.add_report(&report).await?;
        if id == report.id {
            metrics::counter!("echo_message_reports_total").increment(1);
        }
        Ok(id)
    }
}
