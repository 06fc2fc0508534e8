//! Reports and operators' purges (docs/lifecycle.md): a report keeps its copy of the message
//! after a deletion for everyone (the moderation record is the one table the no-trace scan may
//! find it in, and only until the resolved report's retention runs out), one report per
//! reporter and message, a resolution recorded once; a purge erases a conversation's messages
//! before a time in batches, walking by seq, with one MessagesExpired (OPERATOR_PURGE) each.

use chrono::TimeDelta;
use echo_ids::ReportId;
use echo_message::error::MessageError;
use echo_message::messages::expiry::purge;
use echo_message::moderation::{Report, Resolution};
use echo_proto::echo::message::v1 as pb;
use uuid::Uuid;

use crate::common::*;
use crate::edits::trace::traces;

fn report_of(message: &echo_message::store::Message, reporter: echo_ids::UserId) -> Report {
    Report {
        id: ReportId::new_v7(),
        conversation_id: message.conversation_id,
        message_id: message.id,
        reporter_id: reporter,
        reason: pb::ReportReason::Spam,
        note: "sent to the whole group".into(),
        snapshot: pb::Message {
            message_id: message.id.to_string(),
            content: message.content.clone(),
            ..pb::Message::default()
        },
        created_at: now(),
        resolved: None,
    }
}

async fn reports_keep_the_message_until_their_retention(env: &Env) {
    let marker = Uuid::new_v4().simple().to_string();
    let [owner, ada, bob] = env.users().await;
    let owner_device = device(owner);
    let group = env.group(owner_device, &[ada, bob]).await;
    let message = env
        .say(owner_device, group.id, &format!("buy now {marker}"))
        .await;

    let first = report_of(&message, ada);
    assert_eq!(env.store.add_report(&first).await.unwrap(), first.id);
    // Reporting again answers the first report and changes nothing.
    let again = Report {
        note: "another note".into(),
        ..report_of(&message, ada)
    };
    assert_eq!(env.store.add_report(&again).await.unwrap(), first.id);
    let second = report_of(&message, bob);
    assert_eq!(env.store.add_report(&second).await.unwrap(), second.id);
    let kept = env.store.report_of(message.id, ada).await.unwrap().unwrap();
    assert_eq!(kept, first);

    // Deleted for everyone: the copy stays, and it is the only trace.
    assert!(
        env.store
            .delete_for_everyone(owner_device, group.id, message.id, now())
            .await
            .unwrap()
    );
    assert_eq!(traces(env, &marker).await, ["message_reports.snapshot"]);

    // The queue, by id: open ones; a page after the first.
    let open = env.store.reports(None, 10, false).await.unwrap();
    assert_eq!(open, [first.clone(), second.clone()]);
    let after = env.store.reports(Some(first.id), 10, false).await.unwrap();
    assert_eq!(after, std::slice::from_ref(&second));

    // Resolved once: the first resolution stays.
    let resolution = Resolution {
        at: now(),
        resolution: "sender suspended".into(),
        by: "alice".into(),
    };
    let resolved = env
        .store
        .resolve_report(first.id, &resolution)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.resolved.as_ref(), Some(&resolution));
    let later = Resolution {
        at: now() + TimeDelta::seconds(5),
        resolution: "no action".into(),
        by: "bob".into(),
    };
    let unchanged = env.store.resolve_report(first.id, &later).await.unwrap();
    assert_eq!(unchanged, Some(resolved.clone()));
    assert_eq!(
        env.store
            .resolve_report(ReportId::new_v7(), &later)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        env.store.reports(None, 10, false).await.unwrap(),
        std::slice::from_ref(&second)
    );
    assert_eq!(
        env.store.reports(None, 10, true).await.unwrap(),
        [resolved, second.clone()]
    );

    // Retention: resolved reports go once their time is up; open ones stay.
    let erased = env
        .store
        .erase_resolved_reports(resolution.at)
        .await
        .unwrap();
    assert_eq!(erased, 0, "resolved exactly then: not before it");
    let erased = env
        .store
        .erase_resolved_reports(resolution.at + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(erased, 1);
    assert_eq!(env.store.reports(None, 10, true).await.unwrap(), [second]);
    assert_eq!(traces(env, &marker).await, ["message_reports.snapshot"]);
}

async fn purge_erases_before_a_time_in_batches(env: &Env) {
    let [owner, ada] = env.users().await;
    let owner_device = device(owner);
    let group = env.group(owner_device, &[ada]).await;
    let t0 = now() - TimeDelta::hours(1);
    let mut sent = Vec::new();
    for minute in 0..5 {
        let new = text_message(group.id, &format!("message {minute}"));
        sent.push(
            env.send_at(owner_device, &new, t0 + TimeDelta::minutes(minute))
                .await,
        );
    }
    let other = env.group(owner_device, &[ada]).await;
    let untouched = env.say(owner_device, other.id, "elsewhere").await;

    // Before minute 3: three messages, in batches of two (2 + 1).
    let purged = purge(&env.store, group.id, t0 + TimeDelta::minutes(3), 2)
        .await
        .unwrap();
    assert_eq!(purged, 3);
    for (i, message) in sent.iter().enumerate() {
        let stored = env
            .store
            .message(group.id, message.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.deleted_at.is_some(), i < 3, "message {i}");
        assert_eq!(stored.content.is_none(), i < 3, "message {i}");
    }
    let expired: Vec<pb::MessagesExpired> = env
        .events_of(group.id)
        .await
        .into_iter()
        .filter_map(|event| match kind(&event).clone() {
            pb::conversation_event::Kind::MessagesExpired(expired) => Some(expired),
            _ => None,
        })
        .collect();
    let sizes: Vec<usize> = expired.iter().map(|e| e.messages.len()).collect();
    assert_eq!(sizes, [2, 1]);
    assert!(
        expired
            .iter()
            .all(|e| e.reason == pb::ExpiryReason::OperatorPurge as i32)
    );
    let ids: Vec<String> = expired
        .iter()
        .flat_map(|e| e.messages.iter().map(|m| m.message_id.clone()))
        .collect();
    let first_three: Vec<String> = sent[..3].iter().map(|m| m.id.to_string()).collect();
    assert_eq!(ids, first_three);
    let group_now = env.conversation(group.id).await;
    assert_eq!(group_now.member_count, 2);

    // Again: nothing left before that time; another conversation is untouched.
    let again = purge(&env.store, group.id, t0 + TimeDelta::minutes(3), 2)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let elsewhere = env
        .store
        .message(other.id, untouched.id)
        .await
        .unwrap()
        .unwrap();
    assert!(elsewhere.deleted_at.is_none());
    let unknown = purge(&env.store, echo_ids::ConversationId::new_v7(), now(), 2).await;
    assert!(
        matches!(unknown, Err(MessageError::ConversationNotFound)),
        "{unknown:?}"
    );
}

conformance!(
    reports_keep_the_message_until_their_retention,
    purge_erases_before_a_time_in_batches,
);
