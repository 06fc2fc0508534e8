//! Disappearing messages and retention (docs/lifecycle.md): who sets a conversation's
//! message ttl, `expires_at` fixed at send, and the sweep's batches erasing exactly as a
//! deletion for everyone (the no-trace scan of `edits_trace.rs`), with one MessagesExpired per
//! conversation, reason and batch. The sweep's clock is its argument: no test sleeps.

use chrono::{DateTime, TimeDelta, Utc};
use echo_message::error::MessageError;
use echo_message::messages::expiry::{SweepReport, SweepSettings, sweep};
use echo_message::store::{ConversationUpdate, Kind, Retention, Role};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::MessageContent;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::*;
use crate::edits::deletes::react_and_pin;
use crate::edits::trace::traces;

const HOUR: TimeDelta = TimeDelta::hours(1);

fn ttl(ttl: Option<TimeDelta>) -> ConversationUpdate {
    ConversationUpdate {
        message_ttl: Some(ttl),
        ..ConversationUpdate::default()
    }
}

fn settings(retention: Retention, batch_size: usize) -> SweepSettings {
    SweepSettings {
        retention,
        batch_size,
        interval: std::time::Duration::from_secs(60),
        resolved_reports: TimeDelta::days(365),
    }
}

async fn sweep_at(env: &Env, settings: &SweepSettings, at: DateTime<Utc>) -> SweepReport {
    sweep(&env.store, settings, at, &CancellationToken::new())
        .await
        .expect("sweep")
}

/// The MessagesExpired events of `conversation`, in seq order.
async fn expired_events(
    env: &Env,
    conversation: echo_ids::ConversationId,
) -> Vec<(pb::ConversationEvent, pb::MessagesExpired)> {
    env.events_of(conversation)
        .await
        .into_iter()
        .filter_map(|event| match kind(&event).clone() {
            pb::conversation_event::Kind::MessagesExpired(expired) => Some((event, expired)),
            _ => None,
        })
        .collect()
}

/// The owner or an admin of a group or channel sets and clears the ttl (one
/// ConversationUpdated each, path `message_ttl`; the same value again is no change); a member
/// is refused; a stranger finds no conversation; either user of a direct conversation sets it,
/// but still nothing else there.
async fn message_ttl_who_sets_it(env: &Env) {
    let [owner, admin, member, stranger, peer] = env.users().await;
    let owner_device = device(owner);
    let group = env.group(owner_device, &[admin, member]).await;
    env.store
        .set_role(owner_device, group.id, admin, Role::Admin, now())
        .await
        .expect("promote");
    let set = env
        .store
        .update_conversation(owner_device, group.id, &ttl(Some(HOUR)), now())
        .await
        .unwrap()
        .expect("changed");
    assert_eq!(set.message_ttl, Some(HOUR));
    let events = env.events_of(group.id).await;
    let last = events.last().expect("event");
    let pb::conversation_event::Kind::ConversationUpdated(updated) = kind(last) else {
        panic!("expected ConversationUpdated, got {last:?}");
    };
    assert_eq!(updated.update_mask.as_ref().unwrap().paths, ["message_ttl"]);
    let snapshot = updated.conversation.as_ref().unwrap();
    assert_eq!(snapshot.message_ttl.as_ref().map(|d| d.seconds), Some(3600));
    assert_eq!(
        env.store
            .update_conversation(owner_device, group.id, &ttl(Some(HOUR)), now())
            .await
            .unwrap(),
        None,
        "the same ttl again changes nothing"
    );
    let week = TimeDelta::days(7);
    let by_admin = env
        .store
        .update_conversation(device(admin), group.id, &ttl(Some(week)), now())
        .await
        .unwrap()
        .expect("changed");
    assert_eq!(by_admin.message_ttl, Some(week));
    let refused = env
        .store
        .update_conversation(device(member), group.id, &ttl(None), now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::NotAllowed)),
        "{refused:?}"
    );
    let refused = env
        .store
        .update_conversation(device(stranger), group.id, &ttl(None), now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::ConversationNotFound)),
        "{refused:?}"
    );
    let cleared = env
        .store
        .update_conversation(owner_device, group.id, &ttl(None), now())
        .await
        .unwrap()
        .expect("changed");
    assert_eq!(cleared.message_ttl, None);
    assert_eq!(env.conversation(group.id).await.message_ttl, None);

    // A channel's plain member is refused too.
    let channel = env
        .group_at(Kind::Channel, owner_device, &[member], now())
        .await;
    let refused = env
        .store
        .update_conversation(device(member), channel.id, &ttl(Some(HOUR)), now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::NotAllowed)),
        "{refused:?}"
    );

    // Either user of a direct conversation; a title is still refused there.
    let direct = env.direct(device(peer), owner).await;
    for (who, value) in [(peer, Some(HOUR)), (owner, None)] {
        let changed = env
            .store
            .update_conversation(device(who), direct.id, &ttl(value), now())
            .await
            .unwrap()
            .expect("changed");
        assert_eq!(changed.message_ttl, value);
    }
    let title = ConversationUpdate {
        title: Some("no".into()),
        message_ttl: Some(Some(HOUR)),
        ..ConversationUpdate::default()
    };
    let refused = env
        .store
        .update_conversation(device(peer), direct.id, &title, now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::NotAllowed)),
        "{refused:?}"
    );
}

