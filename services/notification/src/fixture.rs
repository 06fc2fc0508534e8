//! A benchmark fixture (issue 15: "the 100,000-member figure needs members seeded directly in
//! the database"): members of a conversation, each with one FCM token, written straight into
//! notification's projections. Signing up and joining 100,000 users through the API would take
//! the bench hours; the pipeline reads these rows exactly as it reads the ones its consumers
//! write. The service never calls this.

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, UserId};
use echo_store::{Database, value_rows, with_db};
use uuid::Uuid;

use crate::store::millis;
use crate::tokens::store::digest;

/// Members per INSERT (8 values each for a token, under SQLite's 32,766 bound values).
const ROWS: usize = 2_000;

/// Makes each of `members` — (user, FCM token) — a member of `conversation` since seq 0 with
/// that token on a device of its own.
pub async fn seed_members(
    db: &Database,
    conversation: ConversationId,
    members: &[(UserId, String)],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    for chunk in members.chunks(ROWS) {
        let members_sql = format!(
            "INSERT INTO notify_members (conversation_id, user_id, joined_seq) VALUES {}",
            value_rows(1, chunk.len(), 3)
        );
        let tokens_sql = format!(
            "INSERT INTO push_tokens (push_token_id, user_id, device_id, platform, token, \
               token_sha256, created_at_ms, updated_at_ms) VALUES {}",
            value_rows(1, chunk.len(), 8)
        );
        with_db!(db, write, members_sql, |c| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(members_sql.as_str()));
            for (user, _) in chunk {
                query = query
                    .bind(Uuid::from(conversation))
                    .bind(Uuid::from(*user))
                    .bind(0_i64);
            }
            query.execute(c).await?;
        });
        with_db!(db, write, tokens_sql, |c| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(tokens_sql.as_str()));
            for (user, token) in chunk {
                query = query
                    .bind(Uuid::now_v7())
                    .bind(Uuid::from(*user))
                    .bind(Uuid::now_v7())
                    .bind(crate::tokens::Platform::Fcm.code())
                    .bind(token)
                    .bind(digest(token))
                    .bind(millis(now))
                    .bind(millis(now));
            }
            query.execute(c).await?;
        });
    }
    // As after any bulk load: fresh planner statistics (the same statement in both dialects).
    // Without them PostgreSQL guesses that an IN list of 128 users matches most of a table
    // it has not analysed yet, and scans all of it for each batch the dispatcher reads.
    with_db!(db, write, |c| {
        sqlx::query("ANALYZE").execute(c).await?;
    });
    Ok(())
}
