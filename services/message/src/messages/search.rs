//! Full-text search over what a member may read, and thread views.
//!
//! A query is parsed here into phrases of plain tokens (runs of letters and digits); the
//! stores build their backend's query from those tokens only (every token quoted for FTS5,
//! `phraseto_tsquery` per phrase on PostgreSQL), so no user text ever reaches a query parser
//! as syntax: words are ANDed, "quoted phrases" match as phrases, and nothing else is an
//! operator. Which messages a search may return is decided by the store in its one query
//! (current membership, history from the join on, ACTIVE, not deleted for the reader); the
//! ranking is relevance, then newest first.

use chrono::{DateTime, Utc};
use echo_ids::{ConversationId, MessageId, UserId};
use echo_runtime::{Page, PageSize, Violation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::conversations::Conversations;
use crate::error::MessageError;
use crate::store::{Actor, Message};

/// Longest query, in UTF-8 bytes.
pub const MAX_QUERY_BYTES: usize = 256;
/// Search result pages.
pub const SEARCH_PAGE: PageSize = PageSize {
    default: 20,
    max: 100,
};
/// Thread reply pages.
pub const THREAD_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};
/// Searches per user: plenty for a person typing, a brake on scripts scanning the index
/// (every search is a full-text query over all the caller's conversations).
pub const SEARCH: echo_cache::Rule =
    echo_cache::Rule::per("message.search", 60, std::time::Duration::from_secs(60));
/// Longest snippet served, in characters (markers and ellipses aside).
pub const MAX_SNIPPET_CHARS: usize = 200;
/// Opens a highlighted match in a snippet (private use, never in the proto's text rules).
pub const HIGHLIGHT_START: char = '\u{E000}';
/// Closes a highlighted match.
pub const HIGHLIGHT_END: char = '\u{E001}';

/// A parsed query: what must all match, each a phrase of one or more tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchQuery {
    text: String,
    phrases: Vec<Vec<String>>,
}

impl SearchQuery {
    /// Parses `input` (1 to [`MAX_QUERY_BYTES`] bytes): text between double quotes is one
    /// phrase; every other whitespace-separated word is one too (its tokens adjacent, so
    /// `e-mail` matches "e mail"); an unclosed quote is ignored. Tokens are the runs of
    /// letters and digits; everything else separates them. The error says why it is refused.
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.trim().is_empty() {
            return Err("is required".into());
        }
        if input.len() > MAX_QUERY_BYTES {
            return Err(format!("must be at most {MAX_QUERY_BYTES} bytes"));
        }
        let quotes = input.matches('"').count();
        let mut phrases = Vec::new();
        for (i, part) in input.split('"').enumerate() {
            // Odd parts are inside quotes, but the part after an unclosed quote is not.
            let unclosed = quotes % 2 == 1 && i == quotes;
            let inside = i % 2 == 1 && !unclosed;
            if inside {
                phrases.push(tokens(part));
            } else {
                phrases.extend(part.split_whitespace().map(tokens));
            }
        }
        phrases.retain(|phrase| !phrase.is_empty());
        phrases.dedup();
        if phrases.is_empty() {
            return Err("needs a word (letters or digits)".into());
        }
        Ok(SearchQuery {
            text: input.to_owned(),
            phrases,
        })
    }

    /// The phrases, each a non-empty list of tokens of letters and digits only.
    pub fn phrases(&self) -> &[Vec<String>] {
        &self.phrases
    }

    /// What a page token of this query in `conversation` carries, so that it serves no other.
    fn scope(&self, conversation: Option<ConversationId>) -> String {
        let mut hash = Sha256::new();
        hash.update(self.text.as_bytes());
        hash.update(conversation.map_or([0; 16], |id| id.as_uuid().into_bytes()));
        hash.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The runs of letters and digits in `text`.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Where a search page continues: after this hit (hits are ordered by rank descending, then
/// created_at and message id descending). `scope` binds the token to its query and
/// conversation filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchPosition {
    /// [`SearchQuery::scope`] of the query the token was issued for.
    pub scope: String,
    /// The last hit's rank (higher is better).
    pub rank: f64,
    /// The last hit's creation time, unix microseconds.
    pub created_micros: i64,
    /// The last hit's id.
    pub message_id: MessageId,
}

/// One match as the store finds it.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    /// The message (ACTIVE, visible to the reader).
    pub message: Message,
    /// Relevance, higher is better, comparable only within one query.
    pub rank: f64,
    /// The text around the match, matches between [`HIGHLIGHT_START`] and [`HIGHLIGHT_END`].
    pub snippet: String,
}