/// A message sent after the ttl was set carries `expires_at` = send + ttl; one sent before
/// carries none and never expires. At its time the sweep erases it exactly as a deletion for
/// everyone: the content (text, attachment, location, edits, mention, reaction, pin) is in no
/// column of any table or search index (the no-trace scan), counters and the thread root's
/// reply count drop, the conversation's last message moves back, and one server-caused
/// MessagesExpired (reason MESSAGE_TTL) names it.
async fn expired_message_is_erased_without_trace(env: &Env) {
    let marker = Uuid::new_v4().simple().to_string();
    let [owner, ada] = env.users().await;
    let (owner_device, ada_device) = (device(owner), device(ada));
    let group = env.group(owner_device, &[ada]).await;
    let t0 = now();
    let before = env.say(owner_device, group.id, "kept forever").await;
    assert_eq!(before.expires_at, None);
    let root = env.say(ada_device, group.id, "a thread root").await;
    env.store
        .update_conversation(owner_device, group.id, &ttl(Some(HOUR)), t0)
        .await
        .unwrap()
        .expect("ttl set");
    let content = MessageContent {
        text: format!("@ada secret {marker}"),
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
        location: None,
    };
    let mut new = new_message(group.id, content);
    new.mentioned = vec![ada];
    new.thread_root_message_id = Some(root.id);
    let sent_at = now();
    let doomed = env.send_at(owner_device, &new, sent_at).await;
    assert_eq!(doomed.expires_at, Some(sent_at + HOUR));
    react_and_pin(env, group.id, doomed.id, ada).await;
    let member = env.member(group.id, ada).await;
    assert_eq!((member.unread_count, member.mention_count), (2, 1));
    assert_eq!(
        env.conversation(group.id).await.last_message_id,
        Some(doomed.id)
    );
    assert_eq!(
        env.store
            .message(group.id, root.id)
            .await
            .unwrap()
            .unwrap()
            .reply_count,
        1
    );
    assert!(
        !traces(env, &marker).await.is_empty(),
        "the scan sees it first"
    );

    let everything = settings(Retention::default(), 1000);
    let early = sweep_at(env, &everything, sent_at + HOUR - TimeDelta::seconds(1)).await;
    assert_eq!(early, SweepReport::default(), "not due yet");
    let last_seq = env.conversation(group.id).await.last_seq;
    let report = sweep_at(env, &everything, sent_at + HOUR).await;
    assert_eq!(
        report,
        SweepReport {
            batches: 1,
            erased: 1,
            reports_erased: 0,
        }
    );

    let found = traces(env, &marker).await;
    assert!(
        found.is_empty(),
        "the expired content is still in {found:?}"
    );
    let tombstone = env
        .store
        .message(group.id, doomed.id)
        .await
        .unwrap()
        .unwrap();
    assert!(tombstone.content.is_none());
    assert_eq!(tombstone.deleted_at, Some(sent_at + HOUR));
    let member = env.member(group.id, ada).await;
    assert_eq!((member.unread_count, member.mention_count), (1, 0));
    assert_eq!(
        env.store
            .message(group.id, root.id)
            .await
            .unwrap()
            .unwrap()
            .reply_count,
        0
    );
    let conversation = env.conversation(group.id).await;
    assert_eq!(conversation.last_message_id, Some(root.id));
    assert_eq!(conversation.last_seq, last_seq + 1);
    let expired = expired_events(env, group.id).await;
    assert_eq!(expired.len(), 1);
    let (event, body) = &expired[0];
    assert_eq!(event.seq, last_seq + 1);
    assert_eq!(
        (event.actor_user_id.as_str(), event.actor_device_id.as_str()),
        ("", "")
    );
    assert_eq!(body.reason, pb::ExpiryReason::MessageTtl as i32);
    assert_eq!(body.messages.len(), 1);
    assert_eq!(body.messages[0].message_id, doomed.id.to_string());
    assert_eq!(body.messages[0].thread_root_message_id, root.id.to_string());

    // Much later: the message sent before the ttl is still there, nothing more happens.
    let later = sweep_at(env, &everything, sent_at + TimeDelta::days(365)).await;
    assert_eq!(later, SweepReport::default());
    let kept = env
        .store
        .message(group.id, before.id)
        .await
        .unwrap()
        .unwrap();
    assert!(kept.content.is_some() && kept.deleted_at.is_none());
}

