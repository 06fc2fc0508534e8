//! Conversations: idempotent creation (direct and group/channel) and the member's list.

use chrono::{DateTime, Utc};
use echo_bus::{Event, Outbox};
use echo_proto::echo::message::v1::JoinMethod;
use prost::Message as _;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{
    all_live, blocked_either, commit_with, conversation, member, next_user_seqs, order_writes,
    refuse, sql_limit,
};
use crate::events::{
    conversation_created, conversation_event, conversation_joined, member_joined, user_event,
};
use crate::store::{
    Actor, Conversation, ConversationPosition, Kind, ListFilter, Member, NewConversation, Role,
    StoreError, creation_key, direct_key,
};

const BY_DIRECT_KEY: &str = concat!(
    "SELECT ",
    conversation_columns!(),
    " FROM conversations WHERE direct_key = $1"
);

const BY_CREATION_KEY: &str = concat!(
    "SELECT ",
    conversation_columns!(),
    " FROM conversations WHERE creation_key = $1"
);

/// A user joining a conversation being created.
struct Join {
    user_id: Uuid,
    role: Role,
}

/// See [`crate::store::MessageStore::create_direct`].
pub(super) async fn create_direct(
    pool: &PgPool,
    outbox: &Outbox,
    actor: Actor,
    peer: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<(Conversation, bool), StoreError> {
    let mut tx = pool.begin().await?;
    if !all_live(&mut tx, &[peer]).await? {
        return refuse(tx, StoreError::UserNotFound(Some(peer))).await;
    }
    // Checked for an existing conversation too: a block closes the pair's conversation.
    if blocked_either(&mut tx, actor.user_id, peer).await? {
        return refuse(tx, StoreError::Blocked(Some(peer))).await;
    }
    let key = direct_key(actor.user_id, peer);
    if let Some(existing) = by_key(&mut tx, BY_DIRECT_KEY, &key).await? {
        tx.rollback().await?;
        return Ok((existing, false));
    }
    // Before the first write: the users' user seqs follow the outbox order.
    order_writes(&mut tx, Some(id), &[actor.user_id, peer]).await?;
    // Both users creating it at once: the later insert waits on the `direct_key` index for the
    // earlier transaction, then inserts nothing and reads the committed row.
    let created = sqlx::query(concat!(
        "INSERT INTO conversations (conversation_id, kind, created_by, created_at, direct_key, \
         member_count, last_seq, last_activity_at) VALUES ($1, $2, $3, $4, $5, 2, 3, $4) \
         ON CONFLICT (direct_key) DO NOTHING RETURNING ",
        conversation_columns!()
    ))
    .bind(id)
    .bind(Kind::Direct.code())
    .bind(actor.user_id)
    .bind(at)
    .bind(&key)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(created) = created else {
        return lost_race(tx, BY_DIRECT_KEY, &key).await;
    };
    let joins = [
        Join {
            user_id: actor.user_id,
            role: Role::Member,
        },
        Join {
            user_id: peer,
            role: Role::Member,
        },
    ];
    let created = conversation(&created)?;
    start(tx, outbox, actor, &created, &joins, at).await?;
    Ok((created, true))
}

/// See [`crate::store::MessageStore::create_conversation`].
pub(super) async fn create_conversation(
    pool: &PgPool,
    outbox: &Outbox,
    actor: Actor,
    new: &NewConversation,
    at: DateTime<Utc>,
) -> Result<(Conversation, bool), StoreError> {
    // An empty key is no key: every such call creates.
    let key = (!new.client_request_id.is_empty())
        .then(|| creation_key(actor.user_id, &new.client_request_id));
    let mut joins = vec![Join {
        user_id: actor.user_id,
        role: Role::Owner,
    }];
    for &user_id in &new.members {
        if joins.iter().all(|joined| joined.user_id != user_id) {
            joins.push(Join {
                user_id,
                role: Role::Member,
            });
        }
    }
    let others: Vec<Uuid> = joins[1..].iter().map(|joined| joined.user_id).collect();
    let mut tx = pool.begin().await?;
    // The key first: a repeat answers what the first call created, whatever became of its
    // members since.
    if let Some(key) = &key
        && let Some(existing) = by_key(&mut tx, BY_CREATION_KEY, key).await?
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
    let member_count = i32::try_from(joins.len())
        .map_err(|_| StoreError::LimitExceeded("conversation members"))?;
    // Before the first write: the members' user seqs follow the outbox order.
    let users: Vec<Uuid> = joins.iter().map(|joined| joined.user_id).collect();
    order_writes(&mut tx, Some(new.id), &users).await?;
    // ConversationCreated, then one MemberJoined per member.
    let last_seq = 1 + i64::from(member_count);
    let created = sqlx::query(concat!(
        "INSERT INTO conversations (conversation_id, kind, title, description, avatar, \
         only_admins_edit_info, only_admins_add_members, created_by, created_at, creation_key, \
         member_count, last_seq, last_activity_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $9) \
         ON CONFLICT (creation_key) DO NOTHING RETURNING ",
        conversation_columns!()
    ))
    .bind(new.id)
    .bind(new.kind.code())
    .bind(&new.title)
    .bind(&new.description)
    .bind(new.avatar.as_ref().map(|avatar| avatar.encode_to_vec()))
    .bind(new.only_admins_edit_info)
    .bind(new.only_admins_add_members)
    .bind(actor.user_id)
    .bind(at)
    .bind(&key)
    .bind(member_count)
    .bind(last_seq)
    .fetch_optional(&mut *tx)
    .await?;
    let created = match (created, &key) {
        (Some(created), _) => created,
        (None, Some(key)) => return lost_race(tx, BY_CREATION_KEY, key).await,
        // NULL keys never conflict: nothing else can make the insert do nothing.
        (None, None) => return Err(sqlx::Error::RowNotFound.into()),
    };
    let created = conversation(&created)?;
    start(tx, outbox, actor, &created, &joins, at).await?;
    Ok((created, true))
}

/// See [`crate::store::MessageStore::list_conversations`].
pub(super) async fn list(
    pool: &PgPool,
    user: Uuid,
    filter: ListFilter,
    after: Option<&ConversationPosition>,
    limit: usize,
) -> Result<Vec<(Conversation, Member)>, StoreError> {
    let after = match after {
        None => None,
        Some(position) => {
            let at = DateTime::from_timestamp_micros(position.last_activity_micros).ok_or_else(
                || {
                    sqlx::Error::InvalidArgument(format!(
                        "conversation position {} is out of range",
                        position.last_activity_micros
                    ))
                },
            )?;
            Some((at, position.conversation_id))
        }
    };
    let rows = sqlx::query(concat!(
        "SELECT ",
        conversation_columns!(),
        ", ",
        member_state_columns!(),
        " FROM members JOIN conversations USING (conversation_id) \
         WHERE user_id = $1 AND left_at_seq IS NULL \
           AND ($2::boolean IS NULL OR archived = $2) \
           AND (NOT $3 OR pinned_at IS NOT NULL) \
           AND ($4::timestamptz IS NULL OR (last_activity_at, conversation_id) < ($4, $5)) \
         ORDER BY last_activity_at DESC, conversation_id DESC LIMIT $6"
    ))
    .bind(user)
    .bind(filter.archived)
    .bind(filter.pinned_only)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(sql_limit(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Ok((conversation(row)?, member(row)?)))
        .collect::<Result<_, sqlx::Error>>()?)
}

/// The conversation whose unique key (`sql` says which) is `key`.
async fn by_key(
    conn: &mut PgConnection,
    sql: &'static str,
    key: &str,
) -> Result<Option<Conversation>, sqlx::Error> {
    let row = sqlx::query(sql).bind(key).fetch_optional(conn).await?;
    row.as_ref().map(conversation).transpose()
}

/// After an insert that found `key` taken by a transaction committed meanwhile: that one's
/// conversation (a new statement at READ COMMITTED sees it).
async fn lost_race(
    mut tx: Transaction<'static, Postgres>,
    sql: &'static str,
    key: &str,
) -> Result<(Conversation, bool), StoreError> {
    let existing = by_key(&mut tx, sql, key)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    tx.rollback().await?;
    Ok((existing, false))
}

/// Completes the creation of `created` (already inserted with its final `last_seq` and
/// `member_count`): the member rows of `joins` (seqs 2.. in order), each member's next user
/// seq, ConversationCreated, a MemberJoined per member and a ConversationJoined per member;
/// then commits.
async fn start(
    mut tx: Transaction<'static, Postgres>,
    outbox: &Outbox,
    actor: Actor,
    created: &Conversation,
    joins: &[Join],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let members = insert_members(&mut tx, created.id, actor.user_id, joins, at).await?;
    let user_ids: Vec<Uuid> = members.iter().map(|m| m.user_id).collect();
    let user_seqs = next_user_seqs(&mut tx, &user_ids).await?;
    let mut events: Vec<Event> = Vec::with_capacity(1 + 2 * members.len());
    events.push(conversation_event(
        created.id,
        1,
        at,
        actor,
        conversation_created(created),
    ));
    for joined in &members {
        events.push(conversation_event(
            created.id,
            joined.joined_at_seq,
            at,
            actor,
            member_joined(joined, JoinMethod::Created),
        ));
    }
    for joined in &members {
        let seq = *user_seqs
            .get(&joined.user_id)
            .ok_or(sqlx::Error::RowNotFound)?;
        // Only the creator's own devices caused their ConversationJoined.
        let device = (joined.user_id == actor.user_id).then_some(actor.device_id);
        events.push(user_event(
            joined.user_id,
            seq,
            at,
            device,
            conversation_joined(created, joined.joined_at_seq),
        ));
    }
    commit_with(outbox, tx, &events).await
}

/// Inserts the member rows of `joins`, joining at seqs 2, 3, … in order, added by `creator`
/// (except the creator). Returned in join order.
async fn insert_members(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    creator: Uuid,
    joins: &[Join],
    at: DateTime<Utc>,
) -> Result<Vec<Member>, sqlx::Error> {
    let users: Vec<Uuid> = joins.iter().map(|j| j.user_id).collect();
    let roles: Vec<i16> = joins.iter().map(|j| j.role.code()).collect();
    let rows = sqlx::query(concat!(
        "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_at_seq, added_by) \
         SELECT $1, j.user_id, j.role, $2, 1 + j.n, NULLIF($3::uuid, j.user_id) \
         FROM unnest($4::uuid[], $5::smallint[]) WITH ORDINALITY AS j(user_id, role, n) \
         RETURNING ",
        member_columns!()
    ))
    .bind(conversation_id)
    .bind(at)
    .bind(creator)
    .bind(&users)
    .bind(&roles)
    .fetch_all(&mut *conn)
    .await?;
    let mut members = rows.iter().map(member).collect::<Result<Vec<_>, _>>()?;
    members.sort_by_key(|m| m.joined_at_seq);
    // Initial members see the conversation from its ConversationCreated (seq 1) on.
    sqlx::query(
        "INSERT INTO member_periods (conversation_id, user_id, from_seq) \
         SELECT $1, u, 1 FROM unnest($2::uuid[]) AS u",
    )
    .bind(conversation_id)
    .bind(&users)
    .execute(conn)
    .await?;
    Ok(members)
}

/// The first of `users` (in their order) who is unknown or deleted: the one a refusal names.
pub(super) async fn first_unknown(
    conn: &mut PgConnection,
    users: &[Uuid],
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT j.user_id FROM unnest($1::uuid[]) WITH ORDINALITY AS j(user_id, n) \
         WHERE NOT EXISTS (SELECT 1 FROM known_users k \
                           WHERE k.user_id = j.user_id AND k.deleted_at IS NULL) \
         ORDER BY j.n LIMIT 1",
    )
    .bind(users)
    .fetch_optional(conn)
    .await
}

/// The first of `others` (in their order) with a block between them and `user`, either way.
pub(super) async fn first_blocked(
    conn: &mut PgConnection,
    user: Uuid,
    others: &[Uuid],
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT j.user_id FROM unnest($1::uuid[]) WITH ORDINALITY AS j(user_id, n) \
         WHERE EXISTS (SELECT 1 FROM blocks b \
                       WHERE (b.blocker_id = j.user_id AND b.blocked_id = $2) \
                          OR (b.blocker_id = $2 AND b.blocked_id = j.user_id)) \
         ORDER BY j.n LIMIT 1",
    )
    .bind(others)
    .bind(user)
    .fetch_optional(conn)
    .await
}
