//! Search and threads: stemming, phrase and AND semantics with no operators, who may find
//! what (membership, join, leave, deletion for one or for everyone), ranking and paging, the
//! index forgetting deleted text everywhere, and thread windows.
//! Over 400 lines as one piece: the cases share one corpus-building vocabulary (hits, found,
//! join_now) and together cover the search contract.

use echo_ids::{ConversationId, MessageId, UserId};
use echo_message::messages::search::{SearchHit, SearchPosition, SearchQuery};
use echo_message::store::{Actor, Message};
use echo_store::Database;
use sqlx::AssertSqlSafe;

use crate::common::*;

/// Every hit of `query` for `reader` (one big page).
async fn hits(
    env: &Env,
    reader: UserId,
    query: &str,
    conversation: Option<ConversationId>,
) -> Vec<SearchHit> {
    let query = SearchQuery::parse(query).expect("valid query");
    env.store
        .search(reader, &query, conversation, None, 1000)
        .await
        .expect("search")
}

/// The ids `query` finds for `reader`, best first.
async fn found(env: &Env, reader: UserId, query: &str) -> Vec<MessageId> {
    ids(&hits(env, reader, query, None).await)
}

fn ids(hits: &[SearchHit]) -> Vec<MessageId> {
    hits.iter().map(|hit| hit.message.id).collect()
}

/// `ids` sorted, to compare sets.
fn set(mut ids: Vec<MessageId>) -> Vec<MessageId> {
    ids.sort();
    ids
}

/// `user` becomes a member of `conversation` at its current last seq (behind the store's back:
/// members are added by another part of the store).
async fn join_now(env: &Env, conversation: ConversationId, user: UserId) {
    let joined_at_seq = env.conversation(conversation).await.last_seq;
    let added = env
        .exec(
            "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_at_seq) \
             VALUES ($1, $2, 3, $3, $4)",
            &[
                Val::Id(conversation.into()),
                Val::Id(user.into()),
                Val::Time(Some(now())),
                Val::Int(joined_at_seq),
            ],
        )
        .await;
    assert_eq!(added, 1);
}

/// Deletes `message` for everyone the way DeleteMessage does to the row.
async fn delete_for_everyone(env: &Env, message: &Message) {
    let deleted = env
        .exec(
            "UPDATE messages SET body = NULL, content = NULL, deleted_at = $1 \
             WHERE message_id = $2",
            &[Val::Time(Some(now())), Val::Id(message.id.into())],
        )
        .await;
    assert_eq!(deleted, 1);
}

