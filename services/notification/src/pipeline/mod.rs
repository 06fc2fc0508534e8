//! The delivery pipeline's first half (spec §B2): durable consumers over the message, user and
//! auth events keep the projections (members at a seq, conversation kind and title, names,
//! blocks, mutes, unread and mention counts reset to the authoritative values read events
//! carry), decide per recipient of each new message ([`decide`]), and write its inbox entry
//! and one push job per token, all in the event's transaction (with the event id, so a
//! redelivered event changes nothing). The dispatcher (`crate::dispatch`) sends the jobs.
//!
//! One consumer per stream (one filter each, NATS 2.9): `notification.messages` on
//! `echo.message.>`, `notification.users` on `echo.user.>`, `notification.auth` on
//! `echo.auth.>`. A consumer applies its events one at a time in stream order, and
//! `notification.messages` is ordered across instances too (one event in flight, NATS
//! `max_ack_pending = 1`), so one user's counts change in the order the message service
//! changed them however many notification instances run: they share the consumer for
//! failover; the pushes themselves (the dispatcher) scale across instances.
//!
//! One piece: the event router and the steps its branches share across streams. A leave heard on
//! either stream goes through `left`, the badge pushes that reads, mutes and leaves owe through
//! `badge_jobs`, and new messages, mentions added by an edit and channel fan-out pages (`fanout`)
//! through `notify`; split by stream, a step could change for one stream's events and not for the
//! other's.

pub mod decide;
pub mod fanout;
pub mod store;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_bus::consumer::{EventHandler, HandlerError};
use echo_bus::{ConsumerSpec, Event};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_proto::echo::events::v1 as events;
use echo_proto::echo::message::v1::{Conversation, conversation_event, user_event};
use echo_store::Tx;
use prost::Message as _;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::badge;
use crate::inbox::InboxEntry;
use crate::inbox::store::write_entries;
use crate::jobs::{self, JobKind, NewJob};
use crate::upstream::{Preview, Upstream};
use decide::decide;
use fanout::Fanout;

/// `notify_conversations.kind` of a channel (the proto's CONVERSATION_TYPE_CHANNEL).
const CHANNEL: i16 = 3;

/// What the pipeline needs.
#[derive(Clone)]
pub struct Pipeline {
    /// Reads previews for the inbox.
    pub upstream: Arc<dyn Upstream>,
    /// A push not delivered this long after its message expires.
    pub job_expiry: Duration,
    /// At most one badge-only push per user per this long.
    pub badge_interval: Duration,
    /// Wakes this instance's dispatcher when an event wrote jobs.
    pub wake: Arc<Notify>,
    /// Wakes this instance's channel fan-out worker when an event may have queued a post.
    pub fanout: Arc<Notify>,
}

impl Pipeline {
    /// The durable consumers notification runs.
    pub fn consumers(&self) -> Vec<(ConsumerSpec, Arc<dyn EventHandler>)> {
        let handler: Arc<dyn EventHandler> = Arc::new(self.clone());
        vec![
            (
                // Counts are reset by later events (read markers): apply in stream order
                // also when several instances share the consumer.
                ConsumerSpec::new("notification.messages", "echo.message.>").ordered(),
                handler.clone(),
            ),
            (
                ConsumerSpec::new("notification.users", "echo.user.>"),
                handler.clone(),
            ),
            (
                ConsumerSpec::new("notification.auth", "echo.auth.>"),
                handler,
            ),
        ]
    }

    /// A `kind` job about `message` (seq `seq` of `conversation`) for `user`'s `token`.
    fn message_job(
        &self,
        (user, token): (UserId, Uuid),
        kind: JobKind,
        (message, conversation, seq): (MessageId, ConversationId, i64),
        now: DateTime<Utc>,
    ) -> NewJob {
        NewJob {
            message_id: Some(message),
            conversation_id: Some(conversation),
            seq: Some(seq),
            ..self.job(user, token, kind, now)
        }
    }

