//! Conversations: creating direct ones and groups/channels (with their seqs and events), and a
//! user's list.

use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1::JoinMethod;
use echo_store::sqlite_rows::{json_ids, parse_uuid};
use prost::Message as _;
use sqlx::{SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::{
    WriteTx, all_live, begin, blocked_either_way, commit_with, conversation, conversation_by_id,
    member, micros, next_seq, next_user_seq, refuse, sql_limit,
};
use crate::events;
use crate::store::{
    Actor, Conversation, ConversationPosition, Kind, ListFilter, Member, NewConversation, Role,
    StoreError, creation_key, direct_key,
};

/// A conversation row to insert.
struct Row<'a> {
    id: Uuid,
    kind: Kind,
    title: &'a str,
    description: &'a str,
    avatar: Option<&'a Media>,
    only_admins_edit_info: bool,
    only_admins_add_members: bool,
    created_by: Uuid,
    /// Exactly one of the keys is set: it is what makes creation idempotent.
    key: Key<'a>,
}

/// The unique key a conversation is found by when created again.
#[derive(Clone, Copy)]
enum Key<'a> {
    Direct(&'a str),
    Creation(&'a str),
    None,
}

/// A member to add at creation: who, their role, and who added them.
type Joining = (Uuid, Role, Option<Uuid>);

/// See [`crate::store::MessageStore::create_direct`].
pub(super) async fn create_direct(
    writer: &SqlitePool,
    outbox: &Outbox,
    actor: Actor,
    peer: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<(Conversation, bool), StoreError> {
    let key = direct_key(actor.user_id, peer);
    let mut tx = begin(writer).await?;
    if !all_live(&mut tx, &[peer]).await? {
        return refuse(tx, StoreError::UserNotFound(Some(peer))).await;
    }
    // Before the look-up: a block also closes an existing conversation.
    if blocked_either_way(&mut tx, actor.user_id, peer).await? {
        return refuse(tx, StoreError::Blocked(Some(peer))).await;
    }
    let row = Row {
        id,
        kind: Kind::Direct,
        title: "",
        description: "",
        avatar: None,
        only_admins_edit_info: true,
        only_admins_add_members: true,
        created_by: actor.user_id,
        key: Key::Direct(&key),
    };
    // Both users of a direct conversation are MEMBERs; the peer was added by the creator.
    let joining = [
        (actor.user_id, Role::Member, None),
        (peer, Role::Member, Some(actor.user_id)),
    ];
    find_or_create(tx, outbox, actor, &row, &joining, at).await
}

/// See [`crate::store::MessageStore::create_conversation`].
pub(super) async fn create_conversation(
    writer: &SqlitePool,
    outbox: &Outbox,
    actor: Actor,
    new: &NewConversation,
    at: DateTime<Utc>,
) -> Result<(Conversation, bool), StoreError> {
    // An empty key is no key: every such call creates.
    let key = (!new.client_request_id.is_empty())
        .then(|| creation_key(actor.user_id, &new.client_request_id));
    let mut joining: Vec<Joining> = vec![(actor.user_id, Role::Owner, None)];
    for &user in &new.members {
        if joining.iter().all(|(joined, _, _)| *joined != user) {
            joining.push((user, Role::Member, Some(actor.user_id)));
        }
    }
    let others: Vec<Uuid> = joining[1..].iter().map(|(user, _, _)| *user).collect();

    let mut tx = begin(writer).await?;
    // The key first, so a retry answers what the first call did even if a member has since
    // been deleted or blocked the creator.
    if let Some(key) = &key
        && let Some(existing) = by_key(&mut tx, Key::Creation(key)).await?
    {
        tx.rollback().await?;
        return Ok((existing, false));
    }
    if let Some(unknown) = first_unknown(&mut tx, &others).await? {
        return refuse(tx, StoreError::UserNotFound(Some(unknown))).await;
    }
    if let Some(blocked) = first_blocked(&mut tx, actor.user_id, &others).await? {
        return refuse(tx, StoreError::Blocked(Some(blocked))).await;
    }
    let row = Row {
        id: new.id,
        kind: new.kind,
        title: &new.title,
        description: &new.description,
        avatar: new.avatar.as_ref(),
        only_admins_edit_info: new.only_admins_edit_info,
        only_admins_add_members: new.only_admins_add_members,
        created_by: actor.user_id,
        key: key.as_deref().map_or(Key::None, Key::Creation),
    };
    find_or_create(tx, outbox, actor, &row, &joining, at).await
}

/// See [`crate::store::MessageStore::list_conversations`].
pub(super) async fn list(
    reader: &SqlitePool,
    user: Uuid,
    filter: ListFilter,
    after: Option<&ConversationPosition>,
    limit: usize,
) -> Result<Vec<(Conversation, Member)>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT c.conversation_id, ",
        conversation_fields!(),
        ", ",
        member_fields!(),
        " FROM members m JOIN conversations c ON c.conversation_id = m.conversation_id \
          WHERE m.user_id = $1 AND m.left_at_seq IS NULL \
            AND ($2 IS NULL OR m.archived = $2) \
            AND (NOT $3 OR m.pinned_at IS NOT NULL) \
            AND ($4 IS NULL OR (c.last_activity_at, c.conversation_id) < ($4, $5)) \
          ORDER BY c.last_activity_at DESC, c.conversation_id DESC LIMIT $6"
    ))
    .bind(user.to_string())
    .bind(filter.archived)
    .bind(filter.pinned_only)
    .bind(after.map(|a| a.last_activity_micros))
    .bind(after.map(|a| a.conversation_id.to_string()))
    .bind(sql_limit(limit))
    .fetch_all(reader)
    .await?;
    rows.iter()
        .map(|row| Ok((conversation(row)?, member(row)?)))
        .collect()
}

