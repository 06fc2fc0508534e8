//! Reports and operators' purges end to end, on both backends (docs/lifecycle.md, docs/admin.md):
//! a member reports a message (once per message; never their own; a stranger finds nothing;
//! every bad field named; a rate limit), the operator reads the report with its copy of the
//! message after the sender deleted it for everyone, and resolves it once; a purge erases a
//! conversation's messages before a time, members' streams see MessagesExpired
//! (OPERATOR_PURGE), and every operator action is in the audit log. The admin API reaches the
//! message service through its internal contract over gRPC, as deployed.

use std::time::Duration;

use common::live::subscribe_ready;
use common::messages::{direct, group, send};
use common::users::known_user;
use common::{assert_reason, violated_fields};
use echo_proto::echo::admin::v1 as admin;
use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, OPERATOR_NAME, SignedIn, TestMesh};
use tonic::Code;

mod common;

const WAIT: Duration = Duration::from_secs(10);
const REASON: &str = "reported by members (ticket 7)";

fn report_request(
    conversation: &pb::Conversation,
    message: &pb::Message,
    reason: pb::ReportReason,
    note: &str,
) -> pb::ReportMessageRequest {
    pb::ReportMessageRequest {
        conversation_id: conversation.conversation_id.clone(),
        message_id: message.message_id.clone(),
        reason: reason.into(),
        note: note.into(),
    }
}

async fn report(
    mesh: &TestMesh,
    who: &SignedIn,
    request: pb::ReportMessageRequest,
) -> Result<String, tonic::Status> {
    mesh.message_as(who)
        .report_message(request)
        .await
        .map(|r| r.into_inner().report_id)
}

async fn reports(mesh: &TestMesh, include_resolved: bool) -> Vec<admin::Report> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = mesh
            .admin()
            .list_reports(admin::ListReportsRequest {
                page_size: 1,
                page_token,
                include_resolved,
            })
            .await
            .expect("list reports")
            .into_inner();
        all.extend(page.reports);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

async fn audit_actions(mesh: &TestMesh) -> Vec<(String, String, String)> {
    let log = mesh
        .admin()
        .list_audit_log(admin::ListAuditLogRequest {
            page_size: 200,
            page_token: String::new(),
        })
        .await
        .expect("audit log")
        .into_inner()
        .entries;
    log.into_iter()
        .map(|e| (e.action, e.outcome, e.details))
        .collect()
}

