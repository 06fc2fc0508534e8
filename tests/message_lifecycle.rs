//! Disappearing messages end to end through the public API, on both backends
//! (docs/lifecycle.md): UpdateConversation's `message_ttl` (who may set it, its bounds as
//! field violations, the ConversationUpdated a stream sees, `expires_at` on later messages),
//! and the background sweep erasing a message whose time is up: a Subscribe stream receives
//! MessagesExpired, the message reads as a tombstone, and the notification inbox entry of it
//! is erased too. The store's own suite (services/message/tests/store_conformance/
//! lifecycle.rs) checks the erasure's no-trace scan, counters and batches with a chosen clock;
//! here the one message to expire has its `expires_at` moved into the past in the database (a
//! ttl is at least an hour), and the real sweep, every second, does the rest.

use std::time::Duration;

use common::live::{eventually, subscribe_ready};
use common::messages::{direct, group, send};
use common::users::known_user;
use common::violated_fields;
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::notification::v1 as notification;
use echo_store::Database;
use echo_store::native::{At, Id};
use echo_testkit::{Backend, SignedIn, TestMesh};
use tonic::Code;

mod common;

const WAIT: Duration = Duration::from_secs(10);

fn ttl_update(
    conversation: &pb::Conversation,
    seconds: Option<i64>,
) -> pb::UpdateConversationRequest {
    pb::UpdateConversationRequest {
        conversation: Some(pb::Conversation {
            conversation_id: conversation.conversation_id.clone(),
            message_ttl: seconds.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["message_ttl".into()],
        }),
    }
}

async fn set_ttl(
    mesh: &TestMesh,
    who: &SignedIn,
    conversation: &pb::Conversation,
    seconds: Option<i64>,
) -> Result<pb::Conversation, tonic::Status> {
    mesh.message_as(who)
        .update_conversation(ttl_update(conversation, seconds))
        .await
        .map(|r| r.into_inner().conversation.expect("conversation"))
}

async fn inbox(mesh: &TestMesh, who: &SignedIn) -> Vec<notification::InboxEntry> {
    mesh.notification_as(who)
        .list_inbox(notification::ListInboxRequest::default())
        .await
        .expect("inbox")
        .into_inner()
        .entries
}

/// Owner and admins of a group set the ttl, members are PERMISSION_DENIED, strangers find no
/// conversation (NOT_FOUND, as for every conversation RPC); either user of a direct chat sets
/// it; out-of-range values are INVALID_ARGUMENT naming `conversation.message_ttl`; clearing
/// turns it off.
#[tokio::test]
async fn message_ttl_is_set_by_whom_it_may_be() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let owner = known_user(&mesh).await;
        let member = known_user(&mesh).await;
        let stranger = known_user(&mesh).await;
        let team = group(&mesh, &owner, pb::ConversationType::Group, &[&member]).await;

        let set = set_ttl(&mesh, &owner, &team, Some(3600))
            .await
            .expect("owner sets");
        assert_eq!(
            set.message_ttl.map(|d| d.seconds),
            Some(3600),
            "{backend:?}"
        );
        let read = mesh
            .message_as(&member)
            .get_conversation(pb::GetConversationRequest {
                conversation_id: team.conversation_id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .conversation
            .unwrap();
        assert_eq!(read.message_ttl.map(|d| d.seconds), Some(3600));

        let denied = set_ttl(&mesh, &member, &team, None).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
        let denied = set_ttl(&mesh, &stranger, &team, None).await.unwrap_err();
        assert_eq!(denied.code(), Code::NotFound, "{denied:?}");

        for bad in [59 * 60, 90 * 86_400 + 1, -3600] {
            let refused = set_ttl(&mesh, &owner, &team, Some(bad)).await.unwrap_err();
            assert_eq!(refused.code(), Code::InvalidArgument, "{bad}: {refused:?}");
            assert_eq!(
                violated_fields(&refused),
                ["conversation.message_ttl"],
                "{bad}"
            );
        }
        let mut fractional = ttl_update(&team, Some(7200));
        if let Some(c) = fractional.conversation.as_mut() {
            c.message_ttl.as_mut().unwrap().nanos = 5;
        }
        let refused = mesh
            .message_as(&owner)
            .update_conversation(fractional)
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), ["conversation.message_ttl"]);

        let cleared = set_ttl(&mesh, &owner, &team, None).await.expect("clear");
        assert_eq!(cleared.message_ttl, None);
        let at_most = set_ttl(&mesh, &owner, &team, Some(90 * 86_400))
            .await
            .expect("90 days");
        assert_eq!(at_most.message_ttl.map(|d| d.seconds), Some(90 * 86_400));

        let chat = direct(&mesh, &owner, &member).await;
        let by_peer = set_ttl(&mesh, &member, &chat, Some(86_400))
            .await
            .expect("peer sets");
        assert_eq!(by_peer.message_ttl.map(|d| d.seconds), Some(86_400));
        let off = set_ttl(&mesh, &owner, &chat, Some(0))
            .await
            .expect("other party clears");
        assert_eq!(off.message_ttl, None);
        let denied = set_ttl(&mesh, &stranger, &chat, Some(3600))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::NotFound, "{denied:?}");
        mesh.shutdown().await;
    }
}

