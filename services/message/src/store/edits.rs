//! The edit and delete part of the storage seam: edits with their history, deletion for one
//! user and for everyone (with the counters that must stay right across it).
//!
//! "Unread for a member" below means, as at send: the member is current, is not the sender,
//! the message's seq is above their read watermark (`last_read_seq`) and their join
//! (`joined_at_seq`), and they have not deleted it for themselves. Exactly those members
//! counted the message in `unread_count` (and, when mentioned, in `mention_count`), so exactly
//! those counters move when it is deleted or its mentions change.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_proto::echo::message::v1::MessageContent;
use uuid::Uuid;

use super::{Actor, Kind, Message, NewMessage, Role, Sent, StoreError};

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

/// What [`EditStore::edit`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Edited {
    /// Stored: the message after the edit, and the users it mentions now and did not before.
    Changed {
        /// The message after the edit.
        message: Message,
        /// Mentioned now, not before, and able to see the message (in the order of
        /// [`Edit::mentioned`]; see [`EditStore::edit`]).
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

/// Edit and delete storage (see the module doc).
#[async_trait]
pub trait EditStore: Send + Sync {
    /// Of `ids`, the messages `user` deleted for themselves, with when.
    async fn deleted_for(
        &self,
        user: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError>;

    /// Edits a message as `actor`, in one transaction under the conversation's row lock. In
    /// this order:
    /// - `ConversationNotFound` unless `actor` is a current member;
    /// - `MessageNotFound` unless the message is in the conversation after the actor's join
    ///   and not deleted for them;
    /// - `NotAllowed` unless `actor` sent it (in any kind of conversation);
    /// - `MessageDeleted` when it was deleted for everyone;
    /// - `EditWindowExpired` when `at` is more than `window` after its creation;
    /// - `LimitExceeded("edits")` when it was edited [`MAX_EDITS`] times already;
    /// - `Stale` when its edit_count is no longer `base_edit_count` (nothing written);
    /// - `Unchanged` when the content equals the current one (nothing written).
    ///
    /// Mentions are never refused. Of the users `mentioned` adds to the message's mention
    /// rows, only those who can see the message are counted (mention row, counter, event):
    /// current members other than the sender who joined before it (`joined_at_seq` < its seq)
    /// and have not deleted it for themselves; anyone else stays mentioned in the content
    /// alone. Mention rows kept from before stay, even of users who left since.
    ///
    /// Otherwise: the next seq (no activity: the conversation keeps its place in lists); the
    /// replaced version appended to the history (version = the old edit_count, created_at =
    /// when that version came to be); content, search body, edited_at = `at` and
    /// edit_count + 1 on the message; its mention rows for users no longer mentioned deleted
    /// and rows for the counted new ones added, and for the members for whom it is unread (see
    /// the module doc) mention_count + 1 when newly counted and - 1 when no longer mentioned;
    /// one MessageEdited event (no content; `newly_mentioned_user_ids` = the counted new
    /// ones). `Changed`.
    async fn edit(
        &self,
        actor: Actor,
        edit: &Edit,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<Edited, StoreError>;

    /// The earlier versions of message `id` of `conversation`, oldest first (empty if never
    /// edited or deleted for everyone). A plain read: who may see them is decided above.
    async fn edit_history(
        &self,
        conversation: Uuid,
        id: Uuid,
    ) -> Result<Vec<EditVersion>, StoreError>;

    /// Deletes message `id` of `conversation` for `actor` alone, in one transaction under the
    /// conversation's row lock (so its counters cannot race a send or a deletion for
    /// everyone): `ConversationNotFound` unless `actor` is a current member; `MessageNotFound`
    /// unless the message is in the conversation after their join (a tombstone deleted for
    /// everyone may be hidden too). Already deleted for them: false, nothing written.
    /// Otherwise: a `hidden_messages` row; when the message was unread for them,
    /// unread_count - 1 (and mention_count - 1 when it mentions them); the actor's next user
    /// seq with one MessageDeletedForMe carrying their counters after. True.
    async fn delete_for_me(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes message `id` of `conversation` for everyone, in one transaction under the
    /// conversation's row lock: `ConversationNotFound` unless `actor` is a current member;
    /// `MessageNotFound` unless the message is in the conversation after their join;
    /// `NotAllowed` unless `actor` sent it or is OWNER/ADMIN of a GROUP or CHANNEL (in a
    /// DIRECT conversation only the sender). Already deleted for everyone: false, nothing
    /// written. Otherwise, with the next seq (no activity): every member for whom it was
    /// unread gets unread_count - 1 (and mention_count - 1 when mentioned); the content is
    /// erased everywhere the store holds it (content and search body NULL, deleted_at = `at`,
    /// the request hash overwritten with zero bytes, since an unsalted hash of the content is a
    /// guessable trace of it; edit history, mention rows, reactions and pin deleted; a later
    /// retry of its send key answers the tombstone, see [`super::repeated`]); its thread root's
    /// reply_count - 1; when it was the conversation's last message, the newest remaining
    /// message not deleted for everyone (or none) takes its place; one MessageDeleted event.
    /// True.
    async fn delete_for_everyone(
        &self,
        actor: Actor,
        conversation: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
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
    /// themselves), checked in [`EditStore::edit`]'s order after membership and visibility:
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