/// A member reports a message; reporting again answers the same report; the operator sees it,
/// with the message's content, after the sender deleted the message for everyone, and
/// resolves it once. Every refusal has its code, reason or field.
#[tokio::test]
async fn reports_reach_operators_and_outlive_the_message() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let stranger = known_user(&mesh).await;
        let team = group(&mesh, &ada, pb::ConversationType::Group, &[&bob]).await;
        let spam = send(&mesh, &ada, &team, "buy followers at spam.example").await;

        let request = report_request(&team, &spam, pb::ReportReason::Spam, "third time today");
        let id = report(&mesh, &bob, request.clone()).await.expect("report");
        let again = report(&mesh, &bob, request.clone()).await.expect("again");
        assert_eq!(
            again, id,
            "{backend:?}: one report per reporter and message"
        );

        let own = report(&mesh, &ada, request.clone()).await.unwrap_err();
        assert_reason(&own, Code::PermissionDenied, "NOT_ALLOWED");
        let outside = report(&mesh, &stranger, request.clone()).await.unwrap_err();
        assert_reason(&outside, Code::NotFound, "CONVERSATION_NOT_FOUND");
        let long = "x".repeat(1_001);
        for (bad, fields) in [
            (
                pb::ReportMessageRequest {
                    reason: 0,
                    ..request.clone()
                },
                vec!["reason"],
            ),
            (
                pb::ReportMessageRequest {
                    reason: 99,
                    ..request.clone()
                },
                vec!["reason"],
            ),
            (
                pb::ReportMessageRequest {
                    note: long.clone(),
                    ..request.clone()
                },
                vec!["note"],
            ),
            (
                pb::ReportMessageRequest {
                    note: "a\u{0}b".into(),
                    ..request.clone()
                },
                vec!["note"],
            ),
            (
                pb::ReportMessageRequest::default(),
                vec!["conversation_id", "message_id", "reason"],
            ),
        ] {
            let status = report(&mesh, &bob, bad.clone()).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
            assert_eq!(violated_fields(&status), fields, "{bad:?}");
        }
        // A message already deleted for everyone has nothing left to report.
        let gone = send(&mesh, &ada, &team, "oops").await;
        delete_for_everyone(&mesh, &ada, &team, &gone).await;
        let deleted = report(
            &mesh,
            &bob,
            report_request(&team, &gone, pb::ReportReason::Other, ""),
        )
        .await
        .unwrap_err();
        assert_reason(&deleted, Code::FailedPrecondition, "MESSAGE_DELETED");

        // The sender deletes the reported message: the operator still reads what was reported.
        delete_for_everyone(&mesh, &ada, &team, &spam).await;
        let open = reports(&mesh, false).await;
        assert_eq!(open.len(), 1, "{backend:?}: {open:?}");
        let seen = &open[0];
        assert_eq!(seen.report_id, id);
        assert_eq!(seen.reason, "SPAM");
        assert_eq!(seen.note, "third time today");
        assert_eq!(seen.reporter_id, bob.tokens.user_id);
        assert_eq!(seen.message_id, spam.message_id);
        assert_eq!(seen.conversation_id, team.conversation_id);
        let copy = seen.message.as_ref().expect("the moderation copy");
        assert_eq!(copy.sender_user_id, ada.tokens.user_id);
        assert_eq!(
            copy.content.as_ref().map(|c| c.text.as_str()),
            Some("buy followers at spam.example")
        );
        assert!(seen.resolved_at.is_none());

        let resolved = mesh
            .admin()
            .resolve_report(admin::ResolveReportRequest {
                report_id: id.clone(),
                resolution: "sender warned".into(),
                reason: REASON.into(),
            })
            .await
            .expect("resolve")
            .into_inner()
            .report
            .unwrap();
        assert_eq!(resolved.resolution, "sender warned");
        assert_eq!(resolved.resolved_by, OPERATOR_NAME);
        assert!(resolved.resolved_at.is_some());
        let twice = mesh
            .admin()
            .resolve_report(admin::ResolveReportRequest {
                report_id: id.clone(),
                resolution: "no action".into(),
                reason: REASON.into(),
            })
            .await
            .expect("resolve again")
            .into_inner()
            .report
            .unwrap();
        assert_eq!(twice, resolved, "the first resolution stays");
        let unknown = mesh
            .admin()
            .resolve_report(admin::ResolveReportRequest {
                report_id: spam.message_id.clone(),
                resolution: "no action".into(),
                reason: REASON.into(),
            })
            .await
            .unwrap_err();
        assert_reason(&unknown, Code::NotFound, "REPORT_NOT_FOUND");
        assert!(reports(&mesh, false).await.is_empty());
        assert_eq!(reports(&mesh, true).await, [resolved]);

        let actions = audit_actions(&mesh).await;
        let outcome = |action: &str| {
            actions
                .iter()
                .filter(|(a, _, _)| a == action)
                .map(|(_, o, _)| o.as_str())
                .collect::<Vec<_>>()
        };
        assert!(outcome("ListReports").iter().all(|o| *o == "OK"));
        assert_eq!(outcome("ResolveReport"), ["NOT_FOUND", "OK", "OK"]);
        mesh.shutdown().await;
    }
}

/// Twenty reports per user in ten minutes; the next is RESOURCE_EXHAUSTED with RetryInfo.
#[tokio::test]
async fn reports_are_rate_limited() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        for n in 0..21 {
            let message = send(&mesh, &ada, &chat, &format!("spam {n}")).await;
            let answer = report(
                &mesh,
                &bob,
                report_request(&chat, &message, pb::ReportReason::Spam, ""),
            )
            .await;
            if n < 20 {
                answer.unwrap_or_else(|s| panic!("report {n} on {backend:?}: {s:?}"));
            } else {
                let status = answer.unwrap_err();
                assert_reason(&status, Code::ResourceExhausted, "RATE_LIMITED");
            }
        }
        assert_eq!(reports(&mesh, false).await.len(), 20);
        mesh.shutdown().await;
    }
}

