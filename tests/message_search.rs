//! MessageService search and threads end to end through the generated gRPC client, on both
//! backends: what a member finds (stemming, phrases, snippets, one conversation, pages), what
//! they do not (other conversations, before their join, deleted for them or for everyone),
//! thread pages, and every denial.
//!
//! One piece: search and threads apply the same reader visibility (a member, from their join, not
//! deleted for them or for everyone), set up by one `raw` helper that writes both backends' SQL
//! behind the API, and a thread's page token is refused by search; split, `raw` would be copied and
//! that cross-token check would have no home.

use common::messages::*;
use common::users::known_user;
use common::{assert_reason, violated_fields};
use echo_proto::echo::message::v1 as pb;
use echo_store::Database;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tonic::Code;
use uuid::Uuid;

mod common;

const START: char = '\u{E000}'; // opens a highlighted match in a snippet
const END: char = '\u{E001}'; // closes it

fn query(text: &str) -> pb::SearchMessagesRequest {
    pb::SearchMessagesRequest {
        query: text.into(),
        ..Default::default()
    }
}

/// `text` with `page_size` and `page_token`.
fn paged(text: &str, page_size: i32, page_token: &str) -> pb::SearchMessagesRequest {
    pb::SearchMessagesRequest {
        page_size,
        page_token: page_token.into(),
        ..query(text)
    }
}

/// `text` within one conversation.
fn within(text: &str, conversation_id: &str) -> pb::SearchMessagesRequest {
    pb::SearchMessagesRequest {
        conversation_id: conversation_id.into(),
        ..query(text)
    }
}

async fn search(
    mesh: &TestMesh,
    user: &SignedIn,
    request: pb::SearchMessagesRequest,
) -> Result<pb::SearchMessagesResponse, tonic::Status> {
    let response = mesh.message_as(user).search_messages(request).await?;
    Ok(response.into_inner())
}

/// The ids `text` finds for `user` (first page of 100), best first.
async fn found(mesh: &TestMesh, user: &SignedIn, text: &str) -> Vec<String> {
    ids(&search(mesh, user, paged(text, 100, ""))
        .await
        .expect("search"))
}

fn ids(response: &pb::SearchMessagesResponse) -> Vec<String> {
    response
        .results
        .iter()
        .map(|r| r.message.as_ref().unwrap().message_id.clone())
        .collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

async fn thread(
    mesh: &TestMesh,
    user: &SignedIn,
    request: pb::ListThreadRequest,
) -> Result<pb::ListThreadResponse, tonic::Status> {
    let response = mesh.message_as(user).list_thread(request).await?;
    Ok(response.into_inner())
}

fn thread_of(conversation: &pb::Conversation, root: &pb::Message) -> pb::ListThreadRequest {
    pb::ListThreadRequest {
        conversation_id: conversation.conversation_id.clone(),
        root_message_id: root.message_id.clone(),
        ..Default::default()
    }
}

async fn reply_in(
    mesh: &TestMesh,
    from: &SignedIn,
    conversation: &pb::Conversation,
    root: &pb::Message,
    body: &str,
) -> pb::Message {
    let mut request = send_request(conversation, &Uuid::now_v7().to_string(), text(body));
    request.thread_root_message_id = root.message_id.clone();
    let sent = mesh.message_as(from).send_message(request).await;
    sent.expect("reply").into_inner().message.unwrap()
}

/// A value for [`raw`].
enum Arg<'a> {
    Id(&'a str),
    Int(i64),
    Now,
}

/// Runs `sql` on the message service's database behind its back (states other RPCs make:
/// a later join, deletion for one user or for everyone).
async fn raw(mesh: &TestMesh, sql: &str, args: &[Arg<'_>]) {
    let (_, db) = mesh
        .mesh
        .databases
        .iter()
        .find(|(t, _)| t.name() == "message")
        .unwrap();
    let text = sql;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    let affected = match db {
        Database::Postgres(pg) => {
            let query = args.iter().fold(sqlx::query(sql), |q, arg| match arg {
                Arg::Id(id) => q.bind(Uuid::parse_str(id).unwrap()),
                Arg::Int(n) => q.bind(*n),
                Arg::Now => q.bind(chrono::Utc::now()),
            });
            query.execute(&pg.pool).await.unwrap().rows_affected()
        }
        Database::Sqlite(lite) => {
            let query = args.iter().fold(sqlx::query(sql), |q, arg| match arg {
                Arg::Id(id) => q.bind(id.to_string()),
                Arg::Int(n) => q.bind(*n),
                Arg::Now => q.bind(chrono::Utc::now().timestamp_micros()),
            });
            query.execute(&lite.writer).await.unwrap().rows_affected()
        }
    };
    assert_eq!(affected, 1, "{text}");
}

/// `user` joins `conversation` now (history from the current seq on).
async fn join_now(
    mesh: &TestMesh,
    owner: &SignedIn,
    conversation: &pb::Conversation,
    user: &SignedIn,
) {
    let last_seq = my_view(mesh, owner, conversation).await.last_seq;
    raw(
        mesh,
        "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_at_seq) \
         VALUES ($1, $2, 3, $3, $4)",
        &[
            Arg::Id(&conversation.conversation_id),
            Arg::Id(&user.tokens.user_id),
            Arg::Now,
            Arg::Int(last_seq),
        ],
    )
    .await;
}

async fn delete_for_everyone(mesh: &TestMesh, message: &pb::Message) {
    raw(
        mesh,
        "UPDATE messages SET body = NULL, content = NULL, deleted_at = $1 WHERE message_id = $2",
        &[Arg::Now, Arg::Id(&message.message_id)],
    )
    .await;
}

async fn hide_for(mesh: &TestMesh, user: &SignedIn, message: &pb::Message) {
    raw(
        mesh,
        "INSERT INTO hidden_messages (user_id, message_id, conversation_id, seq, hidden_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            Arg::Id(&user.tokens.user_id),
            Arg::Id(&message.message_id),
            Arg::Id(&message.conversation_id),
            Arg::Int(message.seq),
            Arg::Now,
        ],
    )
    .await;
}

/// Asserts `status` is INVALID_ARGUMENT naming `field`.
fn assert_invalid(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        violated_fields(status).iter().any(|f| f == field),
        "{field}: {status:?}"
    );
}