/// Where a thread page continues: after this reply of this root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadPosition {
    /// The thread's root.
    pub root_message_id: MessageId,
    /// The last reply served.
    pub seq: i64,
}

/// One page of a thread.
#[derive(Clone, Debug, PartialEq)]
pub struct Thread {
    /// The root (possibly a tombstone).
    pub root: Message,
    /// Replies, oldest first.
    pub replies: Vec<Message>,
    /// The next page's token; empty on the last.
    pub next_page_token: String,
}

impl Conversations {
    /// One page of the messages `actor` may read that match `query`, ranked, with snippets;
    /// only in `conversation` when given (which the caller must be a member of).
    pub async fn search(
        &self,
        actor: Actor,
        query: &SearchQuery,
        conversation: Option<ConversationId>,
        page: &Page<SearchPosition>,
    ) -> Result<(Vec<SearchHit>, String), MessageError> {
        self.limits
            .take(&[(SEARCH, &actor.user_id.to_string())])
            .await
            .map_err(MessageError::RateLimited)?;
        if let Some(conversation) = conversation {
            self.current_member(conversation, actor.user_id).await?;
        }
        let scope = query.scope(conversation);
        if page.after.as_ref().is_some_and(|p| p.scope != scope) {
            return Err(foreign_token("belongs to another query or conversation"));
        }
        let hits = self
            .store
            .search(
                actor.user_id,
                query,
                conversation,
                page.after.as_ref(),
                page.fetch_limit(),
            )
            .await?;
        let (mut hits, token) = page.finish(hits, |hit| SearchPosition {
            scope: scope.clone(),
            rank: hit.rank,
            created_micros: hit.message.created_at.timestamp_micros(),
            message_id: hit.message.id,
        });
        // A message whose time is up is not found, even before the sweep erases it (the page
        // may then come back short; the token still continues after it).
        let now = chrono::Utc::now();
        hits.retain(|hit| !hit.message.is_expired(now));
        for hit in &mut hits {
            hit.snippet = clip(&hit.snippet, MAX_SNIPPET_CHARS);
        }
        Ok((hits, token))
    }

    /// One page of the thread of `root` in `conversation`: the root must be a top-level
    /// message the caller may see (from their join on), replies come oldest first.
    pub async fn thread(
        &self,
        caller: UserId,
        conversation: ConversationId,
        root: MessageId,
        page: &Page<ThreadPosition>,
    ) -> Result<Thread, MessageError> {
        let member = self.current_member(conversation, caller).await?;
        let root = self
            .store
            .message(conversation, root)
            .await?
            .filter(|m| m.seq > member.joined_at_seq && m.thread_root_message_id.is_none())
            .ok_or(MessageError::MessageNotFound)?;
        if page
            .after
            .as_ref()
            .is_some_and(|p| p.root_message_id != root.id)
        {
            return Err(foreign_token("belongs to another thread"));
        }
        // Replies come after their root, which the caller may see: all of them are visible.
        let after = page.after.as_ref().map_or(root.seq, |p| p.seq);
        let replies = self
            .store
            .thread_replies(conversation, root.id, after, page.fetch_limit())
            .await?;
        let (replies, next_page_token) = page.finish(replies, |m| ThreadPosition {
            root_message_id: root.id,
            seq: m.seq,
        });
        Ok(Thread {
            root,
            replies,
            next_page_token,
        })
    }
}

fn foreign_token(why: &str) -> MessageError {
    MessageError::Invalid(vec![Violation::new("page_token", why)])
}

