//! Creating conversations: direct ones (once per pair), groups and channels (once per key),
//! their members, seqs and events, and the refusals.
//! Over 400 lines as one piece: one operation (creation) with all its cases.

use echo_ids::{ConversationId, UserId};
use echo_message::error::MessageError;
use echo_message::store::{Kind, NewConversation, Role};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1 as pb;
use pb::conversation_event::Kind as Event;
use pb::user_event::Kind as UserEvent;

use crate::common::*;

/// The first call creates the conversation with seqs 1-3 (ConversationCreated, MemberJoined
/// for the actor, then the peer) and a ConversationJoined user event for each; later calls
/// from either user answer the same conversation and write nothing.
pub async fn create_direct_creates_once(env: &Env) {
    let [ada, bob] = env.users().await;
    let actor = device(ada);
    let (id, at) = (ConversationId::new_v7(), now());
    let (conversation, created) = env.store.create_direct(actor, bob, id, at).await.unwrap();
    assert!(created);
    assert_eq!(conversation.id, id);
    assert_eq!(conversation.kind, Kind::Direct);
    assert_eq!(conversation.title, "");
    assert_eq!(conversation.avatar, None);
    assert_eq!(conversation.created_by, ada);
    assert_eq!(conversation.created_at, at);
    assert_eq!(conversation.direct_pair, Some((ada.min(bob), ada.max(bob))));
    assert_eq!(conversation.member_count, 2);
    assert_eq!(conversation.last_seq, 3);
    assert_eq!(conversation.last_activity_at, at);
    assert_eq!(conversation.last_message_id, None);
    assert_eq!(env.conversation(id).await, conversation);

    for (user, seq, added_by) in [(ada, 2, None), (bob, 3, Some(ada))] {
        let member = env.member(id, user).await;
        assert_eq!(member.conversation_id, id);
        assert_eq!(
            member.role,
            Role::Member,
            "both users of a direct are MEMBERs"
        );
        assert_eq!(member.joined_at, at);
        assert_eq!(member.joined_at_seq, seq);
        assert_eq!(member.added_by, added_by);
        assert!(member.is_current());
        assert_eq!((member.unread_count, member.mention_count), (0, 0));
        assert!(!member.archived && member.pinned_at.is_none() && member.mute_until.is_none());
    }

    let events = env.conversation_events().await;
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    for event in &events {
        assert_eq!(event.conversation_id, id.to_string());
        assert_eq!(event.actor_user_id, ada.to_string());
        assert_eq!(event.actor_device_id, actor.device_id.to_string());
    }
    let Event::ConversationCreated(created_event) = kind(&events[0]) else {
        panic!("seq 1 is {:?}", events[0].kind)
    };
    let snapshot = created_event.conversation.as_ref().unwrap();
    assert_eq!(snapshot.conversation_id, id.to_string());
    assert_eq!(snapshot.r#type, i32::from(Kind::Direct.code()));
    assert_eq!(snapshot.created_by_user_id, ada.to_string());
    for (event, user) in events[1..].iter().zip([ada, bob]) {
        let Event::MemberJoined(joined) = kind(event) else {
            panic!("seq {} is {:?}", event.seq, event.kind)
        };
        let member = joined.member.as_ref().unwrap();
        assert_eq!(member.user_id, user.to_string());
        assert_eq!(member.joined_at_seq, event.seq);
        assert_eq!(member.role, i32::from(Role::Member.code()));
        assert_eq!(joined.method, i32::from(pb::JoinMethod::Created));
    }

    let user_events = env.user_events().await;
    assert_eq!(user_events.len(), 2);
    for (user, joined_at_seq, own_device) in [(ada, 2, true), (bob, 3, false)] {
        let event = user_events
            .iter()
            .find(|e| e.user_id == user.to_string())
            .unwrap_or_else(|| panic!("no user event for {user}"));
        assert_eq!(event.seq, 1);
        // Only the acting device caused its own user's event.
        let expected_device = if own_device {
            actor.device_id.to_string()
        } else {
            String::new()
        };
        assert_eq!(event.actor_device_id, expected_device);
        let Some(UserEvent::ConversationJoined(joined)) = &event.kind else {
            panic!("{:?}", event.kind)
        };
        assert_eq!(joined.joined_at_seq, joined_at_seq);
        let snapshot = joined.conversation.as_ref().unwrap();
        assert_eq!(snapshot.conversation_id, id.to_string());
    }

    let rows = env.rows("outbox").await;
    assert_eq!(rows, 5);
    for actor in [device(bob), device(ada)] {
        let peer = if actor.user_id == ada { bob } else { ada };
        let (again, created) = env
            .store
            .create_direct(actor, peer, ConversationId::new_v7(), now())
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again, conversation);
    }
    assert_eq!(env.rows("outbox").await, rows);
    assert_eq!(env.rows("conversations").await, 1);
    assert_eq!(env.rows("members").await, 2);
}

