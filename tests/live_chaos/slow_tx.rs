//! Slow transactions on PostgreSQL, so the commit-order bug cannot hide: (a) a row lock on a
//! user's sequence held while that user's MarkRead / settings calls are in flight, so an Echo
//! transaction that already has its xid commits late, after later ones; (b) a bare xid held
//! open, which holds back every reader's commit-safe horizon; (c) the same as (a) for a
//! conversation's row while a member sends to it, so conversation events commit late too.

use std::sync::Arc;
use std::time::Duration;

use echo_config::Target;
use echo_store::Database;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::actors::archive;
use crate::common::messages::text;
use crate::world::{GROUPS, USERS, World};

/// How long each slow transaction stays open.
const HOLD: Duration = Duration::from_millis(300);

/// The message service's pool (its `search_path` is the service's schema); `None` on SQLite.
fn message_pool(world: &World) -> Option<sqlx::PgPool> {
    world
        .mesh
        .mesh
        .databases
        .iter()
        .find_map(|(target, db)| match (target, db) {
            (Target::Message, Database::Postgres(pg)) => Some(pg.pool.clone()),
            _ => None,
        })
}

/// How many slow transactions of each kind ran.
#[derive(Debug, Default)]
pub struct Held {
    /// (a) user sequence rows locked under MarkRead / settings calls.
    pub user_rows: usize,
    /// (b) bare xids held.
    pub xids: usize,
    /// (c) conversation rows locked under a send.
    pub conversation_rows: usize,
}

/// Open slow transactions until `until`.
pub async fn slow_transactions(world: Arc<World>, seed: u64, until: Instant) -> Held {
    let mut held = Held::default();
    let Some(pool) = message_pool(&world) else {
        return held;
    };
    let mut rng = StdRng::seed_from_u64(seed);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..250))).await;
        match rng.random_range(0..10) {
            0..4 => {
                held.user_rows += usize::from(hold_user_sequence(&world, &pool, &mut rng).await)
            }
            4..7 => {
                hold_xid(&pool).await;
                held.xids += 1;
            }
            _ => {
                held.conversation_rows +=
                    usize::from(hold_conversation(&world, &pool, &mut rng).await);
            }
        }
    }
    held
}

/// (a): lock one member's `user_sequences` row, start their MarkRead and settings change
/// (which block on it with their xids assigned), hold, commit, and let them finish.
async fn hold_user_sequence(world: &Arc<World>, pool: &sqlx::PgPool, rng: &mut StdRng) -> bool {
    let Some((user, conversation, seq)) = victim(world, rng) else {
        return false;
    };
    let user_id: uuid::Uuid = world.users[user].tokens.user_id.parse().expect("uuid");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SELECT last_seq FROM user_sequences WHERE user_id = $1 FOR UPDATE")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .expect("lock the user's sequence");
    let mut reader = world.mesh.message_as(&world.users[user]);
    let mut settings = reader.clone();
    let read = echo_proto::echo::message::v1::MarkReadRequest {
        conversation_id: conversation.clone(),
        last_read_seq: seq,
    };
    let archived = archive(conversation, rng.random_bool(0.5));
    let calls = tokio::spawn(async move {
        let (read, settings) = tokio::join!(
            reader.mark_read(read),
            settings.update_member_settings(archived)
        );
        (read.map(drop), settings.map(drop))
    });
    tokio::time::sleep(HOLD).await;
    tx.commit().await.expect("commit");
    let (read, settings) = calls.await.expect("calls");
    world.check("mark read behind a lock", read);
    world.check("settings behind a lock", settings);
    true
}

/// (c): lock a group's row, start a member's send (which blocks on it with its xid
/// assigned, after taking its advisory locks), hold, commit, and let it finish.
async fn hold_conversation(world: &Arc<World>, pool: &sqlx::PgPool, rng: &mut StdRng) -> bool {
    let Some((user, conversation, _)) = victim(world, rng) else {
        return false;
    };
    let conversation_id: uuid::Uuid = conversation.parse().expect("uuid");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SELECT last_seq FROM conversations WHERE conversation_id = $1 FOR UPDATE")
        .bind(conversation_id)
        .fetch_optional(&mut *tx)
        .await
        .expect("lock the conversation");
    let mut sender = world.mesh.message_as(&world.users[user]);
    let key = uuid::Uuid::now_v7().to_string();
    let request = echo_proto::echo::message::v1::SendMessageRequest {
        conversation_id: conversation,
        client_message_id: key,
        content: Some(text(&format!("u{user} sent behind a lock"))),
        ..Default::default()
    };
    let send = tokio::spawn(async move { sender.send_message(request).await.map(drop) });
    tokio::time::sleep(HOLD).await;
    tx.commit().await.expect("commit");
    world.check("send behind a lock", send.await.expect("send"));
    true
}

/// (b): a transaction that only takes an xid and sits on it.
async fn hold_xid(pool: &sqlx::PgPool) {
    let mut tx = pool.begin().await.expect("begin");
    let _: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *tx)
        .await
        .expect("take an xid");
    tokio::time::sleep(HOLD).await;
    tx.commit().await.expect("commit");
}

/// A member (not an owner), a group they are believed to be in, and its newest known seq.
fn victim(world: &World, rng: &mut StdRng) -> Option<(usize, String, i64)> {
    let beliefs = world.beliefs.lock().expect("beliefs");
    let user = rng.random_range(GROUPS..USERS);
    let groups: Vec<usize> = (0..GROUPS)
        .filter(|g| beliefs.members[*g].contains(&user))
        .collect();
    let group = *groups.choose(rng)?;
    let seq = beliefs.messages[group].last()?.1.seq;
    Some((user, world.groups[group].conversation_id.clone(), seq))
}
