//! Position order is seq order: live delivery follows the outbox in commit-safe position order
//! (`(tx_id, id)` on PostgreSQL, `id` on SQLite) and must meet every conversation's and every
//! user's events in seq order, 1, 2, 3, … On PostgreSQL that holds only because each writing
//! transaction takes its write-order locks before its first write (its xid): without them, a
//! transaction that got its xid first but its seq second lands before the seq it follows.
//! Over 400 lines as one piece: the writers, their shared rooms and the one order check form
//! a single experiment.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use echo_ids::{ConversationId, MessageId, UserId};
use echo_message::error::MessageError;
use echo_message::members::new_code;
use echo_message::store::{
    Actor, ConversationUpdate, Edit, Edited, Kind, Message, MessageStore, NewInvite, SendRequest,
    Sent, SettingsChange,
};
use echo_proto::echo::message::v1::MessageContent;
use echo_store::Database;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::common::*;

/// Every outbox row in position order: the order a stream reads the log in.
async fn in_position_order(env: &Env) -> Vec<OutboxRow> {
    let rows: Vec<(String, String, String, Vec<u8>)> = match &env.test_db.db {
        Database::Postgres(db) => {
            sqlx::query_as(
                "SELECT CAST(event_id AS TEXT), subject, event_type, payload FROM outbox \
                 ORDER BY tx_id, id",
            )
            .fetch_all(&db.pool)
            .await
        }
        Database::Sqlite(db) => {
            sqlx::query_as("SELECT event_id, subject, event_type, payload FROM outbox ORDER BY id")
                .fetch_all(&db.writer)
                .await
        }
    }
    .expect("outbox in position order");
    rows.into_iter()
        .map(|(event_id, subject, event_type, payload)| OutboxRow {
            event_id,
            subject,
            event_type,
            payload,
        })
        .collect()
}

/// Read in position order, each conversation's seqs and each user's seqs go 1, 2, 3, … with
/// no step back and no gap.
async fn assert_position_order(env: &Env) {
    let rows = in_position_order(env).await;
    let mut conversations: HashMap<String, i64> = HashMap::new();
    let mut users: HashMap<String, i64> = HashMap::new();
    for (position, row) in rows.iter().enumerate() {
        let (stream, seq, last) = if row.event_type == CONVERSATION_EVENT.1 {
            let event = conversation_event(row);
            let last = conversations
                .entry(event.conversation_id.clone())
                .or_insert(0);
            (
                format!("conversation {}", event.conversation_id),
                event.seq,
                last,
            )
        } else {
            let event = user_event(row);
            let last = users.entry(event.user_id.clone()).or_insert(0);
            (format!("user {}", event.user_id), event.seq, last)
        };
        assert_eq!(
            seq,
            *last + 1,
            "{stream}: seq {seq} follows seq {last} at position {position} of {}",
            rows.len()
        );
        *last = seq;
    }
}

/// One conversation the writers share: its id, its members, a message to react to.
#[derive(Clone)]
struct Room {
    id: ConversationId,
    members: Vec<UserId>,
    target: MessageId,
    /// Every room of the test (for batches across conversations).
    all: Vec<ConversationId>,
}

async fn room(env: &Env, id: ConversationId, members: Vec<UserId>) -> Room {
    let target = env.say(device(members[0]), id, "react here").await.id;
    Room {
        id,
        members,
        target,
        all: Vec::new(),
    }
}

/// The writers that change membership, and where.
#[derive(Clone)]
struct Churn {
    /// The owner of `wide`.
    owner: Actor,
    /// The conversation they come and go in.
    wide: ConversationId,
    /// An invite to `wide`.
    code: String,
    /// Added to `wide` and removed again.
    added: UserId,
    /// Joins `wide` by invite and leaves again.
    joiner: UserId,
    /// A conversation both stay in, changing their settings there.
    side: ConversationId,
}

/// How many writes each writer makes.
const OPS: usize = 5;

/// Writes of every kind that takes a conversation seq or a user seq in one conversation:
/// sends followed by an edit or a deletion (for everyone or for me), reactions added and taken
/// back, read markers and settings.
async fn write_mix(store: Arc<MessageStore>, actor: Actor, room: Room, task: usize) {
    for op in 0..OPS {
        let at = now();
        match (task + op) % 5 {
            0 if task.is_multiple_of(2) => {
                let sent = send_in_batch(&store, actor, &room, task, op).await;
                follow_up(&store, actor, &sent, task + op).await;
            }
            0 => {
                let new = text_message(room.id, &format!("task {task} op {op}"));
                let sent = match store.send(actor, &new, at).await.expect("send") {
                    Sent::Created(sent) => sent,
                    repeated => panic!("expected a new message, got {repeated:?}"),
                };
                follow_up(&store, actor, &sent, task + op).await;
            }
            1 => {
                let marked = store.mark_read(actor, room.id, i64::MAX, at).await;
                marked.map(drop).expect("mark read");
            }
            2 => {
                let added = store
                    .add_reaction(actor, room.id, room.target, "👍", at)
                    .await;
                added.map(drop).expect("add reaction");
            }
            3 => {
                let removed = store
                    .remove_reaction(actor, room.id, room.target, "👍", at)
                    .await;
                removed.map(drop).expect("remove reaction");
            }
            _ => mute(&store, actor, room.id).await,
        }
    }
}

