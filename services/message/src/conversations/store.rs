//! Conversations written once for both backends: idempotent creation of DIRECT conversations
//! and of groups/channels (the conversation row with its final seq, the member rows and
//! membership periods, the members' user seqs, the events), and the refusals of unknown and
//! blocked members (the reads and the list are in `store_list.rs`, updates in `store_update.rs`).
//!
//! Idempotent creation inserts with `ON CONFLICT (key) DO NOTHING` on the unique key
//! (`direct_key`, `creation_key`): on PostgreSQL the later of two racing inserts waits for the
//! earlier transaction, inserts nothing and reads the winner's row; on SQLite the single
//! writer makes the look-up before the insert final, so the conflict branch never runs there.

use chrono::{DateTime, Utc};
use echo_bus::Event;
use echo_ids::{ConversationId, UserId};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1::JoinMethod;
use echo_store::{Tx, value_rows, with_tx};
use prost::Message as _;
use sqlx::AssertSqlSafe;

use super::events::conversation_created;
use crate::error::MessageError;
use crate::events::{conversation_event, conversation_joined, member_joined, user_event};
use crate::store::codec::{
    At, ConversationRow, Id, MemberRow, all_live, blocked_either, commit_with,
    conversation_columns, first_blocked, first_unknown, member_columns, next_user_seqs,
    order_writes, refuse,
};
use crate::store::{Actor, Conversation, Kind, Member, MessageStore, Role};

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

/// A GROUP or CHANNEL to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewConversation {
    /// The id to give it (if it is new).
    pub id: ConversationId,
    /// Group or channel.
    pub kind: Kind,
    /// 1-256 UTF-8 bytes, not blank.
    pub title: String,
    /// 0-2048 UTF-8 bytes.
    pub description: String,
    /// None when none.
    pub avatar: Option<Media>,
    /// Settings.
    pub only_admins_edit_info: bool,
    /// Settings.
    pub only_admins_add_members: bool,
    /// The other initial members (distinct, not the creator), who join as MEMBER.
    pub members: Vec<UserId>,
    /// The creator's idempotency key; a repeat returns the conversation it created.
    pub client_request_id: String,
}

/// The `direct_key` of a pair: the smaller id first, so both users compute the same.
pub fn direct_key(a: UserId, b: UserId) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("{low}:{high}")
}

/// The `creation_key` of a group or channel: the creator and their idempotency key.
pub fn creation_key(creator: UserId, client_request_id: &str) -> String {
    format!("{creator}:{client_request_id}")
}

/// A user joining a conversation being created.
struct Join {
    user_id: UserId,
    role: Role,
}

/// See [`crate::store::MessageStore::create_direct`].
async fn create_direct(
    store: &MessageStore,
    actor: Actor,
    peer: UserId,
    id: ConversationId,
    at: DateTime<Utc>,
) -> Result<(Conversation, bool), MessageError> {
    let mut tx = store.db.begin().await?;
    if !all_live(&mut tx, &[peer]).await? {
        return refuse(tx, MessageError::UserNotFound(Some(peer))).await;
    }
    // Checked for an existing conversation too: a block closes the pair's conversation.
    if blocked_either(&mut tx, actor.user_id, peer).await? {
        return refuse(tx, MessageError::Blocked(Some(peer))).await;
    }
    let key = direct_key(actor.user_id, peer);
    if let Some(existing) = by_key(&mut tx, BY_DIRECT_KEY, &key).await? {
        tx.rollback().await?;
        return Ok((existing, false));
    }
    // Before the first write: the users' user seqs follow the outbox order.
    order_writes(&mut tx, &[id], &[actor.user_id, peer]).await?;
    // ConversationCreated and the two MemberJoined: seqs 1-3.
    let created: Option<ConversationRow> = with_tx!(&mut tx, |c| {
        sqlx::query_as(concat!(
            "INSERT INTO conversations (conversation_id, kind, created_by, created_at, \
             direct_key, member_count, last_seq, last_activity_at) \
             VALUES ($1, $2, $3, $4, $5, 2, 3, $4) \
             ON CONFLICT (direct_key) DO NOTHING RETURNING ",
            conversation_columns!()
        ))
        .bind(Id(id.into()))
        .bind(Kind::Direct.code())
        .bind(Id(actor.user_id.into()))
        .bind(At(at))
        .bind(&key)
        .fetch_optional(c)
        .await
    })?;
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
    let created = Conversation::try_from(created)?;
    start(store, tx, actor, &created, &joins, at).await?;
    Ok((created, true))
}