/// Words, stems and phrases: every word must match (stemmed), quoted phrases in order, and
/// nothing is an operator. Both backends agree on all of these.
async fn stemming_phrases_and_all_words(env: &Env) {
    let [owner] = env.users().await;
    let me = device(owner);
    let group = env.group(me, &[]).await;
    let running = env
        .say(
            me,
            group.id,
            "The runners were running quickly through the park",
        )
        .await;
    let fox = env
        .say(me, group.id, "A quick brown fox jumps over the lazy dog")
        .await;
    let bread = env.say(me, group.id, "brown bread and lazy mornings").await;
    let reversed = env.say(me, group.id, "dog lazy, brown").await;
    let cafe = env.say(me, group.id, "Un café, s'il vous plaît").await;
    let mail = env.say(me, group.id, "send me an e-mail or call").await;

    // Stemming: other forms of a word find it.
    assert_eq!(found(env, owner, "run").await, [running.id]);
    assert_eq!(found(env, owner, "RUNS").await, [running.id]);
    assert_eq!(found(env, owner, "jumping").await, [fox.id]);
    // Every word must match, in any order.
    assert_eq!(
        set(found(env, owner, "lazy brown").await),
        set(vec![fox.id, bread.id, reversed.id])
    );
    assert_eq!(found(env, owner, "lazy bread").await, [bread.id]);
    assert!(found(env, owner, "fox bread").await.is_empty());
    // Phrases match in order only.
    assert_eq!(found(env, owner, r#""lazy dog""#).await, [fox.id]);
    assert_eq!(found(env, owner, r#""brown fox" lazy"#).await, [fox.id]);
    assert!(
        found(env, owner, r#""dog lazy brown fox""#)
            .await
            .is_empty()
    );
    // No stop words: short common words are searchable, in phrases too.
    assert_eq!(
        set(found(env, owner, "the").await),
        set(vec![running.id, fox.id])
    );
    assert_eq!(found(env, owner, r#""over the lazy""#).await, [fox.id]);
    // Hyphenated words match as the phrase of their parts.
    assert_eq!(found(env, owner, "e-mail").await, [mail.id]);
    assert_eq!(found(env, owner, "café").await, [cafe.id]);
    // Operators of either backend are words or separators: OR must match as a word, "-" is
    // no NOT, "*" no prefix, NEAR no group, ":" no column filter, "&" "|" "!" nothing.
    assert_eq!(found(env, owner, "mail OR").await, [mail.id]);
    assert!(found(env, owner, "lazy OR fox").await.is_empty());
    assert_eq!(found(env, owner, "lazy -bread").await, [bread.id]);
    assert!(found(env, owner, "bro*").await.is_empty());
    assert!(found(env, owner, "NEAR(lazy dog)").await.is_empty());
    assert_eq!(found(env, owner, "body:fox").await, Vec::<MessageId>::new());
    assert_eq!(
        found(env, owner, "fox & !dog | (cat)").await,
        Vec::<MessageId>::new()
    );
    assert_eq!(found(env, owner, "fox & !dog").await, [fox.id]);
    // Snippets highlight the matches.
    let hit = &hits(env, owner, "jumping", None).await[0];
    assert!(
        hit.snippet.contains("\u{E000}jumps\u{E001}"),
        "{:?}",
        hit.snippet
    );
}

/// Only ACTIVE messages of conversations the reader is a current member of, from their join
/// on, not deleted for them alone.
async fn visibility(env: &Env) {
    let [owner, ada, leaver, late, outsider] = env.users().await;
    let me = device(owner);
    let group = env.group(me, &[ada, leaver]).await;
    let other = env.group(me, &[outsider]).await;
    let early = env.say(me, group.id, "zebra crossing early").await;
    join_now(env, group.id, late).await;
    let after = env.say(me, group.id, "zebra after the join").await;
    let hidden = env.say(me, group.id, "zebra hidden for ada").await;
    let deleted = env.say(me, group.id, "zebra deleted for all").await;
    let elsewhere = env.say(me, other.id, "zebra elsewhere").await;
    let hid = env
        .exec(
            "INSERT INTO hidden_messages (user_id, message_id, conversation_id, seq, hidden_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                Val::Id(ada.into()),
                Val::Id(hidden.id.into()),
                Val::Id(group.id.into()),
                Val::Int(hidden.seq),
                Val::Time(Some(now())),
            ],
        )
        .await;
    assert_eq!(hid, 1);
    delete_for_everyone(env, &deleted).await;
    let left = env
        .exec(
            "UPDATE members SET left_at_seq = $1 WHERE conversation_id = $2 AND user_id = $3",
            &[
                Val::Int(env.conversation(group.id).await.last_seq),
                Val::Id(group.id.into()),
                Val::Id(leaver.into()),
            ],
        )
        .await;
    assert_eq!(left, 1);

    let zebra = |reader| found(env, reader, "zebra");
    assert_eq!(
        set(zebra(owner).await),
        set(vec![early.id, after.id, hidden.id, elsewhere.id])
    );
    assert_eq!(set(zebra(ada).await), set(vec![early.id, after.id]));
    assert_eq!(set(zebra(late).await), set(vec![after.id, hidden.id]));
    assert!(
        zebra(leaver).await.is_empty(),
        "a former member finds nothing"
    );
    assert_eq!(zebra(outsider).await, [elsewhere.id]);
    assert!(zebra(UserId::new_v7()).await.is_empty());
    // One conversation only.
    let in_group = ids(&hits(env, owner, "zebra", Some(group.id)).await);
    assert_eq!(set(in_group), set(vec![early.id, after.id, hidden.id]));
    assert!(
        hits(env, outsider, "zebra", Some(group.id))
            .await
            .is_empty()
    );
    // Deleted for everyone: found by no one, its text no longer matches anything.
    assert!(found(env, owner, "deleted").await.is_empty());
}

/// Better matches first, then newest first; pages of any size cover every hit exactly once.
async fn ranking_and_paging(env: &Env) {
    let [owner] = env.users().await;
    let me = device(owner);
    let group = env.group(me, &[]).await;
    let start = now() - chrono::Duration::hours(1);
    let at = |i: i64| start + chrono::Duration::seconds(i);
    let send = |text: &'static str, i: i64| {
        let new = text_message(group.id, text);
        async move { env.send_at(me, &new, at(i)).await }
    };
    let weak = send("kiwi with many other words around it in this message", 0).await;
    let strong = send("kiwi kiwi kiwi", 1).await;
    let mut ties = Vec::new();
    for i in 2..9 {
        ties.push(send("kiwi and a plum", i).await);
    }
    let all = hits(env, owner, "kiwi", None).await;
    assert_eq!(all.len(), 9);
    assert_eq!(all[0].message.id, strong.id, "more occurrences rank higher");
    assert_eq!(all[8].message.id, weak.id, "a diluted match ranks lower");
    // Equal ranks: newest first.
    let middle: Vec<MessageId> = ids(&all[1..8]);
    let newest_first: Vec<MessageId> = ties.iter().rev().map(|m| m.id).collect();
    assert_eq!(middle, newest_first);
    for pair in all.windows(2) {
        assert!(pair[0].rank >= pair[1].rank, "ranks descend");
    }

    let query = SearchQuery::parse("kiwi").unwrap();
    for size in [1, 2, 3, 4, 8, 9, 10] {
        let mut paged = Vec::new();
        let mut after: Option<SearchPosition> = None;
        loop {
            let page = env
                .store
                .search(owner, &query, None, after.as_ref(), size)
                .await
                .expect("search");
            let Some(last) = page.last() else { break };
            after = Some(SearchPosition {
                scope: String::new(),
                rank: last.rank,
                created_micros: last.message.created_at.timestamp_micros(),
                message_id: last.message.id,
            });
            let short = page.len() < size;
            paged.extend(ids(&page));
            if short {
                break;
            }
        }
        assert_eq!(paged, ids(&all), "pages of {size}: no gap, no duplicate");
    }
}

/// Delete-for-everyone leaves no term of the text in any table or index (the FTS5 shadow
/// tables included, read as raw bytes); an edit replaces the indexed text.
async fn deleted_text_leaves_no_trace(env: &Env) {
    const MARKER: &str = "qzvkxw7";
    let [owner] = env.users().await;
    let me = device(owner);
    let group = env.group(me, &[]).await;
    let secret = env
        .say(me, group.id, &format!("hello {MARKER} world"))
        .await;
    env.say(me, group.id, "hello again world").await;
    assert_eq!(found(env, owner, MARKER).await, [secret.id]);
    let before = traces(env, MARKER).await;
    assert!(before.contains(&"messages".to_owned()), "{before:?}");
    if let Database::Sqlite(db) = &env.test_db.db {
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&db.writer)
            .await
            .unwrap();
        let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
        assert!(
            (parts[0], parts[1]) >= (3, 42),
            "secure-delete needs SQLite 3.42+: {version}"
        );
        let secure: i64 =
            sqlx::query_scalar("SELECT v FROM message_search_config WHERE k = 'secure-delete'")
                .fetch_one(&db.writer)
                .await
                .unwrap();
        assert_eq!(secure, 1);
        assert!(
            before.contains(&"message_search_data".to_owned()),
            "the scan sees the index: {before:?}"
        );
    }

    delete_for_everyone(env, &secret).await;
    assert!(found(env, owner, MARKER).await.is_empty());
    assert_eq!(traces(env, MARKER).await, Vec::<String>::new());
    assert_eq!(found(env, owner, "hello world").await.len(), 1);

    // An edit: the old words are forgotten (everywhere), the new ones found.
    let edited = env.say(me, group.id, "vwxq9 original words").await;
    set_text(env, &edited, "replacement yonder").await;
    assert!(found(env, owner, "vwxq9").await.is_empty());
    assert_eq!(traces(env, "vwxq9").await, Vec::<String>::new());
    assert_eq!(found(env, owner, "yonder").await, [edited.id]);
}

/// Replaces `message`'s text the way an edit does to the row (the content goes too here).
async fn set_text(env: &Env, message: &Message, text: &str) {
    let sql = "UPDATE messages SET body = $1, content = NULL WHERE message_id = $2";
    let updated = match &env.test_db.db {
        Database::Postgres(db) => sqlx::query(sql)
            .bind(text)
            .bind(message.id.as_uuid())
            .execute(&db.pool)
            .await
            .map(|r| r.rows_affected()),
        Database::Sqlite(db) => sqlx::query(sql)
            .bind(text)
            .bind(message.id.to_string())
            .execute(&db.writer)
            .await
            .map(|r| r.rows_affected()),
    };
    assert_eq!(updated.unwrap(), 1);
}

/// The tables (and FTS5 shadow tables) any column of which contains `marker`, as bytes.
async fn traces(env: &Env, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    match &env.test_db.db {
        Database::Sqlite(db) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            )
            .fetch_all(&db.writer)
            .await
            .unwrap();
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(&table)
                        .fetch_all(&db.writer)
                        .await
                        .unwrap();
                for column in columns {
                    let sql = format!(
                        "SELECT count(*) FROM \"{table}\" \
                         WHERE instr(CAST(\"{column}\" AS BLOB), CAST($1 AS BLOB)) > 0"
                    );
                    let hits: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                        .bind(marker)
                        .fetch_one(&db.writer)
                        .await
                        .unwrap();
                    if hits > 0 && !found.contains(&table) {
                        found.push(table.clone());
                    }
                }
            }
        }
        Database::Postgres(db) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 ORDER BY table_name",
            )
            .fetch_all(&db.pool)
            .await
            .unwrap();
            for table in tables {
                // The row as text shows text and tsvector columns; bytea columns (protobuf
                // content) are searched as bytes.
                let bytea: Vec<String> = sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 \
                       AND data_type = 'bytea'",
                )
                .bind(&table)
                .fetch_all(&db.pool)
                .await
                .unwrap();
                let mut test = vec!["strpos(t::text, $1) > 0".to_owned()];
                test.extend(
                    bytea
                        .iter()
                        .map(|c| format!("position(convert_to($1, 'UTF8') in t.\"{c}\") > 0")),
                );
                let sql = format!(
                    "SELECT count(*) FROM \"{table}\" t WHERE {}",
                    test.join(" OR ")
                );
                let hits: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(marker)
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
                if hits > 0 {
                    found.push(table);
                }
            }
        }
    }
    found
}

