//! Sending: seqs, counters, the conversation's latest message, content, idempotency
//! and every refusal, in the contract's order.
//! Over 400 lines as one piece: one operation (send) with all its cases.

use echo_ids::{ConversationId, MessageId, UserId};
use echo_message::error::MessageError;
use echo_message::store::{Kind, Member, NewMessage, Sent};
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::{Location, Mention, MessageContent};
use pb::conversation_event::Kind as Event;

use crate::common::*;

/// Asserts `sent` is refused with a `MessageError` matching `$pattern`.
macro_rules! assert_refused {
    ($sent:expr, $pattern:pat) => {{
        let sent = $sent;
        assert!(matches!(sent, Err($pattern)), "{sent:?}");
    }};
}

/// Each message takes the next seq, moves the conversation's activity and latest message, and
/// appends one MessageCreated (without content); the other members' unread counters (and
/// mention counters of the mentioned) go up while the sender's read state (watermark,
/// counters) stays as it was: only MarkRead moves it.
pub async fn send_takes_next_seq_and_counts(env: &Env) {
    let [owner, ada, bob] = env.users().await;
    let owner_device = device(owner);
    let group = env.group(owner_device, &[ada, bob]).await;
    assert_eq!(group.last_seq, 4);

    let mut hello = text_message(group.id, "hello @ada");
    hello.mentioned = vec![ada];
    let first_at = now() + chrono::Duration::seconds(1);
    let counters = |m: Member| (m.last_read_seq, m.unread_count, m.mention_count);
    let owner_before = counters(env.member(group.id, owner).await);
    let ada_before = env.member(group.id, ada).await.last_read_seq;
    let first = env.send_at(owner_device, &hello, first_at).await;
    assert_eq!(first.id, hello.id);
    assert_eq!(first.seq, 5);
    assert_eq!(first.conversation_id, group.id);
    assert_eq!(first.sender_id, owner);
    assert_eq!(first.sender_device_id, owner_device.device_id);
    assert_eq!(first.client_message_id, hello.client_message_id);
    assert_eq!(first.content.as_ref(), Some(&hello.content));
    assert_eq!(first.created_at, first_at);
    assert_eq!((first.reply_count, first.edit_count), (0, 0));
    assert_eq!((first.edited_at, first.deleted_at), (None, None));

    let after_first = env.conversation(group.id).await;
    assert_eq!(after_first.last_seq, 5);
    assert_eq!(after_first.last_message_id, Some(first.id));
    assert_eq!(after_first.last_activity_at, first_at);
    let owner_member = env.member(group.id, owner).await;
    assert_eq!(counters(owner_member.clone()), owner_before);
    assert_eq!(
        (owner_member.unread_count, owner_member.mention_count),
        (0, 0)
    );
    assert!(owner_member.last_read_seq < 5, "sending does not mark read");
    let ada_member = env.member(group.id, ada).await;
    assert_eq!((ada_member.unread_count, ada_member.mention_count), (1, 1));
    let bob_member = env.member(group.id, bob).await;
    assert_eq!((bob_member.unread_count, bob_member.mention_count), (1, 0));

    let second_at = first_at + chrono::Duration::seconds(1);
    let ada_device = device(ada);
    let second = env
        .send_at(ada_device, &text_message(group.id, "hi"), second_at)
        .await;
    assert_eq!(second.seq, 6);
    // Ada's own message does not count for her, nor does it read Owner's for her.
    let ada_member = env.member(group.id, ada).await;
    assert_eq!(counters(ada_member), (ada_before, 1, 1));
    let owner_member = env.member(group.id, owner).await;
    assert_eq!(counters(owner_member), (owner_before.0, 1, 0));
    let bob_member = env.member(group.id, bob).await;
    assert_eq!((bob_member.unread_count, bob_member.mention_count), (2, 0));
    let after_second = env.conversation(group.id).await;
    assert_eq!(after_second.last_message_id, Some(second.id));
    assert_eq!(after_second.last_activity_at, second_at);
    assert_eq!(after_second.last_seq, 6);
    assert_eq!(after_second.member_count, 3);

    let events = env.events_of(group.id).await;
    assert_eq!(events.len(), 6);
    for (event, (message, actor, mentioned)) in events[4..].iter().zip([
        (&first, owner_device, vec![ada.to_string()]),
        (&second, ada_device, vec![]),
    ]) {
        assert_eq!(event.seq, message.seq);
        assert_eq!(event.actor_user_id, actor.user_id.to_string());
        assert_eq!(event.actor_device_id, actor.device_id.to_string());
        let Event::MessageCreated(created) = kind(event) else {
            panic!("seq {} is {:?}", event.seq, event.kind)
        };
        let snapshot = created.message.as_ref().unwrap();
        assert_eq!(snapshot.message_id, message.id.to_string());
        assert_eq!(snapshot.seq, message.seq);
        assert_eq!(snapshot.sender_user_id, actor.user_id.to_string());
        assert_eq!(snapshot.content, None, "bus events carry no content");
        assert_eq!(snapshot.client_message_id, "");
        assert_eq!(created.mentioned_user_ids, mentioned);
    }

    assert_eq!(
        env.store.message(group.id, first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        env.store
            .message(ConversationId::new_v7(), first.id)
            .await
            .unwrap(),
        None
    );
    let mut by_id = env
        .store
        .messages_by_id(&[second.id, MessageId::new_v7(), first.id])
        .await
        .unwrap();
    by_id.sort_by_key(|m| m.seq);
    assert_eq!(by_id, [first, second]);
    assert!(env.store.messages_by_id(&[]).await.unwrap().is_empty());
}

/// Text, mentions, attachments and a location come back as sent; `body` holds the text.
pub async fn content_round_trips(env: &Env) {
    let [ada, bob] = env.users().await;
    let ada_device = device(ada);
    let direct = env.direct(ada_device, bob).await;
    let content = MessageContent {
        text: "look 👀 @bob".to_owned(),
        mentions: vec![Mention {
            user_id: bob.to_string(),
            offset: 8,
            length: 4,
        }],
        attachments: vec![
            Media {
                url: "https://media.example/clip.mp4".to_owned(),
                mime_type: "video/mp4".to_owned(),
                size_bytes: 5_000_000,
                width: 1920,
                height: 1080,
                duration: Some(prost_types::Duration {
                    seconds: 12,
                    nanos: 500_000_000,
                }),
                file_name: "clip.mp4".to_owned(),
                thumbnail_url: "https://media.example/clip.jpg".to_owned(),
            },
            Media {
                url: "https://media.example/report.pdf".to_owned(),
                mime_type: "application/pdf".to_owned(),
                ..Media::default()
            },
        ],
        location: Some(Location {
            latitude: 52.52,
            longitude: 13.405,
            accuracy_meters: 8.5,
            name: "Alexanderplatz".to_owned(),
            address: "10178 Berlin".to_owned(),
        }),
    };
    let mut new = new_message(direct.id, content.clone());
    new.mentioned = vec![bob];
    let sent = env.send_at(ada_device, &new, now()).await;
    assert_eq!(sent.content.as_ref(), Some(&content));
    let read = env
        .store
        .message(direct.id, sent.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.content, Some(content.clone()));
    let window = env.store.messages(direct.id, all()).await.unwrap();
    assert_eq!(window, [read]);
    let bodies = env
        .count(
            "SELECT count(*) FROM messages WHERE body = $1",
            std::slice::from_ref(&content.text),
        )
        .await;
    assert_eq!(bodies, 1);
    assert_eq!(env.member(direct.id, bob).await.mention_count, 1);
}

/// A retry with the same key and payload answers the first message (no new seq, no event),
/// even after the sender left; the same key with another payload or into another
/// conversation is refused; the key belongs to the device.
pub async fn send_is_idempotent(env: &Env) {
    let [ada, bob, cy] = env.users().await;
    let ada_device = device(ada);
    let direct = env.direct(ada_device, bob).await;
    let new = text_message(direct.id, "once");
    let first = env.send_at(ada_device, &new, now()).await;
    let rows = env.rows("outbox").await;

    let repeated = env
        .store
        .send(ada_device, &retry(&new), now())
        .await
        .unwrap();
    assert_eq!(repeated, Sent::Repeated(first.clone()));
    assert_eq!(env.rows("outbox").await, rows);
    assert_eq!(env.rows("messages").await, 1);
    assert_eq!(env.conversation(direct.id).await.last_seq, first.seq);

    let changed = NewMessage {
        id: MessageId::new_v7(),
        content: MessageContent {
            text: "twice".to_owned(),
            ..MessageContent::default()
        },
        request_hash: [7; 32],
        ..new.clone()
    };
    assert_refused!(
        env.store.send(ada_device, &changed, now()).await,
        MessageError::IdempotencyKeyReused
    );
    // Same key and payload, but into another conversation: another request.
    let other = env.direct(ada_device, cy).await;
    let elsewhere = NewMessage {
        conversation_id: other.id,
        ..retry(&new)
    };
    assert_refused!(
        env.store.send(ada_device, &elsewhere, now()).await,
        MessageError::IdempotencyKeyReused
    );

    // Another device of the same user has keys of its own.
    let other_device = device(ada);
    let sent = env
        .store
        .send(other_device, &retry(&new), now())
        .await
        .unwrap();
    let Sent::Created(second) = sent else {
        panic!("{sent:?}")
    };
    assert_ne!(second.id, first.id);

    // The sender leaves (behind the store's back: the trait cannot yet): a retry still
    // answers, a new message does not.
    let left = env
        .exec(
            "UPDATE members SET left_at_seq = $1 WHERE conversation_id = $2 AND user_id = $3",
            &[Val::Int(99), Val::Id(direct.id.into()), Val::Id(ada.into())],
        )
        .await;
    assert_eq!(left, 1);
    let repeated = env
        .store
        .send(ada_device, &retry(&new), now())
        .await
        .unwrap();
    assert_eq!(repeated, Sent::Repeated(first));
    assert_refused!(
        env.store
            .send(ada_device, &text_message(direct.id, "new"), now())
            .await,
        MessageError::ConversationNotFound
    );
}

/// Non-members and unknown conversations, MEMBERs of channels and blocks in direct
/// conversations are refused without writing anything.
pub async fn send_refusals(env: &Env) {
    let [owner, ada, bob, outsider] = env.users().await;
    let (owner_device, ada_device, bob_device) = (device(owner), device(ada), device(bob));
    let direct = env.direct(ada_device, bob).await;
    let channel = env
        .group_at(Kind::Channel, owner_device, &[ada], now())
        .await;
    let group = env.group(owner_device, &[ada]).await;
    let before = (env.rows("outbox").await, env.rows("messages").await);

    assert_refused!(
        env.store
            .send(
                ada_device,
                &text_message(ConversationId::new_v7(), "?"),
                now()
            )
            .await,
        MessageError::ConversationNotFound
    );
    assert_refused!(
        env.store
            .send(device(outsider), &text_message(direct.id, "hi"), now())
            .await,
        MessageError::ConversationNotFound
    );
    assert_refused!(
        env.store
            .send(ada_device, &text_message(channel.id, "hi all"), now())
            .await,
        MessageError::NotAllowed
    );
    for (blocker, blocked) in [(bob, ada), (ada, bob)] {
        env.set_block(blocker, blocked, true).await;
        for actor in [ada_device, bob_device] {
            assert_refused!(
                env.store
                    .send(actor, &text_message(direct.id, "hey"), now())
                    .await,
                MessageError::Blocked(_)
            );
        }
        env.set_block(blocker, blocked, false).await;
    }
    // A block only matters in a direct conversation.
    env.set_block(owner, ada, true).await;
    env.say(ada_device, group.id, "still here").await;
    env.set_block(owner, ada, false).await;
    assert_eq!(
        (env.rows("outbox").await, env.rows("messages").await),
        (before.0 + 1, before.1 + 1),
        "only the group message was written"
    );

    // What is allowed: the owner posts in the channel, an unblocked direct works again.
    env.say(owner_device, channel.id, "announcement").await;
    env.say(bob_device, direct.id, "hey again").await;
    let mut new = text_message(group.id, "@owner");
    new.mentioned = vec![owner];
    env.send_at(ada_device, &new, now()).await;
    assert_eq!(env.member(group.id, owner).await.mention_count, 1);
}

/// Mentions are never refused: a mention of a former member, of a user who never joined, of
/// an unknown id or of the sender stays in the content but counts for nobody (no mention row,
/// no counter, not in the event); the current members mentioned are counted as usual.
pub async fn mentions_of_non_members_count_for_nobody(env: &Env) {
    let [owner, ada, bob, former, outsider] = env.users().await;
    let (owner_device, ada_device) = (device(owner), device(ada));
    let group = env.group(owner_device, &[ada, bob, former]).await;
    env.store
        .remove_member(owner_device, group.id, former, now())
        .await
        .unwrap();
    let unknown = UserId::new_v7();
    let everyone = [former, outsider, ada, bob, unknown];
    let mut new = new_message(
        group.id,
        MessageContent {
            text: "@a @b @c @d @e".to_owned(),
            mentions: everyone
                .iter()
                .zip(0..)
                .map(|(user, i)| Mention {
                    user_id: user.to_string(),
                    offset: i * 3,
                    length: 2,
                })
                .collect(),
            ..MessageContent::default()
        },
    );
    new.mentioned = everyone.to_vec();
    let before = |user| env.member(group.id, user);
    let (ada_before, former_before) = (before(ada).await, before(former).await);

    let sent = env.send_at(ada_device, &new, now()).await;
    assert_eq!(
        sent.content.as_ref(),
        Some(&new.content),
        "every mention is kept"
    );
    let stored = env.store.message(group.id, sent.id).await.unwrap().unwrap();
    assert_eq!(stored.content.as_ref(), Some(&new.content));

    let id = sent.id.to_string();
    let rows = env
        .count(
            "SELECT count(*) FROM mentions WHERE CAST(message_id AS TEXT) = $1",
            std::slice::from_ref(&id),
        )
        .await;
    let bobs = env
        .count(
            "SELECT count(*) FROM mentions \
             WHERE CAST(message_id AS TEXT) = $1 AND CAST(user_id AS TEXT) = $2",
            &[id.clone(), bob.to_string()],
        )
        .await;
    assert_eq!((rows, bobs), (1, 1), "only the current member is counted");
    let counters = |m: Member| (m.last_read_seq, m.unread_count, m.mention_count);
    assert_eq!(env.member(group.id, bob).await.mention_count, 1);
    assert_eq!(env.member(group.id, owner).await.mention_count, 0);
    assert_eq!(
        counters(env.member(group.id, ada).await),
        counters(ada_before)
    );
    assert_eq!(
        counters(env.member(group.id, former).await),
        counters(former_before),
        "a former member counts nothing"
    );

    let events = env.events_of(group.id).await;
    let Event::MessageCreated(created) = kind(events.last().unwrap()) else {
        panic!("{:?}", events.last())
    };
    assert_eq!(created.mentioned_user_ids, [bob.to_string()]);
}

// The older cases run from the list in `store_conformance.rs`.
conformance!(mentions_of_non_members_count_for_nobody);