/// Unknown or deleted peers, and blocks either way (also for an existing conversation), are
/// refused without writing anything; an unblock opens the existing conversation again.
pub async fn create_direct_refusals(env: &Env) {
    let [ada, bob, cy] = env.users().await;
    let deleted = env.deleted_user().await;
    for peer in [UserId::new_v7(), deleted] {
        let refused = env
            .store
            .create_direct(device(ada), peer, ConversationId::new_v7(), now())
            .await;
        assert!(
            matches!(refused, Err(MessageError::UserNotFound(_))),
            "{refused:?}"
        );
    }

    // New conversations, a block either way.
    for (blocker, blocked) in [(ada, bob), (bob, ada)] {
        env.set_block(blocker, blocked, true).await;
        for (actor, peer) in [(ada, bob), (bob, ada)] {
            let refused = env
                .store
                .create_direct(device(actor), peer, ConversationId::new_v7(), now())
                .await;
            assert!(
                matches!(refused, Err(MessageError::Blocked(_))),
                "{refused:?}"
            );
        }
        env.set_block(blocker, blocked, false).await;
    }
    assert_eq!(env.rows("conversations").await, 0);
    assert_eq!(env.rows("outbox").await, 0);

    // An existing conversation.
    let existing = env.direct(device(ada), cy).await;
    let rows = env.rows("outbox").await;
    for (blocker, blocked) in [(cy, ada), (ada, cy)] {
        env.set_block(blocker, blocked, true).await;
        for (actor, peer) in [(ada, cy), (cy, ada)] {
            let refused = env
                .store
                .create_direct(device(actor), peer, ConversationId::new_v7(), now())
                .await;
            assert!(
                matches!(refused, Err(MessageError::Blocked(_))),
                "{refused:?}"
            );
        }
        env.set_block(blocker, blocked, false).await;
    }
    let (again, created) = env
        .store
        .create_direct(device(cy), ada, ConversationId::new_v7(), now())
        .await
        .unwrap();
    assert_eq!((again.id, created), (existing.id, false));
    assert_eq!(env.rows("outbox").await, rows);

    // A peer deleted after the conversation was created.
    env.record_user(cy, Some(now())).await;
    let refused = env
        .store
        .create_direct(device(ada), cy, ConversationId::new_v7(), now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::UserNotFound(_))),
        "{refused:?}"
    );
}

/// A deletion is final: a late "exists" never revives the user.
pub async fn record_user_never_revives_deleted(env: &Env) {
    let [ada, bob] = env.users().await;
    env.record_user(bob, Some(now())).await;
    env.record_user(bob, None).await;
    let refused = env
        .store
        .create_direct(device(ada), bob, ConversationId::new_v7(), now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::UserNotFound(_))),
        "{refused:?}"
    );
    // Recording a user twice is harmless.
    env.record_user(ada, None).await;
    assert_eq!(env.rows("known_users").await, 2);
}