/// Group commit in the mix: one batch with two sends to `room` around one to each room of the
/// test (refused where `actor` is no member), so batches lock several conversations at once
/// while single writers race them. The first message of the batch.
async fn send_in_batch(
    store: &MessageStore,
    actor: Actor,
    room: &Room,
    task: usize,
    op: usize,
) -> Message {
    let mut news = vec![text_message(room.id, &format!("task {task} op {op} a"))];
    news.extend(room.all.iter().map(|&id| text_message(id, "across")));
    news.push(text_message(room.id, &format!("task {task} op {op} b")));
    let at = now();
    let requests: Vec<SendRequest<'_>> = news
        .iter()
        .map(|new| SendRequest {
            actor,
            new,
            at,
            trace_parent: None,
        })
        .collect();
    let outcomes = store.send_batch(&requests).await.expect("batch commits");
    let mut created = outcomes.into_iter().map(|outcome| match outcome {
        Ok(Sent::Created(message)) => Some(message),
        Err(MessageError::ConversationNotFound) => None,
        other => panic!("expected a new message or a refusal, got {other:?}"),
    });
    let first = created.next().flatten().expect("the first send is stored");
    assert!(
        created.last().flatten().is_some(),
        "the last send is stored"
    );
    first
}

/// An edit, a deletion for everyone or a deletion for the sender alone of `sent`.
async fn follow_up(store: &MessageStore, actor: Actor, sent: &Message, n: usize) {
    let (conversation, at) = (sent.conversation_id, now());
    match n % 3 {
        0 => {
            let edit = Edit {
                conversation_id: conversation,
                message_id: sent.id,
                base_edit_count: 0,
                content: MessageContent {
                    text: "edited".to_owned(),
                    ..MessageContent::default()
                },
                mentioned: Vec::new(),
            };
            let edited = store.edit(actor, &edit, at, Duration::hours(1)).await;
            assert!(matches!(edited, Ok(Edited::Changed { .. })), "{edited:?}");
        }
        1 => {
            let deleted = store
                .delete_for_everyone(actor, conversation, sent.id, at)
                .await;
            assert!(deleted.expect("delete for everyone"));
        }
        _ => {
            let deleted = store.delete_for_me(actor, conversation, sent.id, at).await;
            assert!(deleted.expect("delete for me"));
        }
    }
}

/// Mutes `conversation` for `actor` (a new time each call: always a change, always an event).
async fn mute(store: &MessageStore, actor: Actor, conversation: ConversationId) {
    let at = now();
    let change = SettingsChange {
        mute_until: Some(Some(at + Duration::hours(1))),
        ..SettingsChange::default()
    };
    let updated = store
        .update_settings(actor, conversation, &change, at)
        .await;
    updated.map(drop).expect("update settings");
}

/// Membership changes (their user seqs race the same users' settings elsewhere), creations
/// (user seqs of every initial member) and conversation updates. Racing churners find each
/// other's work done: adding a member, removing a non-member and joining again are no-ops,
/// leaving as a non-member is refused.
async fn churn(store: Arc<MessageStore>, cast: Churn, task: usize) {
    let (added, joiner) = (device(cast.added), device(cast.joiner));
    for op in 0..OPS {
        let at = now();
        match (task + op) % 4 {
            0 => {
                let joining = [cast.added];
                let joined = store.add_members(cast.owner, cast.wide, &joining, at);
                joined.await.expect("add member");
                let removed = store.remove_member(cast.owner, cast.wide, cast.added, now());
                removed.await.expect("remove member");
            }
            1 => {
                let joined = store.join_by_invite(joiner, &cast.code, at).await;
                joined.expect("join by invite");
                match store.leave(joiner, cast.wide, now()).await {
                    Ok(_) | Err(MessageError::ConversationNotFound) => {}
                    Err(other) => panic!("leave: {other:?}"),
                }
            }
            2 => {
                let new = new_group(Kind::Group, &[cast.joiner, cast.owner.user_id]);
                store
                    .create_conversation(added, &new, at)
                    .await
                    .expect("create");
                let update = ConversationUpdate {
                    title: Some(format!("task {task} op {op}")),
                    ..ConversationUpdate::default()
                };
                let updated = store.update_conversation(cast.owner, cast.wide, &update, at);
                updated.await.expect("update conversation");
            }
            _ => {
                mute(&store, added, cast.side).await;
                mute(&store, joiner, cast.side).await;
            }
        }
    }
}