    fn job(&self, user: UserId, token: Uuid, kind: JobKind, now: DateTime<Utc>) -> NewJob {
        NewJob {
            message_id: None,
            token,
            user_id: user,
            kind,
            conversation_id: None,
            seq: None,
            due: now,
            expires: now + self.job_expiry,
            bulk: false,
        }
    }
}

/// An id of the kind the caller names (`UserId`, `ConversationId`, …) from an event's field.
fn id<T: From<Uuid>>(text: &str) -> Result<T, HandlerError> {
    Uuid::try_parse(text)
        .map(T::from)
        .map_err(|e| format!("bad id {text:?}: {e}").into())
}

/// The users an event names (mentions); text that is not an id is left out.
fn ids(texts: &[String]) -> HashSet<UserId> {
    texts.iter().filter_map(|t| t.parse().ok()).collect()
}

fn time(at: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    at.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .unwrap_or_else(Utc::now)
}

fn kind_of(conversation: &Conversation) -> i16 {
    i16::try_from(conversation.r#type).unwrap_or(0)
}

#[async_trait]
impl EventHandler for Pipeline {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> Result<(), HandlerError> {
        let payload = event.payload.as_ref();
        match event.event_type.as_str() {
            "echo.events.v1.ConversationEventRecorded" => {
                let m = events::ConversationEventRecorded::decode(payload)?;
                if let Some(event) = m.event {
                    self.conversation_event(tx, event).await?;
                }
            }
            "echo.events.v1.UserEventRecorded" => {
                let m = events::UserEventRecorded::decode(payload)?;
                if let Some(event) = m.event {
                    self.user_event(tx, event).await?;
                }
            }
            "echo.events.v1.UserBlocked" => {
                let m = events::UserBlocked::decode(payload)?;
                store::block(tx, id(&m.blocker_user_id)?, id(&m.blocked_user_id)?, true).await?;
            }
            "echo.events.v1.UserUnblocked" => {
                let m = events::UserUnblocked::decode(payload)?;
                store::block(tx, id(&m.blocker_user_id)?, id(&m.blocked_user_id)?, false).await?;
            }
            "echo.events.v1.ProfileUpdated" => {
                let m = events::ProfileUpdated::decode(payload)?;
                let named = m
                    .update_mask
                    .as_ref()
                    .is_none_or(|mask| mask.paths.iter().any(|p| p == "display_name"));
                if named {
                    store::set_name(tx, id(&m.user_id)?, &m.display_name).await?;
                }
            }
            "echo.events.v1.UserRegistered" => {
                let m = events::UserRegistered::decode(payload)?;
                store::set_name(tx, id(&m.user_id)?, &m.display_name).await?;
            }
            "echo.events.v1.SessionRevoked" => {
                let m = events::SessionRevoked::decode(payload)?;
                store::remove_device_tokens(tx, id(&m.user_id)?, id(&m.device_id)?).await?;
            }
            "echo.events.v1.UserDeleted" => {
                let m = events::UserDeleted::decode(payload)?;
                store::erase_user(tx, id(&m.user_id)?).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn committed(&self, _event: &Event) {
        // Jobs may have been written: this instance's dispatcher looks at once (others find
        // them on their next poll).
        self.wake.notify_one();
        self.fanout.notify_one();
    }
}

impl Pipeline {
    async fn conversation_event(
        &self,
        tx: &mut Tx,
        event: echo_proto::echo::message::v1::ConversationEvent,
    ) -> Result<(), HandlerError> {
        let at = time(event.occurred_at.as_ref());
        match event.kind {
            Some(conversation_event::Kind::MessageCreated(created)) => {
                let Some(message) = created.message else {
                    return Ok(());
                };
                let mentioned = ids(&created.mentioned_user_ids);
                tracing::debug!(message = %message.message_id,
                    lag_ms = (Utc::now() - at).num_milliseconds(), "message created: applying");
                self.message_created(tx, &message, &mentioned, at).await?;
            }
            Some(conversation_event::Kind::MessageEdited(edited)) => {
                let Some(message) = edited.message else {
                    return Ok(());
                };
                let mentioned = ids(&edited.newly_mentioned_user_ids);
                self.mentioned_by_edit(tx, &message, &mentioned).await?;
            }
            Some(conversation_event::Kind::MessageDeleted(deleted)) => {
                self.message_deleted(tx, id(&deleted.message_id)?).await?;
            }
            // Expiry and retention erase like a deletion for everyone: the same, per message.
            Some(conversation_event::Kind::MessagesExpired(expired)) => {
                for deleted in &expired.messages {
                    self.message_deleted(tx, id(&deleted.message_id)?).await?;
                }
            }
            // Membership also comes in order with the messages (see store::join): a member
            // added just before a message gets it, one removed just before does not.
            Some(conversation_event::Kind::MemberJoined(joined)) => {
                if let Some(member) = joined.member {
                    let conversation = id(&event.conversation_id)?;
                    let user = id(&member.user_id)?;
                    store::join(tx, conversation, user, member.joined_at_seq).await?;
                }
            }
            Some(conversation_event::Kind::MemberLeft(
                echo_proto::echo::message::v1::MemberLeft { user_id },
            ))
            | Some(conversation_event::Kind::MemberRemoved(
                echo_proto::echo::message::v1::MemberRemoved { user_id },
            )) => {
                let conversation = id(&event.conversation_id)?;
                self.left(tx, conversation, id(&user_id)?, event.seq, Utc::now())
                    .await?;
            }
            Some(conversation_event::Kind::ConversationCreated(created)) => {
                if let Some(c) = created.conversation {
                    store::set_conversation(tx, id(&c.conversation_id)?, kind_of(&c), &c.title)
                        .await?;
                }
            }
            Some(conversation_event::Kind::ConversationUpdated(updated)) => {
                if let Some(c) = updated.conversation {
                    store::set_conversation(tx, id(&c.conversation_id)?, kind_of(&c), &c.title)
                        .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn user_event(
        &self,
        tx: &mut Tx,
        event: echo_proto::echo::message::v1::UserEvent,
    ) -> Result<(), HandlerError> {
        let user = id(&event.user_id)?;
        let now = Utc::now();
        match event.kind {
            Some(user_event::Kind::ConversationJoined(joined)) => {
                let Some(c) = joined.conversation else {
                    return Ok(());
                };
                let conversation = id(&c.conversation_id)?;
                store::set_conversation(tx, conversation, kind_of(&c), &c.title).await?;
                store::join(tx, conversation, user, joined.joined_at_seq).await?;
            }
            Some(user_event::Kind::ConversationLeft(left)) => {
                let conversation = id(&left.conversation_id)?;
                self.left(tx, conversation, user, left.left_at_seq, now)
                    .await?;
            }
            Some(user_event::Kind::ReadMarkerMoved(read)) => {
                let conversation = id(&read.conversation_id)?;
                let seq = read.last_read_seq;
                store::read_up_to(
                    tx,
                    user,
                    conversation,
                    seq,
                    read.unread_count,
                    read.mention_count,
                )
                .await?;
                jobs::skip_alerts(tx, user, conversation, seq).await?;
                // Tokens that showed an alert of what is now read get a dismiss for the
                // conversation; the others get the new badge (0 included).
                let shown: HashSet<Uuid> = jobs::dismiss_sent(tx, user, conversation, seq)
                    .await?
                    .into_iter()
                    .collect();
                self.badge_jobs(tx, user, &shown, Some(conversation), now)
                    .await?;
            }
            Some(user_event::Kind::MessageDeletedForMe(deleted)) => {
                let message = id(&deleted.message_id)?;
                store::deleted_for_me(
                    tx,
                    user,
                    id(&deleted.conversation_id)?,
                    message,
                    deleted.unread_count,
                    deleted.mention_count,
                )
                .await?;
                jobs::cancel_for_message(tx, user, message).await?;
            }
            Some(user_event::Kind::MemberSettingsChanged(changed)) => {
                let conversation = id(&changed.conversation_id)?;
                let until = changed
                    .settings
                    .and_then(|s| s.mute_until)
                    .map(|t| time(Some(&t)))
                    .filter(|until| *until > now);
                badge::set_muted(tx, user, conversation, until).await?;
                if until.is_some() {
                    jobs::skip_alerts(tx, user, conversation, i64::MAX).await?;
                }
                self.badge_jobs(tx, user, &HashSet::new(), None, now)
                    .await?;
            }
            None => {}
        }
        Ok(())
    }

    /// `user` left `conversation` at `seq` (heard on either stream): once, with the badge
    /// jobs the lower count needs.
    async fn left(
        &self,
        tx: &mut Tx,
        conversation: ConversationId,
        user: UserId,
        seq: i64,
        now: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        if store::leave(tx, conversation, user, seq).await? {
            self.badge_jobs(tx, user, &HashSet::new(), None, now)
                .await?;
        }
        Ok(())
    }

    /// A badge job for each of `user`'s tokens, or a dismiss of `conversation` for those in
    /// `dismiss`. The dispatcher sends a badge only when it differs from the last one sent;
    /// badge jobs are due no sooner than `badge_interval` after the user's last badge push
    /// (a dismiss, which takes a read conversation off the lock screen, goes at once).
    async fn badge_jobs(
        &self,
        tx: &mut Tx,
        user: UserId,
        dismiss: &HashSet<Uuid>,
        conversation: Option<ConversationId>,
        now: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let tokens = store::user_tokens(tx, user).await?;
        let badge_due = if tokens.iter().any(|t| !dismiss.contains(t)) {
            jobs::badge_slot(tx, user, now, self.badge_interval).await?
        } else {
            now
        };
        for token in tokens {
            let job = if dismiss.contains(&token) {
                NewJob {
                    conversation_id: conversation,
                    ..self.job(user, token, JobKind::Dismiss, now)
                }
            } else {
                NewJob {
                    due: badge_due,
                    ..self.job(user, token, JobKind::Badge, now)
                }
            };
            jobs::insert(tx, &job, now).await?;
        }
        Ok(())
    }

    /// The preview of `message` for the inbox; None when the message service does not answer
    /// now (the entry is written without one: the push reads it again when it is sent).
    async fn preview(&self, message: MessageId) -> Option<Preview> {
        match self.upstream.previews(&[message]).await {
            Ok(mut previews) => previews.remove(&message),
            Err(status) => {
                tracing::warn!(%message, %status, "no preview for the inbox (message service)");
                None
            }
        }
    }

    async fn message_created(
        &self,
        tx: &mut Tx,
        message: &echo_proto::echo::message::v1::Message,
        mentioned: &HashSet<UserId>,
        at: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let message_id = id(&message.message_id)?;
        let conversation = id(&message.conversation_id)?;
        let sender = id(&message.sender_user_id)?;
        let seq = message.seq;
        if !store::record_message(
            tx,
            message_id,
            conversation,
            seq,
            sender,
            at.timestamp_millis(),
        )
        .await?
        {
            return Ok(());
        }
        store::count_unread(tx, conversation, seq, sender).await?;
        for user in mentioned.iter().filter(|u| **u != sender) {
            store::count_mention(tx, message_id, conversation, seq, *user).await?;
        }
        let post = Fanout {
            message: message_id,
            conversation,
            seq,
            sender,
            at,
            after: None,
        };
        let (kind, _) = store::conversation(tx, conversation).await?;
        if kind == CHANNEL {
            // Its members are notified by the fan-out worker, in chunks (see `fanout`).
            return Ok(fanout::queue(tx, &post).await?);
        }
        self.notify(tx, &post, mentioned, None, None, None).await?;
        Ok(())
    }

    /// Writes the entries and jobs of `post` for its eligible recipients (`only`: just these
    /// users, for mentions added by an edit; `page`: at most that many members after the
    /// post's cursor, for a channel's fan-out). `preview`: the message service's answer when
    /// the caller asked it before its transaction; asked here otherwise. Returns the last
    /// member of a full page (more may follow), None when every member is done.
    async fn notify(
        &self,
        tx: &mut Tx,
        post: &Fanout,
        mentioned: &HashSet<UserId>,
        only: Option<&HashSet<UserId>>,
        page: Option<usize>,
        preview: Option<Option<Preview>>,
    ) -> Result<Option<UserId>, HandlerError> {
        let &Fanout {
            message,
            conversation,
            seq,
            sender,
            at,
            after,
        } = post;
        let limit = page.unwrap_or(usize::MAX);
        let mut recipients =
            store::recipients(tx, (conversation, seq, sender), after, limit).await?;
        let last = recipients
            .last()
            .map(|r| r.user)
            .filter(|_| recipients.len() >= limit);
        if let Some(only) = only {
            recipients.retain(|r| only.contains(&r.user));
        }
        if recipients.is_empty() {
            return Ok(last);
        }
        let preview = match preview {
            Some(fetched) => fetched,
            None => self.preview(message).await,
        };
        let (text, reply_to_sender) = match preview {
            Some(Preview::Gone) => return Ok(None),
            Some(Preview::Available {
                text,
                reply_to_sender,
                ..
            }) => (text, reply_to_sender),
            None => (String::new(), None),
        };
        let (_, title) = store::conversation(tx, conversation).await?;
        let sender_name = store::name(tx, sender).await?;
        let now = Utc::now();
        let mut entries = Vec::with_capacity(recipients.len());
        for recipient in &recipients {
            let mention = mentioned.contains(&recipient.user);
            let Ok(kind) = decide(
                recipient,
                sender,
                mention,
                reply_to_sender,
                now.timestamp_millis(),
            ) else {
                continue;
            };
            entries.push(InboxEntry {
                id: Uuid::now_v7(),
                user_id: recipient.user,
                kind,
                conversation_id: conversation,
                message_id: message,
                seq,
                sender_user_id: sender,
                sender_display_name: sender_name.clone(),
                conversation_title: title.clone(),
                preview: if recipient.show_previews {
                    text.clone()
                } else {
                    String::new()
                },
                created_at: at,
                read: false,
            });
        }
        let notified = write_entries(tx, &entries).await?;
        let about = (message, conversation, seq);
        let alerts: Vec<NewJob> = store::tokens_of(tx, &notified)
            .await?
            .into_iter()
            .map(|(token, user)| NewJob {
                bulk: page.is_some(),
                ..self.message_job((user, token), JobKind::Alert, about, now)
            })
            .collect();
        jobs::insert_about_messages(tx, &alerts, now).await?;
        Ok(last)
    }

    async fn mentioned_by_edit(
        &self,
        tx: &mut Tx,
        message: &echo_proto::echo::message::v1::Message,
        mentioned: &HashSet<UserId>,
    ) -> Result<(), HandlerError> {
        let message_id = id(&message.message_id)?;
        let conversation = id(&message.conversation_id)?;
        let sender = id(&message.sender_user_id)?;
        let seq = message.seq;
        let mut counted = HashSet::new();
        for user in mentioned.iter().filter(|u| **u != sender) {
            if store::count_mention(tx, message_id, conversation, seq, *user).await? {
                counted.insert(*user);
            }
        }
        if counted.is_empty() {
            return Ok(());
        }
        // Only users with no entry yet get one (and an alert): write_entries keeps an existing one.
        let post = Fanout {
            message: message_id,
            conversation,
            seq,
            sender,
            at: time(message.created_at.as_ref()),
            after: None,
        };
        self.notify(tx, &post, &counted, Some(&counted), None, None)
            .await?;
        Ok(())
    }

    async fn message_deleted(&self, tx: &mut Tx, message: MessageId) -> Result<(), HandlerError> {
        let Some((conversation, seq, sender)) = store::message(tx, message).await? else {
            // Older than the window: nothing of it is pending, its counts were reset since.
            return Ok(());
        };
        store::deleted_for_everyone(tx, message, conversation, seq, sender).await?;
        fanout::cancel(tx, message).await?;
        let now = Utc::now();
        let about = (message, conversation, seq);
        let dismisses: Vec<NewJob> = jobs::erase_message(tx, message)
            .await?
            .into_iter()
            .map(|(user, token)| self.message_job((user, token), JobKind::Dismiss, about, now))
            .collect();
        jobs::insert_about_messages(tx, &dismisses, now).await?;
        Ok(())
    }
}
