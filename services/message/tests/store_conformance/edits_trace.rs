//! The requirement that a deletion for everyone leaves no trace: every column of every
//! table of the test database is scanned for a marker the content held.

use echo_ids::MessageId;
use echo_message::error::MessageError;
use echo_message::store::{NewMessage, Sent};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::{Location, MessageContent};
use echo_store::Database;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::deletes::react_and_pin;
use super::{WINDOW, edit_of, stored};
use crate::common::*;

/// The requirement: after a deletion for everyone, the content (text, attachment,
/// location, every edited version) is nowhere in the database: every column of every table
/// (search indexes and the outbox included) is scanned for a marker it contained.
pub async fn delete_for_everyone_leaves_no_trace(env: &Env) {
    let marker = Uuid::new_v4().simple().to_string();
    let [owner, ada] = env.users().await;
    let (owner_device, ada_device) = (device(owner), device(ada));
    let group = env.group(owner_device, &[ada]).await;
    let content = |version: &str| MessageContent {
        text: format!("@ada secret {marker} {version}"),
        mentions: vec![pb::Mention {
            user_id: ada.to_string(),
            offset: 0,
            length: 4,
        }],
        attachments: vec![Media {
            url: format!("https://media.example/{marker}.png"),
            mime_type: "image/png".into(),
            file_name: format!("{marker}.png"),
            ..Media::default()
        }],
        location: Some(Location {
            latitude: 51.5,
            longitude: -0.1,
            name: format!("Cafe {marker}"),
            address: format!("{marker} Street"),
            ..Location::default()
        }),
    };
    let mut new = new_message(group.id, content("v0"));
    new.mentioned = vec![ada];
    let message = env.send_at(owner_device, &new, now()).await;
    for version in ["v1", "v2"] {
        let current = stored(env, &message).await;
        let edit = echo_message::store::Edit {
            content: content(version),
            ..edit_of(&current, "", &[ada])
        };
        env.store
            .edit(owner_device, &edit, now(), WINDOW)
            .await
            .unwrap();
    }
    react_and_pin(env, group.id, message.id, ada).await;
    assert!(
        env.store
            .delete_for_me(ada_device, group.id, message.id, now())
            .await
            .unwrap()
    );
    let found = traces(env, &marker).await;
    assert!(
        found.contains(&"messages.content".to_owned())
            && found.contains(&"message_edits.content".to_owned()),
        "the scan must see the marker before the deletion: {found:?}"
    );

    assert_eq!(request_hash(env, message.id).await, new.request_hash);
    assert!(
        env.store
            .delete_for_everyone(owner_device, group.id, message.id, now())
            .await
            .unwrap()
    );
    let found = traces(env, &marker).await;
    assert!(found.is_empty(), "the erased content is still in {found:?}");
    // The request hash is an unsalted SHA-256 of the content: a guessable trace of it.
    let left = request_hash(env, message.id).await;
    assert_ne!(
        left, new.request_hash,
        "the request hash must be overwritten"
    );
    assert!(left.iter().all(|&b| b == 0), "{left:?}");
}

/// The request hash stored with message `id`.
async fn request_hash(env: &Env, id: MessageId) -> Vec<u8> {
    match &env.test_db.db {
        Database::Postgres(db) => {
            sqlx::query_scalar("SELECT request_hash FROM messages WHERE message_id = $1")
                .bind(id.as_uuid())
                .fetch_one(&db.pool)
                .await
        }
        Database::Sqlite(db) => {
            sqlx::query_scalar("SELECT request_hash FROM messages WHERE message_id = $1")
                .bind(id.to_string())
                .fetch_one(&db.writer)
                .await
        }
    }
    .expect("request hash")
}

