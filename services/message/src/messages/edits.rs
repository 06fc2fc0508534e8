//! Editing messages (with their history) and deleting them for one user or for everyone.
//!
//! An edit names the content fields it replaces (a FieldMask over `text`, `mentions`,
//! `attachments`, `location`); the new content is the current one with those fields replaced,
//! checked by the same rules as a sent message. The store applies it only if no other edit
//! landed in between (optimistic: it answers `Stale` and the edit is merged again), so two
//! edits of different fields from two devices both survive.
//!
//! Below the journeys: the types of the store's edit scripts (`store_edits`, `store_deletes`)
//! and the mention rules they share with sending. "Unread for a member" there means, as at
//! send: the member is current, is not the sender, the message's seq is above their read
//! watermark (`last_read_seq`) and their join (`joined_at_seq`), and they have not deleted it
//! for themselves. Exactly those members
//! counted the message in `unread_count` (and, when mentioned, in `mention_count`), so exactly
//! those counters move when it is deleted or its mentions change.

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1::{Location, Mention, MessageContent};
use echo_runtime::{Check, Failure};

use crate::conversations::Conversations;
use crate::error::MessageError;
use crate::store::{Actor, Kind, Message, NewMessage, Role, Sent};

/// The content paths an EditMessage mask may name.
pub const EDITABLE_PATHS: [&str; 4] = ["text", "mentions", "attachments", "location"];

/// The fields an edit replaces (None: kept as they are).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContentPatch {
    /// New text.
    pub text: Option<String>,
    /// New mentions.
    pub mentions: Option<Vec<Mention>>,
    /// New attachments.
    pub attachments: Option<Vec<Media>>,
    /// New location (Some(None) removes it).
    pub location: Option<Option<Location>>,
}

impl ContentPatch {
    /// The fields of `content` that `paths` (each one of [`EDITABLE_PATHS`]) name.
    pub fn from_mask(content: MessageContent, paths: &[String]) -> Self {
        let named = |path: &str| paths.iter().any(|p| p == path);
        Self {
            text: named("text").then_some(content.text),
            mentions: named("mentions").then_some(content.mentions),
            attachments: named("attachments").then_some(content.attachments),
            location: named("location").then_some(content.location),
        }
    }

    /// `current` with the patched fields replaced. New text without new mentions keeps the
    /// mentions that still lie inside it (measured in UTF-16 units) and drops the others.
    pub fn apply(&self, current: &MessageContent) -> MessageContent {
        let mut next = current.clone();
        if let Some(text) = &self.text {
            next.text = text.clone();
            if self.mentions.is_none() {
                let len = i64::try_from(text.encode_utf16().count()).unwrap_or(i64::MAX);
                next.mentions
                    .retain(|m| i64::from(m.offset) + i64::from(m.length) <= len);
            }
        }
        if let Some(mentions) = &self.mentions {
            next.mentions = mentions.clone();
        }
        if let Some(attachments) = &self.attachments {
            next.attachments = attachments.clone();
        }
        if let Some(location) = &self.location {
            next.location = location.clone();
        }
        next
    }
}

/// Who a deletion applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteScope {
    /// The caller's devices only.
    ForMe,
    /// Everyone: the content is erased.
    ForEveryone,
}

impl Conversations {
    /// Edits `actor`'s message `id` with `patch`; the message after it (unchanged when the
    /// patch changes nothing: no new version, no event).
    #[tracing::instrument(skip(self, patch))]
    pub async fn edit(
        &self,
        actor: Actor,
        conversation: ConversationId,
        id: MessageId,
        patch: &ContentPatch,
    ) -> Result<Message, MessageError> {
        // Bounded: every Stale answer means another edit was stored, and a message takes at
        // most MAX_EDITS of them before the store refuses.
        loop {
            let current = self.message(actor.user_id, conversation, id).await?;
            let now = Utc::now();
            let hidden = self.hidden(actor.user_id, id).await?;
            current.check_editable(actor.user_id, hidden, now, self.edit_window)?;
            let content = patch.apply(current.content.as_ref().unwrap_or(&Default::default()));
            let mut check = Check::new();
            let mentioned = crate::rules::content(&mut check, "content", &content);
            check.finish().map_err(|failure| match failure {
                Failure::InvalidArgument(violations) => MessageError::Invalid(violations),
                _ => MessageError::Internal("a field check failed without violations"),
            })?;
            let edit = Edit {
                conversation_id: conversation,
                message_id: id,
                base_edit_count: current.edit_count,
                content,
                mentioned,
            };
            match self.store.edit(actor, &edit, now, self.edit_window).await? {
                Edited::Changed { message, .. } | Edited::Unchanged(message) => return Ok(message),
                Edited::Stale(_) => continue,
            }
        }
    }