/// A message sent after the ttl carries `expires_at`; one sent before does not. When its time
/// has passed the sweep erases it: the live stream receives the ConversationUpdated and then
/// MessagesExpired (reason MESSAGE_TTL) naming it, it reads as a tombstone, and the
/// recipient's inbox entry for it is gone.
#[tokio::test]
async fn expired_message_disappears_from_streams_and_inbox() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start_with(backend, "all", |config| {
            config.retention.sweep_interval = Duration::from_secs(1);
        })
        .await
        else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        let kept = send(&mesh, &ada, &chat, "before the ttl").await;
        assert_eq!(kept.expires_at, None, "{backend:?}");
        let mut stream = subscribe_ready(&mesh, &bob).await;
        let set = set_ttl(&mesh, &ada, &chat, Some(3600)).await.expect("set");
        let updated = stream
            .event_at(&chat.conversation_id, set.last_seq, WAIT)
            .await;
        let Some(pb::subscribe_response::Item::ConversationEvent(event)) = updated.item else {
            panic!("expected a conversation event: {updated:?}");
        };
        let Some(pb::conversation_event::Kind::ConversationUpdated(change)) = event.kind else {
            panic!("expected ConversationUpdated: {event:?}");
        };
        assert_eq!(change.update_mask.unwrap().paths, ["message_ttl"]);

        let doomed = send(&mesh, &ada, &chat, "gone in an hour").await;
        let (sent, expires) = (doomed.created_at.unwrap(), doomed.expires_at.unwrap());
        assert_eq!(expires.seconds - sent.seconds, 3600, "{backend:?}");
        eventually(WAIT, "bob's inbox entry", || async {
            inbox(&mesh, &bob)
                .await
                .iter()
                .any(|e| e.message_id == doomed.message_id)
                .then_some(())
        })
        .await;

        // An hour passes for this one message.
        expire_now(&mesh, &doomed.message_id).await;

        let erased = stream
            .until(WAIT, |r| {
                common::live::conversation_event(r).is_some_and(|e| {
                    matches!(
                        e.kind,
                        Some(pb::conversation_event::Kind::MessagesExpired(_))
                    )
                })
            })
            .await;
        let event = common::live::conversation_event(&erased).unwrap().clone();
        let Some(pb::conversation_event::Kind::MessagesExpired(expired)) = event.kind else {
            unreachable!()
        };
        assert_eq!(expired.reason, pb::ExpiryReason::MessageTtl as i32);
        let ids: Vec<&str> = expired
            .messages
            .iter()
            .map(|m| m.message_id.as_str())
            .collect();
        assert_eq!(ids, [doomed.message_id.as_str()], "{backend:?}");
        assert_eq!(event.actor_user_id, "", "server-caused");

        let read = mesh
            .message_as(&bob)
            .get_message(pb::GetMessageRequest {
                conversation_id: chat.conversation_id.clone(),
                message_id: doomed.message_id.clone(),
            })
            .await
            .expect("tombstone")
            .into_inner()
            .message
            .unwrap();
        assert_eq!(read.state, pb::MessageState::DeletedForEveryone as i32);
        assert_eq!(read.content, None);
        let kept = mesh
            .message_as(&bob)
            .get_message(pb::GetMessageRequest {
                conversation_id: chat.conversation_id.clone(),
                message_id: kept.message_id.clone(),
            })
            .await
            .expect("kept")
            .into_inner()
            .message
            .unwrap();
        assert_eq!(kept.state, pb::MessageState::Active as i32);
        eventually(WAIT, "bob's inbox entry erased", || async {
            (!inbox(&mesh, &bob)
                .await
                .iter()
                .any(|e| e.message_id == doomed.message_id))
            .then_some(())
        })
        .await;
        mesh.shutdown().await;
    }
}