#[tokio::test]
async fn search_finds_what_a_member_may_read() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cy = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        direct(&mesh, &ada, &cy).await;
        let room = group(&mesh, &ada, pb::ConversationType::Group, &[&bob]).await;
        let fox = send(
            &mesh,
            &ada,
            &room,
            "the quick brown fox jumps over the lazy dog",
        )
        .await;
        let foxes = send(&mesh, &bob, &room, "Foxes are running wild").await;
        send(&mesh, &ada, &room, "nothing to see here").await;
        let sunday = send(&mesh, &ada, &chat, "a lazy sunday with the fox").await;

        // Stemming, ranking and snippets with the matches marked.
        let response = search(&mesh, &bob, query("fox")).await.unwrap();
        assert_eq!(
            sorted(ids(&response)),
            sorted(vec![
                fox.message_id.clone(),
                foxes.message_id.clone(),
                sunday.message_id.clone()
            ]),
            "{backend:?}"
        );
        assert_eq!(response.next_page_token, "");
        for result in &response.results {
            let message = result.message.as_ref().unwrap();
            assert_eq!(message.state, pb::MessageState::Active as i32);
            assert!(message.content.is_some());
            assert!(result.snippet.contains(START) && result.snippet.contains(END));
        }
        let snippet_of = |id: &str| {
            let result = response.results.iter();
            let mut result = result.filter(|r| r.message.as_ref().unwrap().message_id == id);
            result.next().unwrap().snippet.clone()
        };
        assert!(snippet_of(&foxes.message_id).contains(&format!("{START}Foxes{END}")));
        assert!(snippet_of(&fox.message_id).contains(&format!("brown {START}fox{END} jumps")));
        // Every word must match; phrases in order.
        assert_eq!(found(&mesh, &bob, "lazy fox").await.len(), 2);
        assert_eq!(
            found(&mesh, &bob, "\"lazy dog\"").await,
            [fox.message_id.as_str()]
        );
        assert!(found(&mesh, &bob, "\"dog lazy\"").await.is_empty());
        assert_eq!(found(&mesh, &bob, "run").await, [foxes.message_id.as_str()]);

        // One conversation.
        let in_room = within("fox", &room.conversation_id);
        let response = search(&mesh, &bob, in_room).await.unwrap();
        assert_eq!(
            sorted(ids(&response)),
            sorted(vec![fox.message_id.clone(), foxes.message_id.clone()])
        );

        // Pages of one: every hit once, in the order of the single page.
        let all = found(&mesh, &bob, "fox").await;
        let (mut pages, mut token) = (Vec::new(), String::new());
        loop {
            let page = search(&mesh, &bob, paged("fox", 1, &token)).await.unwrap();
            assert!(page.results.len() <= 1);
            pages.extend(ids(&page));
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(pages, all);

        // Not a member: finds nothing of the room.
        assert!(found(&mesh, &cy, "fox").await.is_empty());
        // Deleted for everyone, or for the reader alone: gone from their results.
        delete_for_everyone(&mesh, &foxes).await;
        assert!(found(&mesh, &bob, "wild").await.is_empty());
        assert!(!found(&mesh, &ada, "fox").await.contains(&foxes.message_id));
        hide_for(&mesh, &bob, &sunday).await;
        assert!(found(&mesh, &bob, "sunday").await.is_empty());
        assert_eq!(
            found(&mesh, &ada, "sunday").await,
            [sunday.message_id.as_str()]
        );
        // A later member finds only what came after their join.
        join_now(&mesh, &ada, &room, &cy).await;
        assert!(found(&mesh, &cy, "fox").await.is_empty());
        let again = send(&mesh, &ada, &room, "the fox is back").await;
        assert_eq!(found(&mesh, &cy, "fox").await, [again.message_id.as_str()]);

        // A long text: the snippet is a short excerpt around the match.
        let long = format!(
            "{} needle {}",
            "filler words ".repeat(60),
            "more text ".repeat(60)
        );
        let sent = send(&mesh, &ada, &room, &long).await;
        let response = search(&mesh, &cy, query("needle")).await.unwrap();
        assert_eq!(ids(&response), [sent.message_id.as_str()]);
        let snippet = &response.results[0].snippet;
        assert!(
            snippet.contains(&format!("{START}needle{END}")),
            "{snippet:?}"
        );
        assert!(snippet.chars().count() <= 210, "{snippet:?}");
    }
}