/// A thread's replies by seq window: oldest first, after a bound, limited, this thread only,
/// tombstones included.
async fn thread_windows(env: &Env) {
    let [owner, ada] = env.users().await;
    let (me, her) = (device(owner), device(ada));
    let group = env.group(me, &[ada]).await;
    let root = env.say(me, group.id, "root").await;
    let other_root = env.say(me, group.id, "another root").await;
    let reply = |actor: Actor, root: MessageId| {
        let mut new = text_message(group.id, "reply");
        new.thread_root_message_id = Some(root);
        async move { env.send_at(actor, &new, now()).await }
    };
    let mut replies = Vec::new();
    for i in 0..5 {
        replies.push(reply(if i % 2 == 0 { her } else { me }, root.id).await);
        reply(me, other_root.id).await;
        env.say(her, group.id, "top level").await;
    }
    delete_for_everyone(env, &replies[1]).await;
    let window =
        |after: i64, limit: usize| env.store.thread_replies(group.id, root.id, after, limit);
    let seqs = |messages: Vec<Message>| messages.iter().map(|m| m.seq).collect::<Vec<_>>();
    let all = window(root.seq, 100).await.unwrap();
    assert_eq!(seqs(all.clone()), seqs(replies.clone()));
    assert!(
        all[1].deleted_at.is_some() && all[1].content.is_none(),
        "tombstone kept"
    );
    assert_eq!(
        seqs(window(replies[1].seq, 2).await.unwrap()),
        [replies[2].seq, replies[3].seq]
    );
    assert!(window(replies[4].seq, 10).await.unwrap().is_empty());
    let others = env
        .store
        .thread_replies(group.id, other_root.id, 0, 100)
        .await
        .unwrap();
    assert_eq!(others.len(), 5);
    assert!(
        others
            .iter()
            .all(|m| m.thread_root_message_id == Some(other_root.id))
    );
    let elsewhere = env.group(me, &[]).await;
    assert!(
        env.store
            .thread_replies(elsewhere.id, root.id, 0, 100)
            .await
            .unwrap()
            .is_empty(),
        "a root of another conversation"
    );
}

conformance!(
    stemming_phrases_and_all_words,
    visibility,
    ranking_and_paging,
    deleted_text_leaves_no_trace,
    thread_windows,
);
