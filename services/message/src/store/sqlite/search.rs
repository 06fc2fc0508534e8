//! [`SearchStore`] on SQLite: the FTS5 index `message_search` over messages(body) (porter
//! stemming over unicode61, diacritics folded; see the migration).

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::{SqliteMessageStore, message, micros, sql_limit};
use crate::search::{
    HIGHLIGHT_END, HIGHLIGHT_START, SearchHit, SearchPosition, SearchQuery, position_time,
};
use crate::store::{Message, SearchStore, StoreError};

/// The page of matches `$1` may read for the FTS5 query `$2`, best first. `score` is -bm25
/// (bm25 is lower-is-better) so both stores rank "higher is better".
const SEARCH: &str = concat!(
    "SELECT * FROM ( \
       SELECT m.rowid AS doc, ",
    message_columns!(),
    ", -bm25(message_search) AS score \
       FROM message_search JOIN messages m ON m.rowid = message_search.rowid \
       WHERE message_search MATCH $2 AND m.deleted_at IS NULL \
         AND ($3 IS NULL OR m.conversation_id = $3) \
         AND EXISTS (SELECT 1 FROM members mb \
                     WHERE mb.conversation_id = m.conversation_id AND mb.user_id = $1 \
                       AND mb.left_at_seq IS NULL AND mb.joined_at_seq < m.seq) \
         AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                         WHERE h.user_id = $1 AND h.message_id = m.message_id) \
     ) \
     WHERE $4 IS NULL OR score < $4 OR (score = $4 AND (created_at, message_id) < ($5, $6)) \
     ORDER BY score DESC, created_at DESC, message_id DESC LIMIT $7"
);

/// The snippets of the rows `$2` (a JSON array of rowids) for the FTS5 query `$1`: up to 24
/// tokens around the best match.
const SNIPPETS: &str = "SELECT rowid, snippet(message_search, 0, $3, $4, '…', 24) AS snippet \
     FROM message_search \
     WHERE message_search MATCH $1 AND rowid IN (SELECT value FROM json_each($2))";

#[async_trait]
impl SearchStore for SqliteMessageStore {
    async fn search(
        &self,
        reader: Uuid,
        query: &SearchQuery,
        conversation: Option<Uuid>,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let fts = fts_query(query);
        // One read transaction: the snippets come from the same snapshot as the page.
        let mut tx = self.db.reader.begin().await?;
        let rows = sqlx::query(SEARCH)
            .bind(reader.to_string())
            .bind(&fts)
            .bind(conversation.map(|c| c.to_string()))
            .bind(after.map(|p| p.rank))
            .bind(after.map(|p| micros(position_time(p))))
            .bind(after.map(|p| p.message_id.to_string()))
            .bind(sql_limit(limit))
            .fetch_all(&mut *tx)
            .await?;
        let docs: Vec<i64> = rows
            .iter()
            .map(|row| row.try_get("doc"))
            .collect::<Result<_, _>>()?;
        let mut snippets: HashMap<i64, String> = HashMap::new();
        if !docs.is_empty() {
            let ids = json_ints(&docs);
            let found = sqlx::query(SNIPPETS)
                .bind(&fts)
                .bind(ids)
                .bind(HIGHLIGHT_START.to_string())
                .bind(HIGHLIGHT_END.to_string())
                .fetch_all(&mut *tx)
                .await?;
            for row in &found {
                snippets.insert(row.try_get("rowid")?, row.try_get("snippet")?);
            }
        }
        tx.commit().await?;
        let mut hits = Vec::with_capacity(rows.len());
        for row in &rows {
            let doc: i64 = row.try_get("doc")?;
            hits.push(SearchHit {
                message: message(row)?,
                rank: row.try_get("score")?,
                snippet: snippets.remove(&doc).unwrap_or_default(),
            });
        }
        Ok(hits)
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
        .bind(root.to_string())
        .bind(conversation.to_string())
        .bind(after)
        .bind(sql_limit(limit))
        .fetch_all(&self.db.reader)
        .await?;
        Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
    }
}

/// The FTS5 query for `query`: every phrase as a quoted string (so that no token is ever read
/// as an operator, column filter or prefix mark), ANDed.
fn fts_query(query: &SearchQuery) -> String {
    query
        .phrases()
        .iter()
        .map(|phrase| format!("\"{}\"", phrase.join(" ").replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `[1,2,3]`.
fn json_ints(values: &[i64]) -> String {
    let items: Vec<String> = values.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(","))
}