#[tokio::test]
async fn search_denials() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let dan = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        for body in ["fox one", "fox two", "fox three dog", "dog four"] {
            send(&mesh, &ada, &chat, body).await;
        }
        for bad in [
            "",
            "  \t ",
            "\"\" !! --",
            &"x".repeat(257),
            &"é".repeat(129),
        ] {
            let status = search(&mesh, &ada, query(bad)).await.unwrap_err();
            assert_invalid(&status, "query");
        }
        assert!(
            search(&mesh, &ada, query(&"x".repeat(256))).await.is_ok(),
            "{backend:?}"
        );
        let refused = |request| async { search(&mesh, &ada, request).await.unwrap_err() };
        assert_invalid(&refused(paged("fox", -1, "")).await, "page_size");
        let bad_id = refused(within("fox", "not-a-uuid")).await;
        assert_invalid(&bad_id, "conversation_id");
        // Tokens serve only their own query and conversation filter.
        let token = search(&mesh, &ada, paged("fox", 1, "")).await.unwrap();
        let token = token.next_page_token;
        assert!(!token.is_empty());
        assert!(search(&mesh, &ada, paged("fox", 1, &token)).await.is_ok());
        assert_invalid(&refused(paged("dog", 1, &token)).await, "page_token");
        let filtered = pb::SearchMessagesRequest {
            page_token: token.clone(),
            ..within("fox", &chat.conversation_id)
        };
        assert_invalid(&refused(filtered).await, "page_token");
        assert_invalid(&refused(paged("fox", 1, "not a token")).await, "page_token");
        // A thread token is no search token.
        let root = send(&mesh, &ada, &chat, "root").await;
        for i in 0..2 {
            reply_in(&mesh, &bob, &chat, &root, &format!("reply {i}")).await;
        }
        let first = pb::ListThreadRequest {
            page_size: 1,
            ..thread_of(&chat, &root)
        };
        let thread_token = thread(&mesh, &ada, first).await.unwrap().next_page_token;
        assert!(!thread_token.is_empty());
        assert_invalid(&refused(paged("fox", 1, &thread_token)).await, "page_token");
        // Someone else's conversation, or none at all: NOT_FOUND.
        for conversation in [chat.conversation_id.clone(), Uuid::now_v7().to_string()] {
            let status = search(&mesh, &dan, within("fox", &conversation)).await;
            let status = status.unwrap_err();
            assert_reason(&status, Code::NotFound, "CONVERSATION_NOT_FOUND");
        }
        // A script hammering search is slowed down.
        let mut limited = None;
        for _ in 0..100 {
            if let Err(status) = search(&mesh, &dan, query("fox")).await {
                limited = Some(status);
                break;
            }
        }
        let status = limited.expect("rate limited within 100 searches");
        assert_reason(&status, Code::ResourceExhausted, "RATE_LIMITED");
    }
}