/// Moves message `id`'s `expires_at` one second into the past in the message database (a ttl
/// is at least an hour).
async fn expire_now(mesh: &TestMesh, id: &str) {
    let db = Database::connect(
        &mesh.config.database_url(),
        "message",
        &mesh.config.database_schema_prefix,
    )
    .await
    .expect("message database");
    let past = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let (past, id) = (At(past), Id(id.parse().expect("message id")));
    let sql = "UPDATE messages SET expires_at = $1 WHERE message_id = $2";
    let moved = match &db {
        Database::Postgres(db) => sqlx::query(sql)
            .bind(past)
            .bind(id)
            .execute(&db.pool)
            .await
            .map(|done| done.rows_affected()),
        Database::Sqlite(db) => sqlx::query(sql)
            .bind(past)
            .bind(id)
            .execute(&db.writer)
            .await
            .map(|done| done.rows_affected()),
    }
    .expect("move expires_at");
    assert_eq!(moved, 1);
    db.close().await;
}

/// Between its expiry and the sweep (here a day away), a message whose time is up reads as
/// erased: GetMessage and ListMessages show a tombstone without content, SearchMessages does
/// not find it, GetEditHistory is FAILED_PRECONDITION MESSAGE_DELETED, ReportMessage too.
#[tokio::test]
async fn an_expired_message_reads_as_erased_before_the_sweep() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start_with(backend, "all", |config| {
            config.retention.sweep_interval = Duration::from_secs(86_400);
        })
        .await
        else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        set_ttl(&mesh, &ada, &chat, Some(3600)).await.expect("set");
        let doomed = send(&mesh, &ada, &chat, "zephyrine secret").await;
        let kept = send(&mesh, &ada, &chat, "zephyrine public").await;
        expire_now(&mesh, &doomed.message_id).await;

        let mut reader = mesh.message_as(&bob);
        let read = reader
            .get_message(pb::GetMessageRequest {
                conversation_id: chat.conversation_id.clone(),
                message_id: doomed.message_id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .message
            .unwrap();
        assert_eq!(
            read.state,
            pb::MessageState::DeletedForEveryone as i32,
            "{backend:?}"
        );
        assert_eq!(read.content, None);
        let history = reader
            .list_messages(pb::ListMessagesRequest {
                conversation_id: chat.conversation_id.clone(),
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner()
            .messages;
        let shown: Vec<(String, Option<String>)> = history
            .into_iter()
            .map(|m| (m.message_id, m.content.map(|c| c.text)))
            .collect();
        assert!(
            shown.contains(&(doomed.message_id.clone(), None)),
            "{shown:?}"
        );
        assert!(
            shown.contains(&(kept.message_id.clone(), Some("zephyrine public".into()))),
            "{shown:?}"
        );
        let found: Vec<String> = reader
            .search_messages(pb::SearchMessagesRequest {
                query: "zephyrine".into(),
                ..Default::default()
            })
            .await
            .expect("search")
            .into_inner()
            .results
            .into_iter()
            .filter_map(|r| r.message.map(|m| m.message_id))
            .collect();
        assert_eq!(found, [kept.message_id.as_str()], "{backend:?}");
        let history = reader
            .get_edit_history(pb::GetEditHistoryRequest {
                conversation_id: chat.conversation_id.clone(),
                message_id: doomed.message_id.clone(),
            })
            .await
            .unwrap_err();
        common::assert_reason(&history, Code::FailedPrecondition, "MESSAGE_DELETED");
        let reported = reader
            .report_message(pb::ReportMessageRequest {
                conversation_id: chat.conversation_id.clone(),
                message_id: doomed.message_id.clone(),
                reason: pb::ReportReason::Spam.into(),
                note: String::new(),
            })
            .await
            .unwrap_err();
        common::assert_reason(&reported, Code::FailedPrecondition, "MESSAGE_DELETED");
        mesh.shutdown().await;
    }
}