/// See [`crate::store::MessageStore::create_conversation`].
async fn create_conversation(
    store: &MessageStore,
    actor: Actor,
    new: &NewConversation,
    at: DateTime<Utc>,
) -> Result<(Conversation, bool), MessageError> {
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
    let others: Vec<UserId> = joins[1..].iter().map(|joined| joined.user_id).collect();
    let mut tx = store.db.begin().await?;
    // The key first: a repeat answers what the first call created, whatever became of its
    // members since.
    if let Some(key) = &key
        && let Some(existing) = by_key(&mut tx, BY_CREATION_KEY, key).await?
    {
        tx.rollback().await?;
        return Ok((existing, false));
    }
    if let Some(unknown) = first_unknown(&mut tx, &others).await? {
        return refuse(tx, MessageError::UserNotFound(Some(unknown))).await;
    }
    if let Some(blocked) = first_blocked(&mut tx, actor.user_id, &others).await? {
        return refuse(tx, MessageError::Blocked(Some(blocked))).await;
    }
    let member_count = i32::try_from(joins.len())
        .map_err(|_| MessageError::LimitExceeded("conversation members"))?;
    // Before the first write: the members' user seqs follow the outbox order.
    let users: Vec<UserId> = joins.iter().map(|joined| joined.user_id).collect();
    order_writes(&mut tx, &[new.id], &users).await?;
    // ConversationCreated, then one MemberJoined per member.
    let last_seq = 1 + i64::from(member_count);
    let created: Option<ConversationRow> = with_tx!(&mut tx, |c| {
        sqlx::query_as(concat!(
            "INSERT INTO conversations (conversation_id, kind, title, description, avatar, \
             only_admins_edit_info, only_admins_add_members, created_by, created_at, \
             creation_key, member_count, last_seq, last_activity_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $9) \
             ON CONFLICT (creation_key) DO NOTHING RETURNING ",
            conversation_columns!()
        ))
        .bind(Id(new.id.into()))
        .bind(new.kind.code())
        .bind(&new.title)
        .bind(&new.description)
        .bind(new.avatar.as_ref().map(|avatar| avatar.encode_to_vec()))
        .bind(new.only_admins_edit_info)
        .bind(new.only_admins_add_members)
        .bind(Id(actor.user_id.into()))
        .bind(At(at))
        .bind(&key)
        .bind(member_count)
        .bind(last_seq)
        .fetch_optional(c)
        .await
    })?;
    let created = match (created, &key) {
        (Some(created), _) => created,
        (None, Some(key)) => return lost_race(tx, BY_CREATION_KEY, key).await,
        // NULL keys never conflict: nothing else can make the insert do nothing.
        (None, None) => return Err(sqlx::Error::RowNotFound.into()),
    };
    let created = Conversation::try_from(created)?;
    start(store, tx, actor, &created, &joins, at).await?;
    Ok((created, true))
}

/// The conversation whose unique key (`sql` says which) is `key`.
async fn by_key(
    tx: &mut Tx,
    sql: &'static str,
    key: &str,
) -> Result<Option<Conversation>, sqlx::Error> {
    let row: Option<ConversationRow> = with_tx!(tx, |c| {
        sqlx::query_as(sql).bind(key).fetch_optional(c).await
    })?;
    row.map(Conversation::try_from).transpose()
}