/// `snippet` cut to about `max` characters around its first highlighted match, with "…"
/// where text was cut and every highlight still closed.
pub fn clip(snippet: &str, max: usize) -> String {
    let chars: Vec<char> = snippet.chars().collect();
    let shown = |c: &&char| **c != HIGHLIGHT_START && **c != HIGHLIGHT_END;
    if chars.iter().filter(shown).count() <= max {
        return snippet.to_owned();
    }
    let first = chars
        .iter()
        .position(|c| *c == HIGHLIGHT_START)
        .unwrap_or(0);
    // Some context before the first match, the rest after it.
    let mut start = first.saturating_sub(max / 4);
    while start > 0 && !chars[start - 1].is_whitespace() && first - start < max / 2 {
        start -= 1;
    }
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let (mut taken, mut open) = (0, false);
    let mut end = start;
    while end < chars.len() && taken < max {
        let c = chars[end];
        match c {
            HIGHLIGHT_START => open = true,
            HIGHLIGHT_END => open = false,
            _ => taken += 1,
        }
        out.push(c);
        end += 1;
    }
    if open {
        out.push(HIGHLIGHT_END);
    }
    if end < chars.len() {
        out.push('…');
    }
    out
}

/// Micros since the epoch of a position, as a time.
pub fn position_time(position: &SearchPosition) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(position.created_micros).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrases(input: &str) -> Vec<Vec<String>> {
        SearchQuery::parse(input).expect("valid").phrases
    }

    #[test]
    fn words_phrases_and_no_operators() {
        assert_eq!(phrases("hello  world"), [["hello"], ["world"]]);
        assert_eq!(
            phrases(r#"say "big red dog" now"#),
            vec![vec!["say"], vec!["big", "red", "dog"], vec!["now"]]
        );
        assert_eq!(phrases("e-mail"), [["e", "mail"]]);
        // Operators of either backend are plain words or separators.
        assert_eq!(
            phrases("a OR b* -c NEAR(d) 'e' & !f | g:*"),
            vec![
                vec!["a"],
                vec!["OR"],
                vec!["b"],
                vec!["c"],
                vec!["NEAR", "d"],
                vec!["e"],
                vec!["f"],
                vec!["g"]
            ]
        );
        assert_eq!(
            phrases(r#"unclosed "quote here"#),
            [["unclosed"], ["quote"], ["here"]]
        );
        assert_eq!(phrases("café naïve 東京"), [["café"], ["naïve"], ["東京"]]);
    }

    #[test]
    fn refusals() {
        assert!(SearchQuery::parse("").is_err());
        assert!(SearchQuery::parse(" \t\n").is_err());
        assert!(SearchQuery::parse(r#"" " !!"#).is_err());
        assert!(SearchQuery::parse(&"a".repeat(MAX_QUERY_BYTES)).is_ok());
        assert!(SearchQuery::parse(&"a".repeat(MAX_QUERY_BYTES + 1)).is_err());
        // Bytes, not characters.
        assert!(SearchQuery::parse(&"é".repeat(MAX_QUERY_BYTES / 2 + 1)).is_err());
    }

    #[test]
    fn scopes_differ_by_query_and_conversation() {
        let a = SearchQuery::parse("hello").unwrap();
        let b = SearchQuery::parse("hello world").unwrap();
        let c = ConversationId::new_v7();
        assert_ne!(a.scope(None), b.scope(None));
        assert_ne!(a.scope(None), a.scope(Some(c)));
        assert_eq!(a.scope(Some(c)), a.scope(Some(c)));
    }

    #[test]
    fn clipping_keeps_the_match_and_closes_highlights() {
        assert_eq!(
            clip("short \u{E000}hit\u{E001}", 200),
            "short \u{E000}hit\u{E001}"
        );
        let long = format!(
            "{} \u{E000}needle\u{E001} {}",
            "x ".repeat(300),
            "y ".repeat(300)
        );
        let clipped = clip(&long, MAX_SNIPPET_CHARS);
        assert!(clipped.contains("\u{E000}needle\u{E001}"));
        assert!(clipped.starts_with('…') && clipped.ends_with('…'));
        let shown = clipped
            .chars()
            .filter(|c| *c != HIGHLIGHT_START && *c != HIGHLIGHT_END);
        assert!(shown.count() <= MAX_SNIPPET_CHARS + 2);
        let cut = clip(&format!("\u{E000}{}\u{E001}", "z".repeat(300)), 10);
        assert_eq!(cut, format!("\u{E000}{}\u{E001}…", "z".repeat(10)));
    }
}
