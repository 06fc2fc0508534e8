//! Membership at the exact seq: a removed member's last event of the conversation is their
//! MemberRemoved, live and on replay; a new member's first is their MemberJoined.

use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, TestMesh};
use pb::conversation_event::Kind;
use pb::subscribe_response::Item;
use pb::user_event::Kind as UserKind;

use crate::common::live::*;
use crate::common::messages::send;
use crate::common::users::known_user;

/// Whether `response` concerns `conversation` in any way (durable or ephemeral).
fn concerns(response: &pb::SubscribeResponse, conversation: &str) -> bool {
    match &response.item {
        Some(Item::ConversationEvent(e)) => e.conversation_id == conversation,
        Some(Item::TypingUpdate(t)) => t.conversation_id == conversation,
        Some(Item::ReceiptUpdate(r)) => r.conversation_id == conversation,
        Some(Item::ReadMarkerUpdate(r)) => r.conversation_id == conversation,
        _ => false,
    }
}

#[tokio::test]
async fn a_removed_member_hears_nothing_after_the_removal() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cat = known_user(&mesh).await;
        let club = group_of(&mesh, &ada, &[&bob, &cat]).await;
        let other = group_of(&mesh, &ada, &[&bob, &cat]).await;
        let id = club.conversation_id.clone();
        let mut bob_stream = subscribe_ready(&mesh, &bob).await;
        let before = send(&mesh, &ada, &club, "before").await;
        bob_stream.event_at(&id, before.seq, WAIT).await;

        let removed_at = remove(&mesh, &ada, &id, &bob).await;
        let item = bob_stream.event_at(&id, removed_at, WAIT).await;
        let event = conversation_event(&item).expect("event");
        assert!(
            matches!(&event.kind, Some(Kind::MemberRemoved(r)) if r.user_id == bob.tokens.user_id),
            "{backend:?}: {event:?}"
        );
        let left = bob_stream
            .until(WAIT, |r| {
                user_event(r).is_some_and(|e| matches!(e.kind, Some(UserKind::ConversationLeft(_))))
            })
            .await;
        let Some(UserKind::ConversationLeft(left)) = user_event(&left).and_then(|e| e.kind.clone())
        else {
            unreachable!("matched")
        };
        assert_eq!(
            (
                left.conversation_id.as_str(),
                left.left_at_seq,
                left.reason()
            ),
            (id.as_str(), removed_at, pb::LeaveReason::Removed)
        );
        let removal_seen = bob_stream.seen.len();

        // After it: messages, a reaction, an edit and typing in the club; none may reach Bob.
        let after = send(&mesh, &ada, &club, "after").await;
        react(&mesh, &cat, &after, "🎉").await.expect("react");
        edit_text(&mesh, &ada, &before, "before, edited").await;
        set_typing(&mesh, &cat, &id, true).await.expect("typing");
        // The same kinds in a conversation Bob is still in do reach him: once they have, the
        // club's would have too.
        set_typing(&mesh, &cat, &other.conversation_id, true)
            .await
            .expect("typing");
        let sentinel = send(&mesh, &ada, &other, "sentinel").await;
        bob_stream
            .event_at(&other.conversation_id, sentinel.seq, WAIT)
            .await;
        bob_stream
            .until(WAIT, |r| {
                typing(r).is_some_and(|t| t.conversation_id == other.conversation_id)
            })
            .await;
        bob_stream.during(Duration::from_millis(300)).await;
        let leaked: Vec<_> = bob_stream.seen[removal_seen..]
            .iter()
            .filter(|r| concerns(r, &id))
            .collect();
        assert!(
            leaked.is_empty(),
            "{backend:?}: reached a removed member: {leaked:?}"
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn a_new_member_starts_at_their_join() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let dan = known_user(&mesh).await;
        let club = group_of(&mesh, &ada, &[&bob]).await;
        let id = club.conversation_id.clone();
        let mut dan_stream = subscribe_ready(&mesh, &dan).await;
        for n in 0..3 {
            send(&mesh, &ada, &club, &format!("before Dan {n}")).await;
        }
        add(&mesh, &ada, &id, &[&dan]).await;
        let message = send(&mesh, &bob, &club, "welcome, Dan").await;

        let got = dan_stream
            .collect_until(WAIT, |items| seqs_of(items, &id).contains(&message.seq))
            .await;
        let events: Vec<&pb::ConversationEvent> = got
            .iter()
            .filter_map(conversation_event)
            .filter(|e| e.conversation_id == id)
            .collect();
        let joined_at = events[0].seq;
        assert!(
            matches!(&events[0].kind, Some(Kind::MemberJoined(j))
                if j.member.as_ref().is_some_and(|m| m.user_id == dan.tokens.user_id)),
            "{backend:?}: a new member's first event is their MemberJoined: {}",
            describe_all(&got)
        );
        assert_eq!(
            seqs_of(&got, &id),
            (joined_at..=message.seq).collect::<Vec<_>>()
        );
        let joined = dan_stream
            .user_event_where(WAIT, |kind| match kind {
                UserKind::ConversationJoined(joined) => Some(joined.clone()),
                _ => None,
            })
            .await;
        assert_eq!(joined.joined_at_seq, joined_at);
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn replay_respects_membership() {
    let _gauges = gauges_shared().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let cat = known_user(&mesh).await;
        let club = group_of(&mesh, &ada, &[&cat]).await;
        let id = club.conversation_id.clone();
        let cursor = caught_up(&mesh, &ada, &cat, &club).await;

        // Away: a message Cat may see, her removal, and more she may not.
        let seen = send(&mesh, &ada, &club, "still yours").await;
        let removed_at = remove(&mesh, &ada, &id, &cat).await;
        send(&mesh, &ada, &club, "not for Cat").await;
        send(&mesh, &ada, &club, "nor this").await;
        let mut back = subscribe(&mesh, &cat, &cursor).await;
        let (replayed, ready) = back.until_ready(WAIT).await;
        assert_eq!(usize::try_from(ready.replayed_count), Ok(replayed.len()));
        back.through(&id, removed_at, WAIT).await;
        back.during(Duration::from_millis(300)).await;
        assert_eq!(
            seqs_of(&back.seen, &id),
            [seen.seq, removed_at],
            "{backend:?}: replay stops at the removal: {}",
            describe_all(&back.seen)
        );
        let after_removal = back.cursor.clone();
        drop(back);

        // Away again: more she may not see, then she is added back, then one she may.
        send(&mesh, &ada, &club, "still not for Cat").await;
        add(&mesh, &ada, &id, &[&cat]).await;
        let welcome = send(&mesh, &ada, &club, "welcome back").await;
        let mut back = subscribe(&mesh, &cat, &after_removal).await;
        back.until_ready(WAIT).await;
        back.through(&id, welcome.seq, WAIT).await;
        let seqs = seqs_of(&back.seen, &id);
        assert_eq!(
            seqs,
            [welcome.seq - 1, welcome.seq],
            "{backend:?}: replay resumes at the re-join: {}",
            describe_all(&back.seen)
        );
        let rejoin = back
            .seen
            .iter()
            .filter_map(conversation_event)
            .find(|e| e.seq == welcome.seq - 1)
            .expect("re-join");
        assert!(matches!(&rejoin.kind, Some(Kind::MemberJoined(j))
            if j.member.as_ref().is_some_and(|m| m.user_id == cat.tokens.user_id)));
        mesh.shutdown().await;
    }
}
