//! The inbox: ListInbox and MarkInboxRead (spec §B1). Entries are written by the delivery
//! pipeline ([`store::write_entries`], one per recipient and message); the caller
//! lists them newest first and marks them read.

pub mod store;

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_proto::echo::notification::v1 as pb;
use echo_proto::echo::notification::v1::mark_inbox_read_request::Target;
use echo_runtime::{Check, PageSize};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{NotificationError, checked};
use crate::store::{NotificationStore, count32};

/// ListInbox pages.
const LIST_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};

/// Why an entry was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A new message in one of the user's conversations.
    Message,
    /// A message mentioning the user.
    Mention,
    /// A reply to one of the user's messages.
    Reply,
}

impl EntryKind {
    /// `inbox_entries.kind`: the proto's number.
    pub fn code(self) -> i16 {
        self.proto() as i16
    }

    /// The kind stored as `code`.
    pub fn from_code(code: i16) -> Option<EntryKind> {
        match pb::InboxEntryKind::try_from(i32::from(code)).ok()? {
            pb::InboxEntryKind::Message => Some(EntryKind::Message),
            pb::InboxEntryKind::Mention => Some(EntryKind::Mention),
            pb::InboxEntryKind::Reply => Some(EntryKind::Reply),
            pb::InboxEntryKind::Unspecified => None,
        }
    }

    fn proto(self) -> pb::InboxEntryKind {
        match self {
            EntryKind::Message => pb::InboxEntryKind::Message,
            EntryKind::Mention => pb::InboxEntryKind::Mention,
            EntryKind::Reply => pb::InboxEntryKind::Reply,
        }
    }
}

/// One inbox entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxEntry {
    /// Id (UUIDv7: also the sort key).
    pub id: Uuid,
    /// The recipient.
    pub user_id: UserId,
    /// Why it was written.
    pub kind: EntryKind,
    /// Conversation of the message.
    pub conversation_id: ConversationId,
    /// The message.
    pub message_id: MessageId,
    /// The message's conversation seq.
    pub seq: i64,
    /// Who sent it.
    pub sender_user_id: UserId,
    /// The sender's display name when written.
    pub sender_display_name: String,
    /// The conversation's title when written (empty for direct conversations).
    pub conversation_title: String,
    /// Start of the text; empty when the recipient turned previews off.
    pub preview: String,
    /// When the message was created.
    pub created_at: DateTime<Utc>,
    /// Marked read.
    pub read: bool,
}

/// What a MarkInboxRead changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marked {
    /// Entries that went from unread to read.
    pub marked: u64,
    /// Unread entries left.
    pub unread_left: i64,
}

/// Which entries MarkInboxRead marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkTarget {
    /// This entry and every older one.
    UpTo(Uuid),
    /// Every entry.
    All,
}

/// Where a ListInbox page resumes, and the filter it was issued for: a token is only valid
/// with the same `unread_only`.
#[derive(Debug, Serialize, Deserialize)]
struct InboxPosition {
    before_inbox_entry_id: Uuid,
    unread_only: bool,
}

/// ListInbox.
#[tracing::instrument(skip(store, request))]
pub async fn list(
    store: &NotificationStore,
    user: UserId,
    request: pb::ListInboxRequest,
) -> Result<pb::ListInboxResponse, NotificationError> {
    let mut check = Check::new();
    let page = check.page::<InboxPosition>(request.page_size, &request.page_token, LIST_PAGE);
    if let Some(after) = &page.after
        && after.unread_only != request.unread_only
    {
        check.push(
            "page_token",
            format!(
                "was issued for unread_only = {}; list again from the first page",
                after.unread_only
            ),
        );
    }
    checked(check)?;
    let before = page.after.as_ref().map(|p| p.before_inbox_entry_id);
    let entries = store
        .list_inbox(user, request.unread_only, before, page.fetch_limit())
        .await?;
    let (entries, next_page_token) = page.finish(entries, |entry| InboxPosition {
        before_inbox_entry_id: entry.id,
        unread_only: request.unread_only,
    });
    Ok(pb::ListInboxResponse {
        entries: entries.iter().map(entry_pb).collect(),
        next_page_token,
    })
}

/// MarkInboxRead.
#[tracing::instrument(skip(store, request))]
pub async fn mark_read(
    store: &NotificationStore,
    user: UserId,
    request: pb::MarkInboxReadRequest,
) -> Result<pb::MarkInboxReadResponse, NotificationError> {
    let target = mark_target(&request)?;
    let marked = store.mark_read(user, target).await?;
    Ok(pb::MarkInboxReadResponse {
        marked_count: count32(i64::try_from(marked.marked).unwrap_or(i64::MAX)),
        unread_inbox_entries: count32(marked.unread_left),
    })
}

/// The entries `request` names, or the violation of its one field.
pub fn mark_target(request: &pb::MarkInboxReadRequest) -> Result<MarkTarget, NotificationError> {
    let mut check = Check::new();
    let target = match &request.target {
        Some(Target::UpToInboxEntryId(id)) => {
            check.id("up_to_inbox_entry_id", id).map(MarkTarget::UpTo)
        }
        Some(Target::All(true)) => Some(MarkTarget::All),
        Some(Target::All(false)) => {
            check.push("all", "must be true (or give up_to_inbox_entry_id)");
            None
        }
        None => {
            check.push("target", "give up_to_inbox_entry_id, or all = true");
            None
        }
    };
    checked(check)?;
    Ok(target.expect("checked"))
}

fn entry_pb(entry: &InboxEntry) -> pb::InboxEntry {
    pb::InboxEntry {
        inbox_entry_id: entry.id.to_string(),
        kind: entry.kind.proto() as i32,
        conversation_id: entry.conversation_id.to_string(),
        message_id: entry.message_id.to_string(),
        seq: entry.seq,
        sender_user_id: entry.sender_user_id.to_string(),
        sender_display_name: entry.sender_display_name.clone(),
        conversation_title: entry.conversation_title.clone(),
        preview: entry.preview.clone(),
        created_at: Some(crate::api::timestamp(entry.created_at)),
        read: entry.read,
    }
}

#[cfg(test)]
mod tests {
    use echo_runtime::Failure;

    use super::*;

    fn mark(target: Option<Target>) -> Result<MarkTarget, Vec<String>> {
        mark_target(&pb::MarkInboxReadRequest { target }).map_err(|error| match error {
            NotificationError::Invalid(Failure::InvalidArgument(v)) => {
                v.into_iter().map(|v| v.field).collect()
            }
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn exactly_one_target_is_required() {
        let id = Uuid::now_v7();
        assert_eq!(
            mark(Some(Target::UpToInboxEntryId(id.to_string()))),
            Ok(MarkTarget::UpTo(id))
        );
        assert_eq!(mark(Some(Target::All(true))), Ok(MarkTarget::All));
        assert_eq!(mark(Some(Target::All(false))), Err(vec!["all".to_owned()]));
        assert_eq!(mark(None), Err(vec!["target".to_owned()]));
        let bad = Some(Target::UpToInboxEntryId("nope".into()));
        assert_eq!(mark(bad), Err(vec!["up_to_inbox_entry_id".to_owned()]));
        let empty = Some(Target::UpToInboxEntryId(String::new()));
        assert_eq!(mark(empty), Err(vec!["up_to_inbox_entry_id".to_owned()]));
    }
}
