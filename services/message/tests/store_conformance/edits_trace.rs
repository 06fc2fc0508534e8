//! The requirement that a deletion for everyone leaves no trace: every column of every
//! table of the test database is scanned for a marker the content held.

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

    assert!(
        env.store
            .delete_for_everyone(owner_device, group.id, message.id, now())
            .await
            .unwrap()
    );
    let found = traces(env, &marker).await;
    assert!(found.is_empty(), "the erased content is still in {found:?}");
}

/// Every `table.column` of the test database holding `marker` (text, bytes, json, search
/// vectors: each column is cast to bytes or text and searched).
async fn traces(env: &Env, marker: &str) -> Vec<String> {
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