/// An operator purges a conversation's messages before a time: each is erased as a deletion
/// for everyone, a member's stream sees MessagesExpired (OPERATOR_PURGE), a later message stays,
/// purging again erases nothing, an unknown conversation is NOT_FOUND, and bad fields are named.
#[tokio::test]
async fn purge_erases_a_conversation_before_a_time() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        let mut old = Vec::new();
        for n in 0..3 {
            old.push(send(&mesh, &ada, &chat, &format!("old {n}")).await);
        }
        let mut stream = subscribe_ready(&mesh, &bob).await;
        let before = prost_types::Timestamp::from(std::time::SystemTime::now());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let kept = send(&mesh, &ada, &chat, "after the cut").await;

        let purge = |conversation_id: String, before: Option<prost_types::Timestamp>| {
            let mut client = mesh.admin();
            async move {
                client
                    .purge_conversation_messages(admin::PurgeConversationMessagesRequest {
                        conversation_id,
                        before,
                        reason: REASON.into(),
                    })
                    .await
                    .map(|r| r.into_inner().messages_purged)
            }
        };
        let purged = purge(chat.conversation_id.clone(), Some(before))
            .await
            .expect("purge");
        assert_eq!(purged, 3, "{backend:?}");

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
        assert_eq!(expired.reason, pb::ExpiryReason::OperatorPurge as i32);
        let ids: Vec<&str> = expired
            .messages
            .iter()
            .map(|m| m.message_id.as_str())
            .collect();
        let old_ids: Vec<&str> = old.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, old_ids, "{backend:?}");
        for (message, state) in old
            .iter()
            .map(|m| (m, pb::MessageState::DeletedForEveryone))
            .chain([(&kept, pb::MessageState::Active)])
        {
            let read = mesh
                .message_as(&bob)
                .get_message(pb::GetMessageRequest {
                    conversation_id: chat.conversation_id.clone(),
                    message_id: message.message_id.clone(),
                })
                .await
                .expect("read")
                .into_inner()
                .message
                .unwrap();
            assert_eq!(read.state, state as i32, "{}", message.message_id);
        }

        let again = purge(chat.conversation_id.clone(), Some(before))
            .await
            .expect("purge again");
        assert_eq!(again, 0);
        let unknown = purge(ada.tokens.user_id.clone(), Some(before))
            .await
            .unwrap_err();
        assert_reason(&unknown, Code::NotFound, "CONVERSATION_NOT_FOUND");
        let missing = purge(chat.conversation_id.clone(), None).await.unwrap_err();
        assert_eq!(violated_fields(&missing), ["before"]);
        let bad = purge("nope".into(), Some(before)).await.unwrap_err();
        assert_eq!(violated_fields(&bad), ["conversation_id"]);

        let purges: Vec<(String, String)> = audit_actions(&mesh)
            .await
            .into_iter()
            .filter(|(action, _, _)| action == "PurgeConversationMessages")
            .map(|(_, outcome, details)| (outcome, details))
            .collect();
        // Newest first.
        assert_eq!(
            purges,
            [
                ("INVALID_ARGUMENT".to_owned(), "{}".to_owned()),
                ("INVALID_ARGUMENT".to_owned(), "{}".to_owned()),
                ("NOT_FOUND".to_owned(), "{}".to_owned()),
                ("OK".to_owned(), r#"{"messages_purged":0}"#.to_owned()),
                ("OK".to_owned(), r#"{"messages_purged":3}"#.to_owned()),
            ]
        );
        mesh.shutdown().await;
    }
}

async fn delete_for_everyone(
    mesh: &TestMesh,
    who: &SignedIn,
    conversation: &pb::Conversation,
    message: &pb::Message,
) {
    mesh.message_as(who)
        .delete_message(pb::DeleteMessageRequest {
            conversation_id: conversation.conversation_id.clone(),
            message_id: message.message_id.clone(),
            scope: pb::DeleteScope::ForEveryone.into(),
        })
        .await
        .expect("delete for everyone");
}
