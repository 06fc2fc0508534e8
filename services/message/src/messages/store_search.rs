//! [`MessageStore`]: full-text search over what a reader may read, and the
//! replies of a thread. Reads only.
//!
//! Who may see what (ACTIVE, a current membership, after the join, not hidden for the reader),
//! the keyset paging and the decoding are written once (`visible_matches!`,
//! `search_page!`, `HitRow`). Only the full-text part is per dialect, because the engines
//! differ: PostgreSQL matches the `body_search` tsvector against one `phraseto_tsquery` per
//! phrase (configuration `echo_search`) ranked by `ts_rank` and cuts the snippet with
//! `ts_headline` in the same statement; SQLite matches the FTS5 table `message_search` with a
//! quoted-phrase query ranked by `-bm25`, and its `snippet()` only works in an FTS5 query
//! over the table, so it takes a second statement for the page's rows, in the same read
//! transaction.
//!
//! The index follows `messages.body` by itself (a generated column on PostgreSQL, triggers on
//! SQLite; see `migrations/*/message/0007_search.sql`): a send indexes the text, an edit
//! replaces it, and delete-for-everyone (body NULL) removes every term of it from the index
//! (FTS5 `secure-delete`), so no write path has anything to do for search.

use std::collections::HashMap;

use echo_ids::{ConversationId, MessageId, UserId};
use echo_store::{Database, sql_limit, with_db};

use super::search::{
    HIGHLIGHT_END, HIGHLIGHT_START, SearchHit, SearchPosition, SearchQuery, position_time,
};
use crate::error::MessageError;
use crate::store::Message;
use crate::store::MessageStore;
use crate::store::codec::{At, Id, MessageRow, decode_all, message_columns};

/// The matches reader `$1` may read, with their `score` (higher is better), from `$source`
/// (which names messages `m` and ends in its dialect's match condition): ACTIVE, only in
/// conversation `$3` when given, in a conversation the reader is a current member of with a
/// seq above their join, and not deleted for the reader alone.
macro_rules! visible_matches {
    ($extra:literal, $score:literal, $source:literal) => {
        concat!(
            "SELECT ",
            $extra,
            message_columns!(),
            ", ",
            $score,
            " AS score FROM ",
            $source,
            " AND m.deleted_at IS NULL AND ($3 IS NULL OR m.conversation_id = $3) \
              AND EXISTS (SELECT 1 FROM members mb \
                          WHERE mb.conversation_id = m.conversation_id AND mb.user_id = $1 \
                            AND mb.left_at_seq IS NULL AND mb.joined_at_seq < m.seq) \
              AND NOT EXISTS (SELECT 1 FROM hidden_messages h \
                              WHERE h.user_id = $1 AND h.message_id = m.message_id)"
        )
    };
}

/// One page of the matches in `$hits` (a subquery or CTE with `score`), best first, after the
/// keyset `($4, $5, $6)` (score, created_at, message_id; `$4` NULL for the first page); at
/// most `$7`.
macro_rules! search_page {
    ($hits:expr) => {
        concat!(
            "SELECT * FROM ",
            $hits,
            " WHERE $4 IS NULL OR score < $4 \
                OR (score = $4 AND (created_at, message_id) < ($5, $6)) \
             ORDER BY score DESC, created_at DESC, message_id DESC LIMIT $7"
        )
    };
}

/// PostgreSQL: `$2` holds one phrase per element (tokens joined by spaces), each turned into a
/// tsquery by `phraseto_tsquery` (which parses plain text, never tsquery syntax) and ANDed.
/// Rank and order are computed on every match, the headline (costly) only for the page.
const POSTGRES_SEARCH: &str = concat!(
    "WITH q AS ( \
       SELECT echo_tsquery_and(phraseto_tsquery('echo_search', p)) AS query \
       FROM unnest($2::text[]) AS p \
     ), hits AS (",
    visible_matches!(
        "body, ",
        "ts_rank(body_search, q.query)::float8",
        "q, messages m WHERE body_search @@ q.query"
    ),
    "), page AS (",
    search_page!("hits"),
    ") SELECT page.*, ts_headline('echo_search', coalesce(body, ''), q.query, $8) AS snippet \
     FROM page, q ORDER BY score DESC, created_at DESC, message_id DESC"
);

/// SQLite: `$2` is the FTS5 query (see [`fts_query`]); `score` is -bm25 (bm25 is
/// lower-is-better) so both dialects rank "higher is better". `doc` is the FTS5 rowid the
/// snippets are read by.
const SQLITE_SEARCH: &str = search_page!(concat!(
    "(",
    visible_matches!(
        "m.rowid AS doc, ",
        "-bm25(message_search)",
        "message_search JOIN messages m ON m.rowid = message_search.rowid \
         WHERE message_search MATCH $2"
    ),
    ") AS hits"
));

/// SQLite: the snippets of the rows `$2` (a JSON array of rowids) for the FTS5 query `$1`: up
/// to 24 tokens around the best match.
const SQLITE_SNIPPETS: &str = "SELECT rowid, snippet(message_search, 0, $3, $4, '…', 24) AS snippet \
     FROM message_search \
     WHERE message_search MATCH $1 AND rowid IN (SELECT value FROM json_each($2))";