#[tokio::test]
async fn threads_page_from_the_root() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cy = known_user(&mesh).await;
        direct(&mesh, &ada, &bob).await;
        direct(&mesh, &ada, &cy).await;
        let room = group(&mesh, &ada, pb::ConversationType::Group, &[&bob]).await;
        let root = send(&mesh, &ada, &room, "what shall we build?").await;
        let mut replies = Vec::new();
        for i in 0..5 {
            let from = if i % 2 == 0 { &bob } else { &ada };
            replies.push(reply_in(&mesh, from, &room, &root, &format!("idea {i}")).await);
            send(&mesh, &bob, &room, "meanwhile, top level").await;
        }
        let all = thread(&mesh, &bob, thread_of(&room, &root)).await.unwrap();
        assert_eq!(
            all.root.as_ref().unwrap().message_id,
            root.message_id,
            "{backend:?}"
        );
        assert_eq!(all.root.as_ref().unwrap().reply_count, 5);
        let seqs = |messages: &[pb::Message]| messages.iter().map(|m| m.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&all.replies), seqs(&replies));
        assert_eq!(all.next_page_token, "");
        // Pages of two, the root on each.
        let (mut paged, mut token) = (Vec::new(), String::new());
        loop {
            let request = pb::ListThreadRequest {
                page_size: 2,
                page_token: token.clone(),
                ..thread_of(&room, &root)
            };
            let page = thread(&mesh, &bob, request).await.unwrap();
            assert_eq!(page.root.as_ref().unwrap().message_id, root.message_id);
            assert!(page.replies.len() <= 2);
            paged.extend(page.replies);
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(seqs(&paged), seqs(&replies));
        // Tombstones stay in place; a deleted root still heads its thread.
        delete_for_everyone(&mesh, &replies[1]).await;
        delete_for_everyone(&mesh, &root).await;
        let after = thread(&mesh, &bob, thread_of(&room, &root)).await.unwrap();
        let deleted = pb::MessageState::DeletedForEveryone as i32;
        assert_eq!(after.root.unwrap().state, deleted);
        assert_eq!(after.replies[1].state, deleted);
        assert!(after.replies[1].content.is_none());
        assert_eq!(after.replies.len(), 5);

        // Denials.
        let on = &mesh;
        let not_found = |user, request, expected: &'static str| async move {
            let status = thread(on, user, request).await.unwrap_err();
            assert_reason(&status, Code::NotFound, expected);
        };
        let missing = "MESSAGE_NOT_FOUND";
        not_found(&bob, thread_of(&room, &replies[0]), missing).await;
        let unknown = pb::ListThreadRequest {
            root_message_id: Uuid::now_v7().to_string(),
            ..thread_of(&room, &root)
        };
        not_found(&bob, unknown, missing).await;
        let chat = direct(&mesh, &ada, &bob).await;
        let elsewhere = send(&mesh, &ada, &chat, "elsewhere").await;
        not_found(&bob, thread_of(&room, &elsewhere), missing).await;
        not_found(&cy, thread_of(&room, &root), "CONVERSATION_NOT_FOUND").await;
        // A later member: roots from before their join are not theirs to see.
        join_now(&mesh, &ada, &room, &cy).await;
        not_found(&cy, thread_of(&room, &root), missing).await;
        let fresh = send(&mesh, &ada, &room, "a new topic").await;
        let answer = reply_in(&mesh, &cy, &room, &fresh, "count me in").await;
        let seen = thread(&mesh, &cy, thread_of(&room, &fresh)).await.unwrap();
        assert_eq!(seqs(&seen.replies), [answer.seq]);
        // Malformed fields and foreign tokens.
        let bad = pb::ListThreadRequest {
            conversation_id: "x".into(),
            root_message_id: String::new(),
            page_size: -5,
            page_token: String::new(),
        };
        let status = thread(&mesh, &bob, bad).await.unwrap_err();
        for field in ["conversation_id", "root_message_id", "page_size"] {
            assert_invalid(&status, field);
        }
        let first = pb::ListThreadRequest {
            page_size: 1,
            ..thread_of(&room, &root)
        };
        let token = thread(&mesh, &bob, first).await.unwrap().next_page_token;
        let other_root = pb::ListThreadRequest {
            page_token: token,
            ..thread_of(&room, &fresh)
        };
        let status = thread(&mesh, &bob, other_root).await.unwrap_err();
        assert_invalid(&status, "page_token");
    }
}