/// A retry of a send after the message was deleted for everyone answers the tombstone (no
/// new message, seq or event), whatever payload it carries, since the hash it would be
/// compared with is gone; the same key into another conversation is still refused.
pub async fn retry_after_deletion_answers_the_tombstone(env: &Env) {
    let [ada, bob, cy] = env.users().await;
    let ada_device = device(ada);
    let direct = env.direct(ada_device, bob).await;
    let new = text_message(direct.id, "regret");
    let sent = env.send_at(ada_device, &new, now()).await;
    assert!(
        env.store
            .delete_for_everyone(ada_device, direct.id, sent.id, now())
            .await
            .unwrap()
    );
    let tombstone = stored(env, &sent).await;
    assert!(tombstone.deleted_at.is_some() && tombstone.content.is_none());
    let (outbox, last_seq) = (
        env.outbox().await.len(),
        env.conversation(direct.id).await.last_seq,
    );

    let again = env.store.send(ada_device, &retry(&new), now()).await;
    assert_eq!(again.unwrap(), Sent::Repeated(tombstone.clone()));
    let other_payload = NewMessage {
        id: MessageId::new_v7(),
        ..text_message(direct.id, "something else")
    };
    let other_payload = NewMessage {
        client_message_id: new.client_message_id.clone(),
        ..other_payload
    };
    let again = env.store.send(ada_device, &other_payload, now()).await;
    assert_eq!(again.unwrap(), Sent::Repeated(tombstone));
    let elsewhere = NewMessage {
        conversation_id: env.direct(ada_device, cy).await.id,
        ..retry(&new)
    };
    let refused = env.store.send(ada_device, &elsewhere, now()).await;
    assert!(
        matches!(refused, Err(MessageError::IdempotencyKeyReused)),
        "{refused:?}"
    );
    assert_eq!(env.rows("messages").await, 1);
    assert_eq!(env.conversation(direct.id).await.last_seq, last_seq);
    // Only the second direct conversation's creation was written since.
    assert_eq!(env.outbox().await.len(), outbox + 5);
}

/// Every `table.column` of the test database holding `marker` (text, bytes, json, search
/// vectors: each column is cast to bytes or text and searched).
pub(crate) async fn traces(env: &Env, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    match &env.test_db.db {
        Database::Postgres(db) => {
            let columns: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text \
                 FROM information_schema.columns WHERE table_schema = current_schema() \
                 ORDER BY 1, 2",
            )
            .fetch_all(&db.pool)
            .await
            .expect("columns");
            for (table, column, data_type) in columns {
                let hits: i64 = if data_type == "bytea" {
                    let sql = format!(
                        "SELECT count(*) FROM \"{table}\" WHERE position($1::bytea IN \"{column}\") > 0"
                    );
                    sqlx::query_scalar(AssertSqlSafe(sql))
                        .bind(marker.as_bytes())
                        .fetch_one(&db.pool)
                        .await
                } else {
                    let sql = format!(
                        "SELECT count(*) FROM \"{table}\" \
                         WHERE strpos(CAST(\"{column}\" AS TEXT), $1) > 0"
                    );
                    sqlx::query_scalar(AssertSqlSafe(sql))
                        .bind(marker)
                        .fetch_one(&db.pool)
                        .await
                }
                .unwrap_or_else(|e| panic!("scan {table}.{column}: {e}"));
                if hits > 0 {
                    found.push(format!("{table}.{column}"));
                }
            }
        }
        Database::Sqlite(db) => {
            // Virtual tables (FTS5) and their shadow tables are tables here too.
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1",
            )
            .fetch_all(&db.writer)
            .await
            .expect("tables");
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(&table)
                        .fetch_all(&db.writer)
                        .await
                        .expect("columns");
                for column in columns {
                    let sql = format!(
                        "SELECT count(*) FROM \"{table}\" \
                         WHERE instr(CAST(\"{column}\" AS BLOB), CAST($1 AS BLOB)) > 0"
                    );
                    let hits: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                        .bind(marker)
                        .fetch_one(&db.writer)
                        .await
                        .unwrap_or_else(|e| panic!("scan {table}.{column}: {e}"));
                    if hits > 0 {
                        found.push(format!("{table}.{column}"));
                    }
                }
            }
        }
    }
    found
}
