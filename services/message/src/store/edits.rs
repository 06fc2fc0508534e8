//! The edit and delete part of the storage seam: edits with their history, deletion for one
//! user and for everyone (with the counters that must stay right across it).
//!
//! "Unread for a member" below means, as at send: the member is current, is not the sender,
//! the message's seq is above their read watermark (`last_read_seq`) and their join
//! (`joined_at_seq`), and they have not deleted it for themselves. Exactly those members
//! counted the message in `unread_count` (and, when mentioned, in `mention_count`), so exactly
//! those counters move when it is deleted or its mentions change.

use chrono::{DateTime, Utc};
use echo_proto::echo::message::v1::MessageContent;
use uuid::Uuid;

use super::{Kind, Message, NewMessage, Role, Sent, StoreError};

/// Most edits of one message (`Message.edit_count` never exceeds it): enough for any real
/// correction, and it bounds the history GetEditHistory returns unpaged.
pub const MAX_EDITS: i32 = 100;

/// An edit to apply: the full new content, computed by the caller from the message as it was
/// at `base_edit_count` edits.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The message.
    pub message_id: Uuid,
    /// The message's `edit_count` the new content was computed from. If another edit landed
    /// since, the store answers [`Edited::Stale`] and the caller merges again.
    pub base_edit_count: i32,
    /// The content after the edit (validated).
    pub content: MessageContent,
    /// The distinct users `content` mentions.
    pub mentioned: Vec<Uuid>,
}

/// What [`MessageStore::edit`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Edited {
    /// Stored: the message after the edit, and the users it mentions now and did not before.
    Changed {
        /// The message after the edit.
        message: Message,
        /// Mentioned now, not before, and able to see the message (in the order of
        /// [`Edit::mentioned`]; see [`MessageStore::edit`]).
        newly_mentioned: Vec<Uuid>,
    },
    /// The new content equals the current one: nothing was written (no seq, no history).
    Unchanged(Message),
    /// Another edit landed after `base_edit_count`: nothing was written; this is the message
    /// now, to merge the edit into again.
    Stale(Message),
}

/// One earlier version of an edited message.
#[derive(Clone, Debug, PartialEq)]
pub struct EditVersion {
    /// 0 is the message as sent, n the result of the n-th edit.
    pub version: i32,
    /// Its content.
    pub content: MessageContent,
    /// When it came to be (the message's created_at for version 0, the edit time otherwise).
    pub created_at: DateTime<Utc>,
}

/// The users `mentioned` adds to the mentions `before` an edit, and those it drops, in the
/// order of each list: the mention rows and counters both implementations then change.
pub(crate) fn mention_changes(before: &[Uuid], mentioned: &[Uuid]) -> (Vec<Uuid>, Vec<Uuid>) {
    let added = mentioned
        .iter()
        .filter(|user| !before.contains(user))
        .copied()
        .collect();
    let removed = before
        .iter()
        .filter(|user| !mentioned.contains(user))
        .copied()
        .collect();
    (added, removed)
}

/// Of `mentioned` (in its order), those in `members`: the mentions a message counts (mention
/// rows, mention counters, the users its event notifies). Both backends pass the current
/// members eligible at write time (never the sender).
pub(crate) fn counted_mentions(mentioned: &[Uuid], members: &[Uuid]) -> Vec<Uuid> {
    mentioned
        .iter()
        .filter(|user| members.contains(user))
        .copied()
        .collect()
}

/// The answer to a send whose key (`stored`, with its `request_hash`) was used before:
/// `Repeated(stored)` when it was this request (same conversation and payload),
/// `IdempotencyKeyReused` otherwise. Deleting a message for everyone overwrites its request
/// hash (an unsalted hash of the content is a guessable trace of it), so for a tombstone the
/// conversation alone decides: any retry of the key answers the tombstone.
pub(crate) fn repeated(
    stored: Message,
    request_hash: &[u8],
    new: &NewMessage,
) -> Result<Sent, StoreError> {
    // The hash covers content, reply and thread, not the conversation: the same key and text
    // sent into another conversation is another request.
    let same_payload = stored.deleted_at.is_some() || request_hash == new.request_hash;
    if same_payload && stored.conversation_id == new.conversation_id {
        Ok(Sent::Repeated(stored))
    } else {
        Err(StoreError::IdempotencyKeyReused)
    }
}

impl Message {
    /// Whether `actor`, a member with `role` of a conversation of `kind`, may delete this
    /// message for everyone: its sender, or OWNER/ADMIN of a GROUP or CHANNEL (in a DIRECT
    /// conversation only the sender); `NotAllowed` otherwise.
    pub(crate) fn check_deletable(
        &self,
        actor: Uuid,
        kind: Kind,
        role: Role,
    ) -> Result<(), StoreError> {
        let moderator = kind != Kind::Direct && role.is_admin();
        if self.sender_id != actor && !moderator {
            return Err(StoreError::NotAllowed);
        }
        Ok(())
    }

    /// Whether `editor` may edit this message at `at` (`hidden`: they deleted it for
    /// themselves), checked in [`MessageStore::edit`]'s order after membership and visibility:
    /// `MessageNotFound` (hidden), `NotAllowed`, `MessageDeleted`, `EditWindowExpired`,
    /// `LimitExceeded("edits")`.
    pub fn check_editable(
        &self,
        editor: Uuid,
        hidden: bool,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<(), StoreError> {
        if hidden {
            Err(StoreError::MessageNotFound)
        } else if self.sender_id != editor {
            Err(StoreError::NotAllowed)
        } else if self.deleted_at.is_some() || self.content.is_none() {
            Err(StoreError::MessageDeleted)
        } else if at - self.created_at > window {
            Err(StoreError::EditWindowExpired)
        } else if self.edit_count >= MAX_EDITS {
            Err(StoreError::LimitExceeded("edits"))
        } else {
            Ok(())
        }
    }
}
