//! What a send writes, once its gate and rules let it: the message with its seq and what it
//! counts in ([`store`]), and the batch's unread and mention counters ([`Tally`]). Both are
//! dialect-specific for speed (see each); the rules that decide a send are in `sending.rs`.

use echo_ids::{ConversationId, UserId};
use echo_store::{Tx, placeholders, value_rows};
use prost::Message as _;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::sending::SendRequest;
use crate::store::codec::{At, Id, MessageRow, message_columns};

/// The message columns a send writes.
macro_rules! insert_message {
    () => {
        "INSERT INTO messages (message_id, conversation_id, seq, sender_id, sender_device_id, \
         client_message_id, request_hash, content, body, reply_to_message_id, \
         thread_root_message_id, created_at, expires_at)"
    };
}

/// The write: the next seq (on PostgreSQL under the conversation's row lock, held to the
/// commit), the conversation's activity and latest message, the message, the thread root's
/// reply count and the mention rows (the members' counters once per batch, [`Tally`]). None,
/// and nothing but the seq taken, when the key turns out taken.
///
/// Dialect: PostgreSQL does it in ONE statement (data-modifying CTEs), so a send stays at two
/// round trips; SQLite has no writing CTEs, and its statements are in-process calls, so it
/// runs the same steps one statement each.
pub(super) async fn store(
    tx: &mut Tx,
    request: &SendRequest<'_>,
    mentioned: &[UserId],
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<MessageRow>, sqlx::Error> {
    let SendRequest { actor, new, at, .. } = *request;
    match tx {
        Tx::Postgres(tx) => {
            let mentioned: Vec<Uuid> = mentioned.iter().map(|&user| user.into()).collect();
            const STORE: &str = concat!(
                "WITH c AS (\
                       UPDATE conversations \
                       SET last_seq = last_seq + 1, last_activity_at = $12, last_message_id = $1 \
                       WHERE conversation_id = $2 RETURNING last_seq), \
                     ins AS (",
                insert_message!(),
                " SELECT $1, $2, c.last_seq, $3, $4, $5, $6, $7, $8, $9, $10, $12, $13 FROM c \
                       ON CONFLICT ON CONSTRAINT messages_idempotency DO NOTHING \
                       RETURNING ",
                message_columns!(),
                "), \
                     replied AS (\
                       UPDATE messages SET reply_count = reply_count + 1 \
                       WHERE message_id = $10 AND EXISTS (SELECT 1 FROM ins)), \
                     mentioned AS (\
                       INSERT INTO mentions (message_id, user_id, conversation_id, seq) \
                       SELECT ins.message_id, m, ins.conversation_id, ins.seq \
                       FROM ins, unnest($11::uuid[]) AS m) \
                     SELECT * FROM ins"
            );
            sqlx::query_as(STORE)
                .bind(Id(new.id.into()))
                .bind(Id(new.conversation_id.into()))
                .bind(Id(actor.user_id.into()))
                .bind(Id(actor.device_id.into()))
                .bind(&new.client_message_id)
                .bind(&new.request_hash[..])
                .bind(new.content.encode_to_vec())
                .bind(&new.content.text)
                .bind(new.reply_to_message_id.map(|id| Id(id.into())))
                .bind(new.thread_root_message_id.map(|id| Id(id.into())))
                .bind(&mentioned)
                .bind(At(at))
                .bind(expires_at.map(At))
                .fetch_optional(&mut **tx)
                .await
        }
        Tx::Sqlite(tx) => {
            let seq: i64 = sqlx::query_scalar(
                "UPDATE conversations \
                 SET last_seq = last_seq + 1, last_activity_at = $1, last_message_id = $2 \
                 WHERE conversation_id = $3 RETURNING last_seq",
            )
            .bind(At(at))
            .bind(Id(new.id.into()))
            .bind(Id(new.conversation_id.into()))
            .fetch_one(&mut **tx)
            .await?;
            const INSERT: &str = concat!(
                insert_message!(),
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (sender_device_id, client_message_id) DO NOTHING RETURNING ",
                message_columns!()
            );
            let Some(row) = sqlx::query_as::<_, MessageRow>(INSERT)
                .bind(Id(new.id.into()))
                .bind(Id(new.conversation_id.into()))
                .bind(seq)
                .bind(Id(actor.user_id.into()))
                .bind(Id(actor.device_id.into()))
                .bind(&new.client_message_id)
                .bind(&new.request_hash[..])
                .bind(new.content.encode_to_vec())
                .bind(&new.content.text)
                .bind(new.reply_to_message_id.map(|id| Id(id.into())))
                .bind(new.thread_root_message_id.map(|id| Id(id.into())))
                .bind(At(at))
                .bind(expires_at.map(At))
                .fetch_optional(&mut **tx)
                .await?
            else {
                return Ok(None);
            };
            if let Some(root) = new.thread_root_message_id {
                sqlx::query(
                    "UPDATE messages SET reply_count = reply_count + 1 WHERE message_id = $1",
                )
                .bind(Id(root.into()))
                .execute(&mut **tx)
                .await?;
            }
            if !mentioned.is_empty() {
                let sql = echo_store::sqlite_params(&format!(
                    "INSERT INTO mentions (message_id, user_id, conversation_id, seq) VALUES {}",
                    value_rows(1, mentioned.len(), 4)
                ));
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for user in mentioned {
                    query = query
                        .bind(Id(new.id.into()))
                        .bind(Id((*user).into()))
                        .bind(Id(new.conversation_id.into()))
                        .bind(seq);
                }
                query.execute(&mut **tx).await?;
            }
            Ok(Some(row))
        }
    }
}

/// What a batch's messages add to the other members' unread and mention counters, written
/// before the commit. (Membership cannot change in between: the batch holds its
/// conversations' write-order locks on PostgreSQL, which every join and leave takes too, and
/// the single writer on SQLite.)
#[derive(Default)]
pub(super) struct Tally {
    /// Conversation, sender and counted mentions of each message, in batch order.
    sent: Vec<(ConversationId, UserId, Vec<UserId>)>,
}

impl Tally {
    pub(super) fn add(
        &mut self,
        conversation: ConversationId,
        sender: UserId,
        mentioned: &[UserId],
    ) {
        self.sent.push((conversation, sender, mentioned.to_vec()));
    }

    /// Dialect: on PostgreSQL one set-based statement over arrays for the whole batch (a
    /// message into a group of 1,000 updates 1,000 member rows, and the batch's messages into
    /// one conversation then update them once, not once each, in one round trip); SQLite has
    /// no arrays, and its statements are in-process calls, so one UPDATE per message.
    pub(super) async fn count(&self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        if self.sent.is_empty() {
            return Ok(());
        }
        match tx {
            Tx::Postgres(tx) => {
                let conversations: Vec<Uuid> = self.sent.iter().map(|s| Uuid::from(s.0)).collect();
                let senders: Vec<Uuid> = self.sent.iter().map(|s| Uuid::from(s.1)).collect();
                let (mention_conversations, mentioned): (Vec<Uuid>, Vec<Uuid>) = self
                    .sent
                    .iter()
                    .flat_map(|(conversation, _, users)| {
                        users
                            .iter()
                            .map(|u| (Uuid::from(*conversation), Uuid::from(*u)))
                    })
                    .unzip();
                sqlx::query(
                    "WITH sent AS (\
                       SELECT * FROM unnest($1::uuid[], $2::uuid[]) \
                         AS s(conversation_id, sender_id)), \
                     unread AS (\
                       SELECT m.conversation_id, m.user_id, count(*) AS n \
                       FROM members m JOIN sent s \
                         ON s.conversation_id = m.conversation_id AND s.sender_id <> m.user_id \
                       WHERE m.left_at_seq IS NULL GROUP BY 1, 2), \
                     mentions AS (\
                       SELECT conversation_id, user_id, count(*) AS n \
                       FROM unnest($3::uuid[], $4::uuid[]) AS x(conversation_id, user_id) \
                       GROUP BY 1, 2) \
                     UPDATE members m SET unread_count = m.unread_count + u.n::int, \
                       mention_count = m.mention_count + COALESCE((SELECT x.n::int \
                         FROM mentions x \
                         WHERE x.conversation_id = m.conversation_id \
                           AND x.user_id = m.user_id), 0) \
                     FROM unread u \
                     WHERE m.conversation_id = u.conversation_id AND m.user_id = u.user_id",
                )
                .bind(&conversations)
                .bind(&senders)
                .bind(&mention_conversations)
                .bind(&mentioned)
                .execute(&mut **tx)
                .await?;
            }
            Tx::Sqlite(tx) => {
                for (conversation, sender, mentioned) in &self.sent {
                    // The mentioned first, so the parameters are numbered in text order.
                    let n = mentioned.len();
                    let mentions = if n == 0 {
                        "0".to_owned()
                    } else {
                        format!("(user_id IN ({}))", placeholders(1, n))
                    };
                    let sql = echo_store::sqlite_params(&format!(
                        "UPDATE members SET unread_count = unread_count + 1, \
                           mention_count = mention_count + {mentions} \
                         WHERE conversation_id = ${} AND user_id <> ${} AND left_at_seq IS NULL",
                        n + 1,
                        n + 2
                    ));
                    let mut query = sqlx::query(AssertSqlSafe(sql));
                    for user in mentioned {
                        query = query.bind(Id((*user).into()));
                    }
                    query
                        .bind(Id((*conversation).into()))
                        .bind(Id((*sender).into()))
                        .execute(&mut **tx)
                        .await?;
                }
            }
        }
        Ok(())
    }
}