/// A match as read on either backend: the message and its score.
#[derive(sqlx::FromRow)]
struct HitRow {
    #[sqlx(flatten)]
    message: MessageRow,
    score: f64,
}

/// A PostgreSQL match: with its headline.
#[derive(sqlx::FromRow)]
struct HeadlinedRow {
    #[sqlx(flatten)]
    hit: HitRow,
    snippet: String,
}

/// A SQLite match: with its FTS5 rowid, for the snippets.
#[derive(sqlx::FromRow)]
struct DocRow {
    doc: i64,
    #[sqlx(flatten)]
    hit: HitRow,
}

impl MessageStore {
    /// The messages `reader` may read that match every phrase of `query`, best first: by
    /// rank descending (PostgreSQL `ts_rank`, SQLite `-bm25`), then created_at and id
    /// descending; after `after` (a keyset on those three); at most `limit`.
    ///
    /// A message is returned only when it is ACTIVE (`deleted_at` NULL), in a conversation
    /// `reader` is a current member of (`left_at_seq` NULL; only `conversation` when given),
    /// with a seq above their `joined_at_seq`, and not deleted for `reader` alone
    /// (`hidden_messages`). Each hit carries a snippet of its text around the match with the
    /// matches between `crate::messages::search::HIGHLIGHT_START` and `HIGHLIGHT_END` (the caller
    /// clips it).
    pub async fn search(
        &self,
        reader: UserId,
        query: &SearchQuery,
        conversation: Option<ConversationId>,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, MessageError> {
        let (score, created_at, message_id) = (
            after.map(|p| p.rank),
            after.map(|p| At(position_time(p))),
            after.map(|p| Id(p.message_id.into())),
        );
        let (reader, conversation, limit) = (
            Id(reader.into()),
            conversation.map(|c| Id(c.into())),
            sql_limit(limit),
        );
        // Dialect: the full-text query, its ranking and its snippets (see the module doc).
        let hits: Vec<(HitRow, String)> = match &self.db {
            Database::Postgres(db) => {
                let phrases: Vec<String> = query.phrases().iter().map(|p| p.join(" ")).collect();
                // About 200 characters of context around the best-covering match.
                let headline = format!(
                    "StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, \
                     MaxWords=30, MinWords=12, ShortWord=2, HighlightAll=false"
                );
                let rows: Vec<HeadlinedRow> = sqlx::query_as(POSTGRES_SEARCH)
                    .bind(reader)
                    .bind(&phrases)
                    .bind(conversation)
                    .bind(score)
                    .bind(created_at)
                    .bind(message_id)
                    .bind(limit)
                    .bind(headline)
                    .fetch_all(&db.pool)
                    .await?;
                rows.into_iter().map(|row| (row.hit, row.snippet)).collect()
            }
            Database::Sqlite(db) => {
                let fts = fts_query(query);
                // One read transaction: the snippets come from the same snapshot as the page.
                let mut tx = db.reader.begin().await?;
                let rows: Vec<DocRow> = sqlx::query_as(SQLITE_SEARCH)
                    .bind(reader)
                    .bind(&fts)
                    .bind(conversation)
                    .bind(score)
                    .bind(created_at)
                    .bind(message_id)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut snippets: HashMap<i64, String> = HashMap::new();
                if !rows.is_empty() {
                    let docs: Vec<i64> = rows.iter().map(|row| row.doc).collect();
                    let found: Vec<(i64, String)> = sqlx::query_as(SQLITE_SNIPPETS)
                        .bind(&fts)
                        .bind(json_ints(&docs))
                        .bind(HIGHLIGHT_START.to_string())
                        .bind(HIGHLIGHT_END.to_string())
                        .fetch_all(&mut *tx)
                        .await?;
                    snippets.extend(found);
                }
                tx.commit().await?;
                rows.into_iter()
                    .map(|row| {
                        let snippet = snippets.remove(&row.doc).unwrap_or_default();
                        (row.hit, snippet)
                    })
                    .collect()
            }
        };
        hits.into_iter()
            .map(|(hit, snippet)| {
                Ok(SearchHit {
                    message: Message::try_from(hit.message)?,
                    rank: hit.score,
                    snippet,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(MessageError::from)
    }

    /// The replies in the thread of `root` in `conversation` with a seq above `after`, oldest
    /// first, tombstones included; at most `limit`. Who may read them is decided above.
    pub async fn thread_replies(
        &self,
        conversation: ConversationId,
        root: MessageId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Message>, MessageError> {
        let rows: Vec<MessageRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                message_columns!(),
                " FROM messages \
                 WHERE thread_root_message_id = $1 AND conversation_id = $2 AND seq > $3 \
                 ORDER BY seq LIMIT $4"
            ))
            .bind(Id(root.into()))
            .bind(Id(conversation.into()))
            .bind(after)
            .bind(sql_limit(limit))
            .fetch_all(c)
            .await?
        });
        Ok(decode_all(rows)?)
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