/// Retention erases messages older than their kind's max age in batches of the configured
/// size (5 messages, batch 2: three batches, three MessagesExpired with 2, 2 and 1 ids, reason
/// RETENTION); a kind without a max age keeps everything.
async fn retention_erases_in_batches(env: &Env) {
    let [owner, ada] = env.users().await;
    let owner_device = device(owner);
    let group = env.group(owner_device, &[ada]).await;
    let direct = env.direct(owner_device, ada).await;
    let t0 = now();
    let old = say_many(env, owner_device, group.id, 5, t0).await;
    say_many(env, owner_device, direct.id, 2, t0).await;
    let retention = Retention {
        group: Some(TimeDelta::days(30)),
        ..Retention::default()
    };
    let batches = settings(retention, 2);
    let too_early = sweep_at(env, &batches, t0 + TimeDelta::days(30)).await;
    assert_eq!(too_early, SweepReport::default());
    let report = sweep_at(env, &batches, t0 + TimeDelta::days(31)).await;
    assert_eq!(
        report,
        SweepReport {
            batches: 3,
            erased: 5,
            reports_erased: 0,
        }
    );
    let expired = expired_events(env, group.id).await;
    let sizes: Vec<usize> = expired.iter().map(|(_, e)| e.messages.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert!(
        expired
            .iter()
            .all(|(_, e)| e.reason == pb::ExpiryReason::Retention as i32)
    );
    let ids: Vec<String> = expired
        .iter()
        .flat_map(|(_, e)| e.messages.iter().map(|m| m.message_id.clone()))
        .collect();
    let sent: Vec<String> = old.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(ids, sent, "oldest first, each once");
    assert_eq!(env.member(group.id, ada).await.unread_count, 0);
    assert_eq!(env.conversation(group.id).await.last_message_id, None);
    let window = env.store.messages(direct.id, all()).await.unwrap();
    assert!(window.iter().all(|m| m.content.is_some()), "direct kept");
}

/// Two sweeps at once (two instances) erase every due message exactly once between them:
/// each id is in exactly one MessagesExpired.
async fn concurrent_sweeps_erase_once(env: &Env) {
    let [owner, ada] = env.users().await;
    let owner_device = device(owner);
    let mut conversations = Vec::new();
    let t0 = now();
    for _ in 0..3 {
        let group = env.group(owner_device, &[ada]).await;
        say_many(env, owner_device, group.id, 4, t0).await;
        conversations.push(group.id);
    }
    let retention = Retention {
        group: Some(HOUR),
        ..Retention::default()
    };
    let batches = settings(retention, 3);
    let at = t0 + TimeDelta::days(1);
    let sweeps = (0..2).map(|_| {
        let store = env.store.clone();
        tokio::spawn(async move {
            sweep(&store, &batches, at, &CancellationToken::new())
                .await
                .expect("sweep")
        })
    });
    let reports = crate::edits::futures_join(sweeps).await;
    assert_eq!(
        reports.iter().map(|r| r.erased).sum::<usize>(),
        12,
        "{reports:?}"
    );
    let mut ids = Vec::new();
    for conversation in conversations {
        for (_, expired) in expired_events(env, conversation).await {
            ids.extend(expired.messages.into_iter().map(|m| m.message_id));
        }
    }
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((total, ids.len()), (12, 12));
}

conformance!(
    message_ttl_who_sets_it,
    expired_message_is_erased_without_trace,
    retention_erases_in_batches,
    concurrent_sweeps_erase_once,
);
