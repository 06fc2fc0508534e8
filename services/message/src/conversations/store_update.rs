//! UpdateConversation written once for both backends: the new values of a conversation's
//! shared fields, who may set them ([`may_update`]), and the script that applies them under
//! the conversation's row lock with one ConversationUpdated.

use chrono::{DateTime, TimeDelta, Utc};
use echo_ids::ConversationId;
use echo_proto::echo::common::v1::Media;
use echo_store::with_tx;
use prost::Message as _;

use super::events::conversation_updated;
use crate::error::MessageError;
use crate::events::conversation_event;
use crate::members::store_rows::lock;
use crate::store::codec::{
    ConversationRow, Id, commit_with, conversation_columns, order_writes, refuse,
};
use crate::store::{Actor, Conversation, Kind, MessageStore, Role};

/// New values for a conversation's shared fields; None leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConversationUpdate {
    /// A new title (not blank).
    pub title: Option<String>,
    /// A new description ('' clears it).
    pub description: Option<String>,
    /// A new avatar (Some(None) clears it).
    pub avatar: Option<Option<Media>>,
    /// A new `only_admins_edit_info`.
    pub only_admins_edit_info: Option<bool>,
    /// A new `only_admins_add_members`.
    pub only_admins_add_members: Option<bool>,
    /// A new message ttl (Some(None) turns disappearing messages off); within
    /// [`MIN_MESSAGE_TTL`]..=[`MAX_MESSAGE_TTL`], checked by the API.
    pub message_ttl: Option<Option<TimeDelta>>,
}

/// The shortest message ttl a conversation may have (1 hour).
pub const MIN_MESSAGE_TTL: TimeDelta = TimeDelta::hours(1);
/// The longest message ttl a conversation may have (90 days).
pub const MAX_MESSAGE_TTL: TimeDelta = TimeDelta::days(90);

impl ConversationUpdate {
    /// Whether it names a setting (OWNER/ADMIN only).
    pub fn touches_settings(&self) -> bool {
        self.only_admins_edit_info.is_some() || self.only_admins_add_members.is_some()
    }

    /// Whether it names the message ttl (OWNER/ADMIN of a group or channel, either user of a
    /// direct conversation).
    pub fn touches_ttl(&self) -> bool {
        self.message_ttl.is_some()
    }

    /// Whether it names title, description or avatar.
    pub fn touches_info(&self) -> bool {
        self.title.is_some() || self.description.is_some() || self.avatar.is_some()
    }

    /// `conversation` with the update applied, and the paths of the fields that really
    /// changed (`title`, `description`, `avatar`, `settings`, `message_ttl`; empty: nothing
    /// to do).
    pub fn apply(&self, conversation: &Conversation) -> (Conversation, Vec<&'static str>) {
        let mut next = conversation.clone();
        let mut paths = Vec::new();
        if let Some(title) = &self.title
            && *title != next.title
        {
            next.title.clone_from(title);
            paths.push("title");
        }
        if let Some(description) = &self.description
            && *description != next.description
        {
            next.description.clone_from(description);
            paths.push("description");
        }
        if let Some(avatar) = &self.avatar
            && *avatar != next.avatar
        {
            next.avatar.clone_from(avatar);
            paths.push("avatar");
        }
        let before = (next.only_admins_edit_info, next.only_admins_add_members);
        if let Some(value) = self.only_admins_edit_info {
            next.only_admins_edit_info = value;
        }
        if let Some(value) = self.only_admins_add_members {
            next.only_admins_add_members = value;
        }
        if before != (next.only_admins_edit_info, next.only_admins_add_members) {
            paths.push("settings");
        }
        if let Some(ttl) = self.message_ttl
            && ttl != next.message_ttl
        {
            next.message_ttl = ttl;
            paths.push("message_ttl");
        }
        (next, paths)
    }
}

/// Whether a member with `role` may apply `update` to `conversation`: in a DIRECT one only
/// the message ttl, by either user; settings and the message ttl OWNER/ADMIN only; info
/// OWNER/ADMIN, or anyone when `only_admins_edit_info` is off.
pub fn may_update(
    conversation: &Conversation,
    role: Role,
    update: &ConversationUpdate,
) -> Result<(), MessageError> {
    if conversation.kind == Kind::Direct {
        return if update.touches_info() || update.touches_settings() {
            Err(MessageError::NotAllowed)
        } else {
            Ok(())
        };
    }
    let info_ok = role.is_admin() || !conversation.only_admins_edit_info;
    let settings_ok = role.is_admin();
    if (update.touches_info() && !info_ok)
        || (update.touches_settings() && !settings_ok)
        || (update.touches_ttl() && !role.is_admin())
    {
        return Err(MessageError::NotAllowed);
    }
    Ok(())
}

impl MessageStore {
    /// Applies `update` to conversation `id` as `actor`: `ConversationNotFound` unless `actor`
    /// is a current member; `NotAllowed` in a DIRECT conversation or when the actor's role
    /// does not allow a named field (see [`may_update`]). When some field really changes: the
    /// next seq, the row updated, one ConversationUpdated (the paths that changed, settings as
    /// `settings`); returns the conversation after it. Nothing changes: no seq, no event, None.
    pub async fn update_conversation(
        &self,
        actor: Actor,
        id: ConversationId,
        update: &ConversationUpdate,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, MessageError> {
        let mut tx = self.db.begin().await?;
        order_writes(&mut tx, &[id], &[]).await?;
        let Some((locked, me)) = lock(&mut tx, id, actor.user_id, at).await? else {
            return refuse(tx, MessageError::ConversationNotFound).await;
        };
        if let Err(refusal) = may_update(&locked, me.role, update) {
            return refuse(tx, refusal).await;
        }
        let (next, paths) = update.apply(&locked);
        if paths.is_empty() {
            tx.rollback().await?;
            return Ok(None);
        }
        let row: ConversationRow = with_tx!(&mut tx, |c| {
            sqlx::query_as(concat!(
                "UPDATE conversations SET title = $2, description = $3, avatar = $4, \
                 only_admins_edit_info = $5, only_admins_add_members = $6, \
                 message_ttl_seconds = $7 \
                 WHERE conversation_id = $1 RETURNING ",
                conversation_columns!()
            ))
            .bind(Id(id.into()))
            .bind(&next.title)
            .bind(&next.description)
            .bind(next.avatar.as_ref().map(|a| a.encode_to_vec()))
            .bind(next.only_admins_edit_info)
            .bind(next.only_admins_add_members)
            .bind(next.message_ttl.map(|ttl| ttl.num_seconds()))
            .fetch_one(c)
            .await
        })?;
        let updated = Conversation::try_from(row)?;
        let kind = conversation_updated(&updated, &paths);
        let event = conversation_event(id, updated.last_seq, at, actor, kind);
        commit_with(&self.outbox, tx, &[event]).await?;
        Ok(Some(updated))
    }
}