    /// The earlier versions of message `id`, oldest first, for a member who can see it.
    #[tracing::instrument(skip(self))]
    pub async fn edit_history(
        &self,
        caller: UserId,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Vec<EditVersion>, MessageError> {
        let message = self.message(caller, conversation, id).await?;
        if self.hidden(caller, id).await? {
            return Err(MessageError::MessageNotFound);
        }
        if message.deleted_at.is_some() || message.is_expired(chrono::Utc::now()) {
            return Err(MessageError::MessageDeleted);
        }
        self.store.edit_history(conversation, id).await
    }

    /// Deletes message `id` for `actor` or for everyone (again: nothing changes); the message
    /// afterwards (present it to see the caller's tombstone).
    #[tracing::instrument(skip(self))]
    pub async fn delete(
        &self,
        actor: Actor,
        conversation: ConversationId,
        id: MessageId,
        scope: DeleteScope,
    ) -> Result<Message, MessageError> {
        let now = Utc::now();
        match scope {
            DeleteScope::ForMe => {
                self.store
                    .delete_for_me(actor, conversation, id, now)
                    .await?;
            }
            DeleteScope::ForEveryone => {
                self.store
                    .delete_for_everyone(actor, conversation, id, now)
                    .await?;
            }
        }
        self.message(actor.user_id, conversation, id).await
    }

    /// Whether `user` deleted message `id` for themselves.
    async fn hidden(&self, user: UserId, id: MessageId) -> Result<bool, MessageError> {
        Ok(!self.store.deleted_for(user, &[id]).await?.is_empty())
    }
}

/// Most edits of one message (`Message.edit_count` never exceeds it): enough for any real
/// correction, and it bounds the history GetEditHistory returns unpaged.
pub const MAX_EDITS: i32 = 100;

/// An edit to apply: the full new content, computed by the caller from the message as it was
/// at `base_edit_count` edits.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The message.
    pub message_id: MessageId,
    /// The message's `edit_count` the new content was computed from. If another edit landed
    /// since, the store answers [`Edited::Stale`] and the caller merges again.
    pub base_edit_count: i32,
    /// The content after the edit (validated).
    pub content: MessageContent,
    /// The distinct users `content` mentions.
    pub mentioned: Vec<UserId>,
}

/// What [`MessageStore::edit`](crate::store::MessageStore::edit) did.
#[derive(Clone, Debug, PartialEq)]
pub enum Edited {
    /// Stored: the message after the edit, and the users it mentions now and did not before.
    Changed {
        /// The message after the edit.
        message: Message,
        /// Mentioned now, not before, and able to see the message (in the order of
        /// [`Edit::mentioned`]; see [`MessageStore::edit`](crate::store::MessageStore::edit)).
        newly_mentioned: Vec<UserId>,
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
pub(crate) fn mention_changes(
    before: &[UserId],
    mentioned: &[UserId],
) -> (Vec<UserId>, Vec<UserId>) {
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
pub(crate) fn counted_mentions(mentioned: &[UserId], members: &[UserId]) -> Vec<UserId> {
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
) -> Result<Sent, MessageError> {
    // The hash covers content, reply and thread, not the conversation: the same key and text
    // sent into another conversation is another request.
    let same_payload = stored.deleted_at.is_some() || request_hash == new.request_hash;
    if same_payload && stored.conversation_id == new.conversation_id {
        Ok(Sent::Repeated(stored))
    } else {
        Err(MessageError::IdempotencyKeyReused)
    }
}

impl Message {
    /// Whether `actor`, a member with `role` of a conversation of `kind`, may delete this
    /// message for everyone: its sender, or OWNER/ADMIN of a GROUP or CHANNEL (in a DIRECT
    /// conversation only the sender); `NotAllowed` otherwise.
    pub(crate) fn check_deletable(
        &self,
        actor: UserId,
        kind: Kind,
        role: Role,
    ) -> Result<(), MessageError> {
        let moderator = kind != Kind::Direct && role.is_admin();
        if self.sender_id != actor && !moderator {
            return Err(MessageError::NotAllowed);
        }
        Ok(())
    }

    /// Whether `editor` may edit this message at `at` (`hidden`: they deleted it for
    /// themselves), checked in [`MessageStore::edit`](crate::store::MessageStore::edit)'s order after membership and visibility:
    /// `MessageNotFound` (hidden), `NotAllowed`, `MessageDeleted`, `EditWindowExpired`,
    /// `LimitExceeded("edits")`.
    pub fn check_editable(
        &self,
        editor: UserId,
        hidden: bool,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<(), MessageError> {
        if hidden {
            Err(MessageError::MessageNotFound)
        } else if self.sender_id != editor {
            Err(MessageError::NotAllowed)
        } else if self.deleted_at.is_some() || self.content.is_none() {
            Err(MessageError::MessageDeleted)
        } else if at - self.created_at > window {
            Err(MessageError::EditWindowExpired)
        } else if self.edit_count >= MAX_EDITS {
            Err(MessageError::LimitExceeded("edits"))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mention(offset: i32, length: i32) -> Mention {
        Mention {
            user_id: UserId::nil().to_string(),
            offset,
            length,
        }
    }

    #[test]
    fn new_text_keeps_only_mentions_that_still_fit() {
        let current = MessageContent {
            text: "hi @ada and @bob".into(),
            mentions: vec![mention(3, 4), mention(12, 4)],
            ..Default::default()
        };
        let patch = ContentPatch::from_mask(
            MessageContent {
                // "👋 @ada!" is 8 UTF-16 units: the first mention fits, the second does not.
                text: "👋 @ada!".into(),
                mentions: vec![mention(0, 1)],
                ..Default::default()
            },
            &["text".to_owned()],
        );
        let next = patch.apply(&current);
        assert_eq!(next.text, "👋 @ada!");
        assert_eq!(next.mentions, vec![mention(3, 4)]);
    }

    #[test]
    fn only_masked_fields_change() {
        let current = MessageContent {
            text: "see @ada".into(),
            mentions: vec![mention(4, 4)],
            location: Some(Location {
                latitude: 1.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        let incoming = MessageContent {
            text: "ignored".into(),
            mentions: vec![mention(0, 3)],
            ..Default::default()
        };
        let paths = ["mentions".to_owned(), "location".to_owned()];
        let next = ContentPatch::from_mask(incoming, &paths).apply(&current);
        assert_eq!(next.text, "see @ada");
        assert_eq!(next.mentions, vec![mention(0, 3)]);
        assert_eq!(next.location, None, "a masked, unset location is removed");
    }
}