/// A group: the creator as OWNER, the members as MEMBERs added by them, seq 1 for
/// ConversationCreated then one MemberJoined per member in order, a ConversationJoined for
/// each, and every field stored as given.
pub async fn create_conversation_with_roles_and_events(env: &Env) {
    let [owner, m1, m2] = env.users().await;
    let actor = device(owner);
    let avatar = Media {
        url: "https://media.example/a.png".to_owned(),
        mime_type: "image/png".to_owned(),
        size_bytes: 1234,
        width: 64,
        height: 48,
        ..Media::default()
    };
    let new = NewConversation {
        id: ConversationId::new_v7(),
        kind: Kind::Group,
        title: "Climbing".to_owned(),
        description: "Saturdays".to_owned(),
        avatar: Some(avatar.clone()),
        only_admins_edit_info: false,
        only_admins_add_members: true,
        members: vec![m1, m2],
        client_request_id: "request-1".to_owned(),
    };
    let at = now();
    let (conversation, created) = env
        .store
        .create_conversation(actor, &new, at)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(conversation.id, new.id);
    assert_eq!(conversation.kind, Kind::Group);
    assert_eq!(conversation.title, "Climbing");
    assert_eq!(conversation.description, "Saturdays");
    assert_eq!(conversation.avatar, Some(avatar));
    assert!(!conversation.only_admins_edit_info);
    assert!(conversation.only_admins_add_members);
    assert_eq!(conversation.created_by, owner);
    assert_eq!(conversation.created_at, at);
    assert_eq!(conversation.direct_pair, None);
    assert_eq!(conversation.member_count, 3);
    assert_eq!(conversation.last_seq, 4);
    assert_eq!(conversation.last_activity_at, at);
    assert_eq!(env.conversation(new.id).await, conversation);

    let expected = [
        (owner, Role::Owner, 2, None),
        (m1, Role::Member, 3, Some(owner)),
        (m2, Role::Member, 4, Some(owner)),
    ];
    for (user, role, seq, added_by) in expected {
        let member = env.member(new.id, user).await;
        assert_eq!(
            (member.role, member.joined_at_seq, member.added_by),
            (role, seq, added_by)
        );
        assert_eq!(member.joined_at, at);
        assert!(member.is_current());
    }

    let events = env.conversation_events().await;
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let Event::ConversationCreated(created_event) = kind(&events[0]) else {
        panic!("seq 1 is {:?}", events[0].kind)
    };
    let snapshot = created_event.conversation.as_ref().unwrap();
    assert_eq!(snapshot.r#type, i32::from(Kind::Group.code()));
    assert_eq!(snapshot.title, "Climbing");
    for (event, (user, role, seq, _)) in events[1..].iter().zip(expected) {
        let Event::MemberJoined(joined) = kind(event) else {
            panic!("seq {} is {:?}", event.seq, event.kind)
        };
        let member = joined.member.as_ref().unwrap();
        assert_eq!(member.user_id, user.to_string());
        assert_eq!(member.role, i32::from(role.code()));
        assert_eq!((member.joined_at_seq, event.seq), (seq, seq));
        assert_eq!(joined.method, i32::from(pb::JoinMethod::Created));
        assert_eq!(event.actor_user_id, owner.to_string());
    }
    let user_events = env.user_events().await;
    assert_eq!(user_events.len(), 3);
    for (user, _, joined_at_seq, _) in expected {
        let event = user_events
            .iter()
            .find(|e| e.user_id == user.to_string())
            .unwrap();
        assert_eq!(event.seq, 1);
        let Some(UserEvent::ConversationJoined(joined)) = &event.kind else {
            panic!("{:?}", event.kind)
        };
        assert_eq!(joined.joined_at_seq, joined_at_seq);
    }

    // A channel keeps its kind.
    let channel = env.group_at(Kind::Channel, actor, &[m1], now()).await;
    assert_eq!(env.conversation(channel.id).await.kind, Kind::Channel);
    assert_eq!(env.member(channel.id, owner).await.role, Role::Owner);
    assert_eq!(env.member(channel.id, m1).await.role, Role::Member);
}

/// The same client_request_id answers the conversation it created (even from another device,
/// with another id, and after a member blocked the creator) and writes nothing; another key
/// creates another conversation.
pub async fn create_conversation_is_idempotent(env: &Env) {
    let [owner, member] = env.users().await;
    let new = new_group(Kind::Group, &[member]);
    let (first, created) = env
        .store
        .create_conversation(device(owner), &new, now())
        .await
        .unwrap();
    assert!(created);
    let rows = env.rows("outbox").await;

    let retry = NewConversation {
        id: ConversationId::new_v7(),
        ..new.clone()
    };
    let (again, created) = env
        .store
        .create_conversation(device(owner), &retry, now())
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first);
    env.set_block(member, owner, true).await;
    let (again, created) = env
        .store
        .create_conversation(device(owner), &retry, now())
        .await
        .unwrap();
    assert_eq!((again.id, created), (first.id, false));
    env.set_block(member, owner, false).await;
    assert_eq!(env.rows("outbox").await, rows);
    assert_eq!(env.rows("conversations").await, 1);

    // The key is the creator's own: another creator with the same key creates.
    let theirs_new = NewConversation {
        id: ConversationId::new_v7(),
        members: vec![owner],
        ..retry.clone()
    };
    let (theirs, created) = env
        .store
        .create_conversation(device(member), &theirs_new, now())
        .await
        .unwrap();
    assert!(created);
    assert_ne!(theirs.id, first.id);

    let other_key = NewConversation {
        id: ConversationId::new_v7(),
        client_request_id: "another".to_owned(),
        ..new
    };
    let (second, created) = env
        .store
        .create_conversation(device(owner), &other_key, now())
        .await
        .unwrap();
    assert!(created);
    assert_ne!(second.id, first.id);
    assert_eq!(env.rows("conversations").await, 3);
}

/// An unknown or deleted member, or a block between the creator and a member (either way),
/// refuses the whole creation.
pub async fn create_conversation_refusals(env: &Env) {
    let [owner, fine, blocker] = env.users().await;
    let deleted = env.deleted_user().await;
    for missing in [UserId::new_v7(), deleted] {
        let refused = env
            .store
            .create_conversation(
                device(owner),
                &new_group(Kind::Group, &[fine, missing]),
                now(),
            )
            .await;
        assert!(
            matches!(refused, Err(MessageError::UserNotFound(_))),
            "{refused:?}"
        );
    }
    for (a, b) in [(blocker, owner), (owner, blocker)] {
        env.set_block(a, b, true).await;
        let refused = env
            .store
            .create_conversation(
                device(owner),
                &new_group(Kind::Channel, &[fine, blocker]),
                now(),
            )
            .await;
        assert!(
            matches!(refused, Err(MessageError::Blocked(_))),
            "{refused:?}"
        );
        env.set_block(a, b, false).await;
    }
    assert_eq!(env.rows("conversations").await, 0);
    assert_eq!(env.rows("members").await, 0);
    assert_eq!(env.rows("outbox").await, 0);
    // A block between two other members is no business of the creator.
    env.set_block(fine, blocker, true).await;
    env.group(device(owner), &[fine, blocker]).await;
}
