//! What a stream carries: durable events read from the outbox (decoded once per instance,
//! their snapshots read at delivery) and ephemeral items from the bus.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use echo_bus::{Event, Position};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_proto::echo::events::v1::{ConversationEventRecorded, UserEventRecorded};
use echo_proto::echo::message::v1 as pb;
use pb::conversation_event::Kind as ConversationKind;
use pb::subscribe_response::Item;
use pb::user_event::Kind as UserKind;
use prost::Message as _;
use uuid::Uuid;

use super::Cursor;
use crate::error::MessageError;
use crate::events::conversation_snapshot;
use crate::store::MessageStore;

/// Where a durable event goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// To the members of `id` at `seq`.
    Conversation {
        /// The conversation.
        id: ConversationId,
        /// The event's seq in it.
        seq: i64,
        /// The membership change it makes, if any.
        change: Option<Change>,
    },
    /// To every device of user `id`.
    User {
        /// The user.
        id: UserId,
        /// The event's seq in the user's own sequence.
        seq: i64,
    },
}

/// A membership change carried by a conversation event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// `0` became a member at this seq.
    Joined(UserId),
    /// `0` stopped being a member at this seq (they still receive this event).
    Left(UserId),
}

/// One durable event, ready for every stream that may see it.
#[derive(Debug)]
pub(crate) struct Durable {
    /// Its outbox position.
    pub position: Position,
    /// The encoded resume point after it (the same for every stream of this instance).
    pub cursor: String,
    /// Who receives it.
    pub route: Route,
    /// The item, snapshots read at delivery, `client_message_id` included.
    pub item: Item,
    /// The item as the outbox holds it, when a conversation snapshot was read at delivery:
    /// what a reader who is no longer a member sees (nothing from after they left).
    pub original: Option<Item>,
    /// The user whose streams may see `client_message_id` (the sender of a message snapshot).
    pub sender: Option<UserId>,
    /// Users who deleted the snapshot's message for themselves.
    pub hidden_for: Vec<UserId>,
}

/// How one reader relates to the conversation of an event: the stretch of membership it
/// falls in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct View {
    /// The first seq of the reader's stretch (history before it is not theirs).
    pub from_seq: i64,
    /// Whether that stretch has ended (the reader left or was removed since).
    pub closed: bool,
}

impl Durable {
    /// The response for a stream of `reader`, whose relation to the event is `view`: message
    /// snapshots as the reader may see them (no content of messages from before their join,
    /// or edited while a former member was away; a DELETED_FOR_ME tombstone when they deleted
    /// it for themselves; the idempotency key only for the sender's own user), conversation
    /// snapshots as of the event for former members.
    pub fn response_for(&self, reader: UserId, view: View) -> pb::SubscribeResponse {
        let mut item = match (&self.original, view.closed) {
            (Some(original), true) => original.clone(),
            _ => self.item.clone(),
        };
        if let Some(message) = message_snapshot(&mut item) {
            if self.hidden_for.contains(&reader) {
                message.state = pb::MessageState::DeletedForMe.into();
                message.content = None;
                message.reactions.clear();
            } else if message.seq < view.from_seq || (view.closed && message.edit_count > 0) {
                message.content = None;
            }
            if self.sender != Some(reader) {
                message.client_message_id.clear();
            }
        }
        pb::SubscribeResponse {
            cursor: self.cursor.clone(),
            item: Some(item),
        }
    }

    /// For a ConversationJoined user event: the conversation and the join's seq.
    pub fn joined(&self) -> Option<(ConversationId, i64)> {
        let Item::UserEvent(event) = &self.item else {
            return None;
        };
        let Some(UserKind::ConversationJoined(joined)) = &event.kind else {
            return None;
        };
        let conversation = joined.conversation.as_ref()?;
        Some((
            conversation
                .conversation_id
                .parse::<ConversationId>()
                .ok()?,
            joined.joined_at_seq,
        ))
    }
}

/// What the hub hands a stream.
#[derive(Clone, Debug)]
pub(crate) enum Outgoing {
    /// A durable event, and how the stream's reader relates to it.
    Durable(Arc<Durable>, View),
    /// An ephemeral item (typing, receipts, read markers).
    Ephemeral(Arc<Item>),
}

/// An outbox event as a routable item, or `None` for events streams never carry.
fn decode(position: Position, event: &Event, epoch: Uuid) -> Result<Option<Durable>, String> {
    let cursor = Cursor { epoch, position }.encode();
    match event.event_type.as_str() {
        "echo.events.v1.ConversationEventRecorded" => {
            let recorded = ConversationEventRecorded::decode(event.payload.as_ref())
                .map_err(|e| format!("event {}: {e}", event.id))?;
            let inner = recorded.event.ok_or("conversation event without body")?;
            let id = parse_id(&inner.conversation_id)?;
            let change = inner.kind.as_ref().map(change_of).transpose()?.flatten();
            Ok(Some(Durable {
                position,
                cursor,
                route: Route::Conversation {
                    id,
                    seq: inner.seq,
                    change,
                },
                item: Item::ConversationEvent(inner),
                original: None,
                sender: None,
                hidden_for: Vec::new(),
            }))
        }
        "echo.events.v1.UserEventRecorded" => {
            let recorded = UserEventRecorded::decode(event.payload.as_ref())
                .map_err(|e| format!("event {}: {e}", event.id))?;
            let inner = recorded.event.ok_or("user event without body")?;
            Ok(Some(Durable {
                position,
                cursor,
                route: Route::User {
                    id: parse_id(&inner.user_id)?,
                    seq: inner.seq,
                },
                item: Item::UserEvent(inner),
                original: None,
                sender: None,
                hidden_for: Vec::new(),
            }))
        }
        _ => Ok(None),
    }
}