/// After an insert that found `key` taken by a transaction committed meanwhile: that one's
/// conversation (on PostgreSQL a new statement at READ COMMITTED sees it).
async fn lost_race(
    mut tx: Tx,
    sql: &'static str,
    key: &str,
) -> Result<(Conversation, bool), MessageError> {
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
    store: &MessageStore,
    mut tx: Tx,
    actor: Actor,
    created: &Conversation,
    joins: &[Join],
    at: DateTime<Utc>,
) -> Result<(), MessageError> {
    let members = insert_members(&mut tx, created.id, actor.user_id, joins, at).await?;
    let user_ids: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
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
    commit_with(&store.outbox, tx, &events).await
}

/// Inserts the member rows of `joins`, joining at seqs 2, 3, … in order, added by `creator`
/// (except the creator), each with a membership period from seq 1 (initial members see the
/// conversation from its ConversationCreated on). Returned in join order.
async fn insert_members(
    tx: &mut Tx,
    conversation: ConversationId,
    creator: UserId,
    joins: &[Join],
    at: DateTime<Utc>,
) -> Result<Vec<Member>, sqlx::Error> {
    // At most MAX_INITIAL_MEMBERS + 1 rows: one statement each, far under the bind limits.
    let sql = format!(
        concat!(
            "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_at_seq, \
             added_by) VALUES {} RETURNING ",
            member_columns!()
        ),
        value_rows(1, joins.len(), 6)
    );
    let rows: Vec<MemberRow> = with_tx!(&mut *tx, sql, |c| {
        let mut query = sqlx::query_as(AssertSqlSafe(sql));
        for (seq, join) in (2_i64..).zip(joins) {
            query = query
                .bind(Id(conversation.into()))
                .bind(Id(join.user_id.into()))
                .bind(join.role.code())
                .bind(At(at))
                .bind(seq)
                .bind((join.user_id != creator).then_some(Id(creator.into())));
        }
        query.fetch_all(c).await
    })?;
    let mut members = rows
        .into_iter()
        .map(Member::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    members.sort_by_key(|m| m.joined_at_seq);
    let sql = format!(
        "INSERT INTO member_periods (conversation_id, user_id, from_seq) VALUES {}",
        value_rows(1, joins.len(), 3)
    );
    with_tx!(tx, sql, |c| {
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for join in joins {
            query = query
                .bind(Id(conversation.into()))
                .bind(Id(join.user_id.into()))
                .bind(1_i64);
        }
        query.execute(c).await.map(|_| ())
    })?;
    Ok(members)
}

impl MessageStore {
    /// The DIRECT conversation of `actor` and `peer`, created (id `id`) if there is none, in
    /// one transaction, also under concurrent calls from both users: `UserNotFound` when
    /// `peer` is unknown or deleted; `Blocked` when either blocks the other (for an existing
    /// conversation too). Creation takes seqs 1-3 (ConversationCreated, MemberJoined for the
    /// actor, MemberJoined for the peer) and a user seq for each (ConversationJoined). True
    /// when created now.
    pub async fn create_direct(
        &self,
        actor: Actor,
        peer: UserId,
        id: ConversationId,
        at: DateTime<Utc>,
    ) -> Result<(Conversation, bool), MessageError> {
        create_direct(self, actor, peer, id, at).await
    }

    /// Creates a GROUP or CHANNEL with `actor` as OWNER and `new.members` as MEMBERs, or
    /// returns the one `actor` created before with the same `client_request_id` (false).
    /// The key is checked first, so a retry succeeds even if a block came since. `UserNotFound`
    /// when a member is unknown or deleted; `Blocked` when a block stands between a member and
    /// the actor (either direction). Events: ConversationCreated (seq 1), then MemberJoined per member (creator
    /// first), and ConversationJoined per member (user seqs).
    pub async fn create_conversation(
        &self,
        actor: Actor,
        new: &NewConversation,
        at: DateTime<Utc>,
    ) -> Result<(Conversation, bool), MessageError> {
        create_conversation(self, actor, new, at).await
    }
}