/// Creates `row` with `joining` as its members in `tx` and commits, or answers the
/// conversation that already holds the row's key (false).
async fn find_or_create(
    mut tx: WriteTx,
    outbox: &Outbox,
    actor: Actor,
    row: &Row<'_>,
    joining: &[Joining],
    at: DateTime<Utc>,
) -> Result<(Conversation, bool), StoreError> {
    if let Some(existing) = by_key(&mut tx, row.key).await? {
        tx.rollback().await?;
        return Ok((existing, false));
    }
    // The single writer makes a conflict impossible after the look-up above; should one
    // happen anyway, the conversation that won is the answer.
    if !insert(&mut tx, row, at).await? {
        let existing = by_key(&mut tx, row.key).await?;
        tx.rollback().await?;
        return match existing {
            Some(existing) => Ok((existing, false)),
            None => Err(sqlx::Error::InvalidArgument(format!(
                "conversation id {} is taken",
                row.id
            ))
            .into()),
        };
    }
    let (conversation, events) = populate(&mut tx, actor, row.id, joining, at).await?;
    commit_with(outbox, tx, &events).await?;
    Ok((conversation, true))
}

/// Inserts `row` (no seq taken yet, no members); false when a unique key already exists.
async fn insert(
    conn: &mut SqliteConnection,
    row: &Row<'_>,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let (direct, creation) = match row.key {
        Key::Direct(key) => (Some(key), None),
        Key::Creation(key) => (None, Some(key)),
        Key::None => (None, None),
    };
    let inserted = sqlx::query(
        "INSERT INTO conversations (conversation_id, kind, title, description, avatar, \
         only_admins_edit_info, only_admins_add_members, created_by, created_at, direct_key, \
         creation_key, member_count, last_seq, last_activity_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0, $9) ON CONFLICT DO NOTHING",
    )
    .bind(row.id.to_string())
    .bind(row.kind.code())
    .bind(row.title)
    .bind(row.description)
    .bind(row.avatar.map(|a| a.encode_to_vec()))
    .bind(row.only_admins_edit_info)
    .bind(row.only_admins_add_members)
    .bind(row.created_by.to_string())
    .bind(micros(at))
    .bind(direct)
    .bind(creation)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Takes the creation seqs (ConversationCreated, then a MemberJoined per member in order),
