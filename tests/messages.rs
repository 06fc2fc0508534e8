//! MessageService journeys end to end through the generated gRPC client, on both backends:
//! direct conversations, groups and channels, sending (sequences, idempotency, mentions,
//! replies, threads, counters), reading and paging history, and the denials a member, a
//! non-member and a blocked user meet.
//!
//! One piece: each test follows one conversation from creation through sends to reads and asserts
//! exact seqs (the creation events come first, messages continue them), so the counters and history
//! pages it checks depend on every step before; mentions and limits are apart in
//! `messages/mentions_limits.rs`. Split by RPC, a journey would be cut mid-conversation.

use common::messages::*;
use common::reason;
use common::users::{block, known_user};
use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tonic::Code;

mod common;

#[tokio::test]
async fn direct_conversations_send_and_count() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        assert_eq!(
            chat.r#type,
            pb::ConversationType::Direct as i32,
            "{backend:?}"
        );
        assert_eq!(chat.peer_user_id, bob.tokens.user_id);
        assert_eq!((chat.member_count, chat.last_seq), (2, 3));
        let again = direct(&mesh, &bob, &ada).await;
        assert_eq!(again.conversation_id, chat.conversation_id, "one per pair");
        assert_eq!(again.peer_user_id, ada.tokens.user_id);

        // A mention of Bob, measured in UTF-16 units.
        let content = pb::MessageContent {
            text: "👋 @bob".into(),
            mentions: vec![pb::Mention {
                user_id: bob.tokens.user_id.clone(),
                offset: 3,
                length: 4,
            }],
            ..Default::default()
        };
        let request = send_request(&chat, "k-1", content.clone());
        let sent = mesh
            .message_as(&ada)
            .send_message(request.clone())
            .await
            .unwrap();
        let sent = sent.into_inner().message.unwrap();
        assert_eq!(sent.seq, 4);
        assert_eq!(sent.content, Some(content.clone()));
        // A retry returns the original; the same key for other content is refused.
        let retry = mesh.message_as(&ada).send_message(request).await.unwrap();
        assert_eq!(retry.into_inner().message.unwrap(), sent);
        let reused = mesh
            .message_as(&ada)
            .send_message(send_request(&chat, "k-1", text("something else")))
            .await
            .unwrap_err();
        assert_eq!(
            (reused.code(), reason(&reused).as_str()),
            (Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED")
        );

        let seen = my_view(&mesh, &bob, &chat).await;
        let state = seen.my_state.unwrap();
        assert_eq!((state.unread_count, state.mention_count), (1, 1));
        assert_eq!(seen.last_message.unwrap().message_id, sent.message_id);
        let reply = send(&mesh, &bob, &chat, "hello Ada").await;
        assert_eq!(reply.seq, 5);
        // Sending reads nothing (clients call MarkRead for what is on screen): Bob still has
        // Ada's message unread, and his own counts for nobody but Ada.
        let bob_state = my_view(&mesh, &bob, &chat).await.my_state.unwrap();
        assert_eq!((bob_state.unread_count, bob_state.mention_count), (1, 1));
        assert!(
            bob_state.last_read_seq < sent.seq,
            "sending does not move the sender's read marker"
        );
        let listed = mesh
            .message_as(&ada)
            .list_conversations(pb::ListConversationsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .conversations;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].my_state.as_ref().unwrap().unread_count, 1);

        // A stranger learns nothing, not even that the conversation exists.
        let eve = known_user(&mesh).await;
        let hidden = mesh
            .message_as(&eve)
            .get_conversation(pb::GetConversationRequest {
                conversation_id: chat.conversation_id.clone(),
            })
            .await
            .unwrap_err();
        let unknown = mesh
            .message_as(&eve)
            .get_conversation(pb::GetConversationRequest {
                conversation_id: uuid::Uuid::now_v7().to_string(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (hidden.code(), reason(&hidden)),
            (unknown.code(), reason(&unknown))
        );
        assert_eq!(reason(&hidden), "CONVERSATION_NOT_FOUND");
        let intrusion = mesh
            .message_as(&eve)
            .send_message(send_request(&chat, "x", text("hi")))
            .await
            .unwrap_err();
        assert_eq!(reason(&intrusion), "CONVERSATION_NOT_FOUND");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn blocks_stop_direct_messages_both_ways() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        block(&mesh, &ada, &bob).await;
        // The block reaches the message service through the bus.
        let mut refused = None;
        for _ in 0..250 {
            let key = uuid::Uuid::now_v7().to_string();
            match mesh
                .message_as(&bob)
                .send_message(send_request(&chat, &key, text("let me in")))
                .await
            {
                Err(status) => {
                    refused = Some(status);
                    break;
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        let refused = refused.expect("the block never applied");
        assert_eq!(
            (refused.code(), reason(&refused).as_str()),
            (Code::PermissionDenied, "BLOCKED"),
            "{backend:?}"
        );
        let blocker_too = mesh
            .message_as(&ada)
            .send_message(send_request(&chat, "a-1", text("bye")))
            .await
            .unwrap_err();
        assert_eq!(reason(&blocker_too), "BLOCKED");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn groups_channels_threads_and_history() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let cy = known_user(&mesh).await;
        // Users become known to the message service through the bus.
        direct(&mesh, &ada, &bob).await;
        direct(&mesh, &ada, &cy).await;

        let channel = group(&mesh, &ada, pb::ConversationType::Channel, &[&bob]).await;
        assert_eq!(channel.member_count, 2, "{backend:?}");
        let member_post = mesh
            .message_as(&bob)
            .send_message(send_request(&channel, "b-1", text("may I?")))
            .await
            .unwrap_err();
        assert_eq!(
            (member_post.code(), reason(&member_post).as_str()),
            (Code::PermissionDenied, "NOT_ALLOWED")
        );
        send(&mesh, &ada, &channel, "announcement").await;

        let room = group(&mesh, &ada, pb::ConversationType::Group, &[&bob, &cy]).await;
        assert_eq!((room.member_count, room.last_seq), (3, 4));
        let root = send(&mesh, &bob, &room, "thread root").await;
        let mut in_thread = send_request(&room, "c-1", text("a reply in the thread"));
        in_thread.thread_root_message_id = root.message_id.clone();
        in_thread.reply_to_message_id = root.message_id.clone();
        mesh.message_as(&cy).send_message(in_thread).await.unwrap();
        for n in 0..5 {
            send(&mesh, &ada, &room, &format!("message {n}")).await;
        }
        let root_now = mesh
            .message_as(&ada)
            .get_message(pb::GetMessageRequest {
                conversation_id: room.conversation_id.clone(),
                message_id: root.message_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap();
        assert_eq!(root_now.reply_count, 1);

        // History: newest page first, ascending within the page, paged backwards.
        let list = |anchor, token: String| pb::ListMessagesRequest {
            conversation_id: room.conversation_id.clone(),
            anchor: Some(anchor),
            page_size: 3,
            page_token: token,
            top_level_only: false,
        };
        use pb::list_messages_request::Anchor;
        let first = mesh
            .message_as(&bob)
            .list_messages(list(Anchor::BeforeSeq(i64::MAX), String::new()))
            .await
            .unwrap()
            .into_inner();
        let seqs = |page: &pb::ListMessagesResponse| {
            page.messages.iter().map(|m| m.seq).collect::<Vec<_>>()
        };
        assert_eq!(seqs(&first), [9, 10, 11]);
        assert!(first.has_more_before && !first.has_more_after);
        let second = mesh
            .message_as(&bob)
            .list_messages(list(Anchor::BeforeSeq(i64::MAX), first.next_page_token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(seqs(&second), [6, 7, 8]);
        let catch_up = mesh
            .message_as(&bob)
            .list_messages(list(Anchor::AfterSeq(5), String::new()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(seqs(&catch_up), [6, 7, 8]);
        assert!(catch_up.has_more_after && !catch_up.next_page_token.is_empty());
        let top_level = mesh
            .message_as(&bob)
            .list_messages(pb::ListMessagesRequest {
                top_level_only: true,
                page_size: 50,
                ..list(Anchor::AfterSeq(0), String::new())
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            top_level
                .messages
                .iter()
                .all(|m| m.thread_root_message_id.is_empty())
        );
        assert_eq!(top_level.messages.len(), 6);
        let around = mesh
            .message_as(&bob)
            .list_messages(list(
                Anchor::AroundMessageId(root.message_id.clone()),
                String::new(),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(seqs(&around), [5, 6, 7]);

        // Members see history from their join on: the creation events are not messages.
        let late = mesh
            .message_as(&cy)
            .list_messages(list(Anchor::AfterSeq(0), String::new()))
            .await
            .unwrap()
            .into_inner();
        assert!(late.messages.iter().all(|m| m.seq > 4));
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn concurrent_senders_get_every_seq_once() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let mut users = Vec::new();
        for _ in 0..5 {
            users.push(known_user(&mesh).await);
        }
        for other in &users[1..] {
            direct(&mesh, &users[0], other).await;
        }
        let others: Vec<&SignedIn> = users[1..].iter().collect();
        let room = group(&mesh, &users[0], pb::ConversationType::Group, &others).await;
        let base = room.last_seq;
        let mut sends = Vec::new();
        for (u, user) in users.iter().enumerate() {
            for n in 0..10 {
                let mut client = mesh.message_as(user);
                let request = send_request(&room, &format!("{u}-{n}"), text("concurrent"));
                sends.push(tokio::spawn(async move {
                    client
                        .send_message(request)
                        .await
                        .map(|r| r.into_inner().message.unwrap().seq)
                }));
            }
        }
        let mut seqs = Vec::new();
        for send in sends {
            seqs.push(send.await.unwrap().expect("every send succeeds"));
        }
        seqs.sort_unstable();
        let expected: Vec<i64> = (base + 1..=base + 50).collect();
        assert_eq!(seqs, expected, "{backend:?}: no gap, no duplicate");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn bad_messages_are_refused_with_field_violations() {
    let Some(mesh) = TestMesh::start(Backend::Embedded).await else {
        return;
    };
    let ada = known_user(&mesh).await;
    let bob = known_user(&mesh).await;
    let chat = direct(&mesh, &ada, &bob).await;
    let mut bad = send_request(
        &chat,
        "",
        pb::MessageContent {
            text: "x".repeat(echo_message::rules::MAX_TEXT + 1),
            mentions: vec![pb::Mention {
                user_id: "nobody".into(),
                offset: 5000,
                length: 1,
            }],
            ..Default::default()
        },
    );
    bad.reply_to_message_id = "not-an-id".into();
    let refused = mesh.message_as(&ada).send_message(bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        common::violated_fields(&refused),
        [
            "client_message_id",
            "content.text",
            "content.mentions[0].user_id",
            "content.mentions[0]",
            "reply_to_message_id"
        ]
    );
    let stranger = uuid::Uuid::now_v7().to_string();
    let mut mention_outsider = send_request(
        &chat,
        "m-1",
        pb::MessageContent {
            text: "@x".into(),
            mentions: vec![pb::Mention {
                user_id: stranger,
                offset: 0,
                length: 2,
            }],
            ..Default::default()
        },
    );
    // A mention of someone who is not a member is kept and counts for nobody.
    let kept = mesh
        .message_as(&ada)
        .send_message(mention_outsider.clone())
        .await
        .expect("a mention of a non-member is no refusal");
    assert_eq!(
        kept.into_inner().message.unwrap().content,
        mention_outsider.content
    );
    mention_outsider.client_message_id = "m-2".into();
    mention_outsider.content = Some(text("fine"));
    mention_outsider.reply_to_message_id = uuid::Uuid::now_v7().to_string();
    let refused = mesh
        .message_as(&ada)
        .send_message(mention_outsider)
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "MESSAGE_NOT_FOUND");
    let negative = mesh
        .message_as(&ada)
        .list_messages(pb::ListMessagesRequest {
            conversation_id: chat.conversation_id.clone(),
            page_size: -1,
            anchor: Some(pb::list_messages_request::Anchor::BeforeSeq(0)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        common::violated_fields(&negative),
        ["before_seq", "page_size"]
    );
    let myself = mesh
        .message_as(&ada)
        .create_direct_conversation(pb::CreateDirectConversationRequest {
            peer_user_id: ada.tokens.user_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(common::violated_fields(&myself), ["peer_user_id"]);
    mesh.shutdown().await;
}

#[path = "messages/mentions_limits.rs"]
mod mentions_limits;