/// Forty-eight writers at once, several rounds, in three conversations sharing their members
/// (two users are in all three, so their read markers and settings race across conversations),
/// a sixth of them changing membership and creating conversations: after each round the whole
/// log, read in position order, holds every conversation's and every user's seqs in order.
pub async fn position_order_is_seq_order(env: &Env) {
    const ROUNDS: usize = 3;
    const TASKS: usize = 48;
    let [a, b, c, d, e, f, g] = env.users().await;
    let owner = device(a);
    let wide = env.group(owner, &[b, c, d, e]).await.id;
    let narrow = env.group(device(b), &[a, c]).await.id;
    let direct = env.direct(owner, b).await.id;
    let rooms = [
        room(env, wide, vec![a, b, c, d, e]).await,
        room(env, narrow, vec![b, a, c]).await,
        room(env, direct, vec![a, b]).await,
    ];
    let rooms = rooms.map(|room| Room {
        all: vec![wide, narrow, direct],
        ..room
    });
    let invite = NewInvite {
        id: Uuid::now_v7(),
        conversation_id: wide,
        code: new_code(),
        expires_at: None,
        max_uses: 0,
    };
    env.store
        .create_invite(owner, &invite, now())
        .await
        .unwrap();
    let cast = Churn {
        owner,
        wide,
        code: invite.code,
        added: f,
        joiner: g,
        side: env.group(owner, &[f, g]).await.id,
    };
    for round in 0..ROUNDS {
        let mut tasks = JoinSet::new();
        for task in 0..TASKS {
            if task % 6 == 5 {
                tasks.spawn(churn(env.store.clone(), cast.clone(), task + round));
                continue;
            }
            let room = rooms[task % rooms.len()].clone();
            let user = room.members[(task / rooms.len() + round) % room.members.len()];
            tasks.spawn(write_mix(env.store.clone(), device(user), room, task));
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("writer");
        }
        assert_position_order(env).await;
    }
}

/// A transaction held open while later ones commit: ada deletes a message for herself in
/// `slow` and her write then waits for a slow transaction (one that inserted the same hidden
/// row and has not ended; on SQLite, one holding the writer), having already taken its place in
/// the log (on PostgreSQL: its xid, assigned by the insert before the wait). Meanwhile ada
/// moves her read marker in `fast`. Whatever order the two take ada's user seqs in, the log in
/// position order must hold them in order.
pub async fn slow_writer_keeps_position_order(env: &Env) {
    let [ada, bea] = env.users().await;
    let slow = env.group(device(bea), &[ada]).await.id;
    let fast = env.group(device(bea), &[ada]).await.id;
    let hidden = env.say(device(bea), slow, "to hide").await;
    env.say(device(bea), fast, "unread").await;

    let held = hold(env, ada, &hidden).await;
    let actor = device(ada);
    let store = env.store.clone();
    let slow_write =
        tokio::spawn(async move { store.delete_for_me(actor, slow, hidden.id, now()).await });
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert!(!slow_write.is_finished(), "the slow write did not wait");
    let store = env.store.clone();
    let fast_write =
        tokio::spawn(async move { store.mark_read(actor, fast, i64::MAX, now()).await });
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    held.release().await;
    let deleted = slow_write.await.expect("task").expect("delete for me");
    assert!(deleted);
    let marked = fast_write.await.expect("task").expect("mark read");
    assert!(marked.moved);
    assert_position_order(env).await;
}

/// A transaction of the test's own, standing in for a slow writer, rolled back on release.
enum Held {
    /// Has inserted `user`'s hidden row for the message (uncommitted).
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    /// Holds the single writer.
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// Inserts `user`'s hidden row for `message` in a transaction left open (PostgreSQL), or holds
/// the writer (SQLite).
async fn hold(env: &Env, user: UserId, message: &Message) -> Held {
    match &env.test_db.db {
        Database::Postgres(db) => {
            let mut tx = db.pool.begin().await.expect("begin");
            sqlx::query(
                "INSERT INTO hidden_messages (user_id, message_id, conversation_id, seq, \
                 hidden_at) VALUES ($1, $2, $3, $4, now())",
            )
            .bind(user.as_uuid())
            .bind(message.id.as_uuid())
            .bind(message.conversation_id.as_uuid())
            .bind(message.seq)
            .execute(&mut *tx)
            .await
            .expect("insert hidden row");
            Held::Postgres(tx)
        }
        Database::Sqlite(db) => Held::Sqlite(
            db.writer
                .begin_with("BEGIN IMMEDIATE")
                .await
                .expect("hold the writer"),
        ),
    }
}

impl Held {
    async fn release(self) {
        match self {
            Held::Postgres(tx) => tx.rollback().await,
            Held::Sqlite(tx) => tx.rollback().await,
        }
        .expect("release");
    }
}