fn change_of(kind: &ConversationKind) -> Result<Option<Change>, String> {
    Ok(match kind {
        ConversationKind::MemberJoined(joined) => {
            let member = joined
                .member
                .as_ref()
                .ok_or("MemberJoined without member")?;
            Some(Change::Joined(parse_id(&member.user_id)?))
        }
        ConversationKind::MemberLeft(left) => Some(Change::Left(parse_id(&left.user_id)?)),
        ConversationKind::MemberRemoved(removed) => Some(Change::Left(parse_id(&removed.user_id)?)),
        _ => None,
    })
}

fn parse_id<T: From<Uuid>>(text: &str) -> Result<T, String> {
    Uuid::parse_str(text)
        .map(T::from)
        .map_err(|e| format!("id {text:?}: {e}"))
}

/// Decode a page of outbox rows, skipping (and logging) rows that do not decode: a corrupt
/// row must not stop every stream of the instance.
pub(crate) fn decode_all(rows: &[(Position, Event)], epoch: Uuid) -> Vec<Durable> {
    rows.iter()
        .filter_map(|(position, event)| match decode(*position, event, epoch) {
            Ok(durable) => durable,
            Err(error) => {
                tracing::error!(%error, ?position, subject = %event.subject, "undecodable outbox event skipped");
                None
            }
        })
        .collect()
}

fn message_snapshot(item: &mut Item) -> Option<&mut pb::Message> {
    let Item::ConversationEvent(event) = item else {
        return None;
    };
    match event.kind.as_mut()? {
        ConversationKind::MessageCreated(created) => created.message.as_mut(),
        ConversationKind::MessageEdited(edited) => edited.message.as_mut(),
        _ => None,
    }
}

fn conversation_snapshot_of(item: &mut Item) -> Option<&mut pb::Conversation> {
    match item {
        Item::ConversationEvent(event) => match event.kind.as_mut()? {
            ConversationKind::ConversationCreated(created) => created.conversation.as_mut(),
            ConversationKind::ConversationUpdated(updated) => updated.conversation.as_mut(),
            _ => None,
        },
        Item::UserEvent(event) => match event.kind.as_mut()? {
            UserKind::ConversationJoined(joined) => joined.conversation.as_mut(),
            _ => None,
        },
        _ => None,
    }
}

/// Fill in the snapshots of `batch` as they are now (message.proto: snapshots are read at
/// delivery, so content deleted for everyone since never goes out, and an edited message
/// arrives with its latest content, reactions and pin). A few queries for the whole batch.
pub(crate) async fn hydrate(
    store: &MessageStore,
    batch: &mut [Durable],
) -> Result<(), MessageError> {
    let ids: HashSet<MessageId> = batch
        .iter_mut()
        .filter_map(|d| message_snapshot(&mut d.item))
        .filter_map(|m| m.message_id.parse::<MessageId>().ok())
        .collect();
    if !ids.is_empty() {
        let ids: Vec<MessageId> = ids.into_iter().collect();
        let beside = Beside::read(store, &ids).await?;
        for durable in batch.iter_mut() {
            if let Some(snapshot) = message_snapshot(&mut durable.item)
                && let Some(message) = beside.messages.get(&snapshot.message_id)
            {
                *snapshot = crate::convert::message(message);
                if message.deleted_at.is_none() {
                    snapshot.pinned = beside.pinned.contains(&message.id);
                    snapshot.reactions = beside
                        .reactions
                        .get(&message.id)
                        .cloned()
                        .unwrap_or_default();
                    durable.hidden_for =
                        beside.hidden.get(&message.id).cloned().unwrap_or_default();
                }
                durable.sender = Some(message.sender_id);
            }
        }
    }
    let mut conversations = HashMap::new();
    for durable in batch.iter_mut() {
        let Some(id) = conversation_snapshot_of(&mut durable.item)
            .and_then(|snapshot| snapshot.conversation_id.parse::<ConversationId>().ok())
        else {
            continue;
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = conversations.entry(id) {
            slot.insert(store.conversation(id).await?);
        }
        if let Some(Some(conversation)) = conversations.get(&id) {
            let original = durable.item.clone();
            if let Some(snapshot) = conversation_snapshot_of(&mut durable.item) {
                *snapshot = conversation_snapshot(conversation);
            }
            durable.original = Some(original);
        }
    }
    Ok(())
}

/// What lives beside a batch's messages.
struct Beside {
    messages: HashMap<String, crate::store::Message>,
    pinned: HashSet<MessageId>,
    /// Tallies in display order; `reacted_by_me` unset (caller-relative, conversation_event.proto).
    reactions: HashMap<MessageId, Vec<pb::ReactionCount>>,
    hidden: HashMap<MessageId, Vec<UserId>>,
}

impl Beside {
    async fn read(store: &MessageStore, ids: &[MessageId]) -> Result<Beside, MessageError> {
        let messages = store
            .messages_by_id(ids)
            .await?
            .into_iter()
            .map(|m| (m.id.to_string(), m))
            .collect();
        let pinned = store.pinned_among(ids).await?.into_iter().collect();
        // The nil reader reacted to nothing: `reacted_by_me` stays unset, as events require.
        let reactions =
            crate::reading::tallies_by_message(store.reaction_tallies(UserId::nil(), ids).await?)
                .into_iter()
                .map(|(id, tallies)| {
                    let counts = tallies.into_iter().map(crate::convert::reaction_count);
                    (id, counts.collect())
                })
                .collect();
        let mut hidden: HashMap<MessageId, Vec<UserId>> = HashMap::new();
        for (message, user) in store.hidden_by(ids).await? {
            hidden.entry(message).or_default().push(user);
        }
        Ok(Beside {
            messages,
            pinned,
            reactions,
            hidden,
        })
    }
}
