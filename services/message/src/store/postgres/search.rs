//! [`SearchStore`] on PostgreSQL: the `body_search` tsvector (configuration `echo_search`:
//! English stemming, no stop words; see the migration) and its GIN index.

use async_trait::async_trait;
use uuid::Uuid;

use super::{PostgresMessageStore, message, sql_limit};
use crate::search::{
    HIGHLIGHT_END, HIGHLIGHT_START, SearchHit, SearchPosition, SearchQuery, position_time,
};
use crate::store::{Message, SearchStore, StoreError};
use sqlx::Row;

/// The search: `$2` holds one phrase per element (tokens joined by spaces), each turned into
/// a tsquery by `phraseto_tsquery` (which parses plain text, never tsquery syntax) and ANDed.
/// Rank and order are computed on every match, the headline (costly) only for the page.
const SEARCH: &str = concat!(
    "WITH q AS ( \
       SELECT echo_tsquery_and(phraseto_tsquery('echo_search', p)) AS query \
       FROM unnest($2::text[]) AS p \
     ), hits AS ( \
       SELECT ",
    message_columns!(),
    ", body, ts_rank(body_search, q.query)::float8 AS rank \
       FROM q, messages m \
       WHERE body_search @@ q.query AND deleted_at IS NULL \
         AND ($3::uuid IS NULL OR conversation_id = $3) \
         AND EXISTS (SELECT 1 FROM members mb \
                     WHERE mb.conversation_id = m.conversation_id AND mb.user_id = $1 \
                       AND mb.left_at_seq IS NULL AND mb.joined_at_seq < m.seq) \
         AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                         WHERE h.user_id = $1 AND h.message_id = m.message_id) \
     ), page AS ( \
       SELECT * FROM hits \
       WHERE $4::float8 IS NULL OR rank < $4 \
          OR (rank = $4 AND (created_at, message_id) < ($5::timestamptz, $6::uuid)) \
       ORDER BY rank DESC, created_at DESC, message_id DESC LIMIT $7 \
     ) \
     SELECT page.*, ts_headline('echo_search', coalesce(body, ''), q.query, $8) AS snippet \
     FROM page, q ORDER BY rank DESC, created_at DESC, message_id DESC"
);

#[async_trait]
impl SearchStore for PostgresMessageStore {
    async fn search(
        &self,
        reader: Uuid,
        query: &SearchQuery,
        conversation: Option<Uuid>,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let phrases: Vec<String> = query.phrases().iter().map(|p| p.join(" ")).collect();
        // About 200 characters of context around the best-covering match.
        let headline = format!(
            "StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, \
             MaxWords=30, MinWords=12, ShortWord=2, HighlightAll=false"
        );
        let rows = sqlx::query(SEARCH)
            .bind(reader)
            .bind(&phrases)
            .bind(conversation)
            .bind(after.map(|p| p.rank))
            .bind(after.map(position_time))
            .bind(after.map(|p| p.message_id))
            .bind(sql_limit(limit))
            .bind(headline)
            .fetch_all(&self.db.pool)
            .await?;
        let hit = |row: &sqlx::postgres::PgRow| -> Result<SearchHit, sqlx::Error> {
            Ok(SearchHit {
                message: message(row)?,
                rank: row.try_get("rank")?,
                snippet: row.try_get("snippet")?,
            })
        };
        Ok(rows.iter().map(hit).collect::<Result<_, _>>()?)
    }

    async fn thread_replies(
        &self,
        conversation: Uuid,
        root: Uuid,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages \
             WHERE thread_root_message_id = $1 AND conversation_id = $2 AND seq > $3 \
             ORDER BY seq LIMIT $4"
        ))
        .bind(root)
        .bind(conversation)
        .bind(after)
        .bind(sql_limit(limit))
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
    }
}