/// adds the members and takes a user seq for each; returns the conversation as created and
/// its events in append order.
async fn populate(
    conn: &mut SqliteConnection,
    actor: Actor,
    id: Uuid,
    joining: &[Joining],
    at: DateTime<Utc>,
) -> Result<(Conversation, Vec<Event>), StoreError> {
    let created_seq = next_seq(conn, id, Some(at)).await?;
    let mut members = Vec::with_capacity(joining.len());
    for &(user, role, added_by) in joining {
        let seq = next_seq(conn, id, Some(at)).await?;
        members.push(add_member(conn, id, user, role, added_by, seq, at).await?);
    }
    let row = sqlx::query(concat!(
        "UPDATE conversations SET member_count = member_count + $1 WHERE conversation_id = $2 \
         RETURNING conversation_id, ",
        conversation_fields!()
    ))
    .bind(i64::try_from(members.len()).unwrap_or(i64::MAX))
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    let conversation = conversation(&row)?;

    let mut events = vec![events::conversation_event(
        id,
        created_seq,
        at,
        actor,
        events::conversation_created(&conversation),
    )];
    for member in &members {
        let kind = events::member_joined(member, JoinMethod::Created);
        events.push(events::conversation_event(
            id,
            member.joined_at_seq,
            at,
            actor,
            kind,
        ));
    }
    for member in &members {
        let user_seq = next_user_seq(conn, member.user_id).await?;
        // Only the creator's own event names the device that caused it.
        let device = (member.user_id == actor.user_id).then_some(actor.device_id);
        let kind = events::conversation_joined(&conversation, member.joined_at_seq);
        events.push(events::user_event(
            member.user_id,
            user_seq,
            at,
            device,
            kind,
        ));
    }
    Ok((conversation, events))
}

/// Inserts a current member who joined with `seq`, with a membership period from seq 1 (an
/// initial member sees the conversation from its ConversationCreated on).
async fn add_member(
    conn: &mut SqliteConnection,
    conversation: Uuid,
    user: Uuid,
    role: Role,
    added_by: Option<Uuid>,
    seq: i64,
    at: DateTime<Utc>,
) -> Result<Member, sqlx::Error> {
    let row = sqlx::query(concat!(
        "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_at_seq, \
         added_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING conversation_id, ",
        member_fields!()
    ))
    .bind(conversation.to_string())
    .bind(user.to_string())
    .bind(role.code())
    .bind(micros(at))
    .bind(seq)
    .bind(added_by.map(|u| u.to_string()))
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO member_periods (conversation_id, user_id, from_seq) VALUES ($1, $2, 1)",
    )
    .bind(conversation.to_string())
    .bind(user.to_string())
    .execute(conn)
    .await?;
    member(&row)
}

/// The conversation holding `key`.
async fn by_key(
    conn: &mut SqliteConnection,
    key: Key<'_>,
) -> Result<Option<Conversation>, sqlx::Error> {
    let (sql, key) = match key {
        Key::Direct(key) => (
            "SELECT conversation_id FROM conversations WHERE direct_key = $1",
            key,
        ),
        Key::Creation(key) => (
            "SELECT conversation_id FROM conversations WHERE creation_key = $1",
            key,
        ),
        Key::None => return Ok(None),
    };
    let id: Option<String> = sqlx::query_scalar(sql)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    match id.map(|id| Uuid::parse_str(&id)) {
        None => Ok(None),
        Some(Ok(id)) => conversation_by_id(conn, id).await,
        Some(Err(e)) => Err(super::decode_error(format!("conversation_id: {e}"))),
    }
}

/// The first of `users` (in their order) who is unknown or deleted: the one a refusal names.
pub(super) async fn first_unknown(
    conn: &mut SqliteConnection,
    users: &[Uuid],
) -> Result<Option<Uuid>, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT j.value FROM json_each($1) j WHERE j.value NOT IN \
           (SELECT user_id FROM known_users WHERE deleted_at IS NULL) \
         ORDER BY j.key LIMIT 1",
    )
    .bind(json_ids(users))
    .fetch_optional(conn)
    .await?;
    found.as_deref().map(parse_uuid).transpose()
}

/// The first of `others` (in their order) with a block between them and `user`, either way.
pub(super) async fn first_blocked(
    conn: &mut SqliteConnection,
    user: Uuid,
    others: &[Uuid],
) -> Result<Option<Uuid>, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT j.value FROM json_each($2) j WHERE EXISTS (SELECT 1 FROM blocks b \
           WHERE (b.blocker_id = $1 AND b.blocked_id = j.value) \
              OR (b.blocked_id = $1 AND b.blocker_id = j.value)) \
         ORDER BY j.key LIMIT 1",
    )
    .bind(user.to_string())
    .bind(json_ids(others))
    .fetch_optional(conn)
    .await?;
    found.as_deref().map(parse_uuid).transpose()
}
