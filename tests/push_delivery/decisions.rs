//! The decision table (spec §B2) through the public API: offline and ONLINE recipients, the
//! recheck, DND, mutes, blocks, mentions, and delete-for-everyone before the push.
//!
//! One piece: a test per row group of the table (offline, ONLINE and the recheck, a device that has
//! the message, mute, block, mention, delete, storm damping), each asserting both sides the table
//! names: what the fake push service received, and what the inbox and badge say. Badges, channel
//! fan-out, dispatch and UnifiedPush have files of their own; split further, the table would be
//! read across files and a row could go missing.

use crate::helpers::*;

/// The alert path for an offline recipient: one FCM request with the sender as title, the
/// text as body, the absolute badge, the device-side dedupe tag and the conversation as
/// collapse key; an inbox entry with the preview; the badge. Then reading on another device
/// pushes a dismiss carrying badge 0.
#[tokio::test]
async fn an_offline_recipient_gets_one_alert_then_a_dismiss_with_badge_zero() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let Some(Chat {
            mesh,
            _files,
            ada,
            bob,
            token,
            chat,
        }) = chat(backend, &fake).await
        else {
            continue;
        };
        // Bob's iPad: a second device, with an APNs token.
        let ipad = second_device(&mesh, &bob).await;
        let device_token = apns_token();
        mesh.notification_as(&ipad)
            .register_push_token(pb::RegisterPushTokenRequest {
                platform: pb::PushPlatform::Apns as i32,
                token: device_token.clone(),
                app_id: String::new(),
                sandbox: false,
            })
            .await
            .expect("register APNs token");
        let sent = send(&mesh, &ada, &chat, "hello bob").await;

        let apns = eventually(ARRIVES, "the APNs alert", || async {
            fake.requests()
                .into_iter()
                .find(|r| r.platform == Platform::Apns && r.key == device_token)
        })
        .await;
        assert!(apns.http2, "APNs speaks HTTP/2 only");
        assert_eq!(
            apns.header("apns-collapse-id"),
            Some(sent.message_id.as_str())
        );
        assert_eq!(apns.header("apns-push-type"), Some("alert"));
        assert_eq!(
            apns.payload["aps"]["alert"]["body"], "hello bob",
            "{backend:?}"
        );
        assert_eq!(apns.payload["aps"]["badge"], 1);
        assert_eq!(apns.payload["aps"]["thread-id"], chat.conversation_id);

        let alert = nth(&fake, &token, 1, "the alert").await.remove(0);
        let message = &alert.payload["message"];
        assert_eq!(
            message["notification"]["title"],
            display_name(&ada),
            "{backend:?}"
        );
        assert_eq!(message["notification"]["body"], "hello bob", "{backend:?}");
        assert_eq!(data(&alert, "type"), "alert");
        assert_eq!(data(&alert, "message_id"), sent.message_id);
        assert_eq!(data(&alert, "conversation_id"), chat.conversation_id);
        assert_eq!(data(&alert, "badge"), "1");
        assert_eq!(message["android"]["collapse_key"], chat.conversation_id);
        assert_eq!(
            message["android"]["notification"]["tag"]
                .as_str()
                .map(str::len),
            Some(32),
            "the dedupe tag: {message}"
        );
        assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());

        let entries = inbox(&mesh, &bob).await;
        assert_eq!(entries.len(), 1, "{backend:?}");
        assert_eq!(entries[0].preview, "hello bob");
        assert_eq!(entries[0].kind, pb::InboxEntryKind::Message as i32);
        assert_eq!(badge(&mesh, &bob).await, 1);
        // The sender is never notified of their own message.
        assert!(inbox(&mesh, &ada).await.is_empty());

        mark_read(&mesh, &bob, &chat, sent.seq).await;
        let seen = nth(&fake, &token, 2, "the dismiss after reading").await;
        assert_eq!(data(&seen[1], "type"), "dismiss", "{backend:?}");
        assert_eq!(data(&seen[1], "badge"), "0");
        assert_eq!(badge(&mesh, &bob).await, 0);
        assert!(inbox(&mesh, &bob).await.iter().all(|e| e.read));
        mesh.shutdown().await;
    }
}

/// A recipient with an ONLINE device is not pushed at once: if they read the message before
/// the recheck, never; if not, at the recheck. Do-not-disturb makes the push silent.
#[tokio::test]
async fn an_online_recipient_is_pushed_only_if_still_unread_at_the_recheck() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let Some(Chat {
            mesh,
            _files,
            ada,
            bob,
            token,
            chat,
        }) = chat(backend, &fake).await
        else {
            continue;
        };
        heartbeat(&mesh, &bob).await;

        let first = send(&mesh, &ada, &chat, "seen in the app").await;
        tokio::time::sleep(RECHECK / 2).await;
        mark_read(&mesh, &bob, &chat, first.seq).await;
        tokio::time::sleep(RECHECK * 2).await;
        assert!(
            to(&fake, &token).iter().all(|r| data(r, "type") != "alert"),
            "{backend:?}: read before the recheck, so no alert: {:?}",
            to(&fake, &token)
        );

        mesh.presence_as(&bob)
            .set_status(presence::SetStatusRequest {
                status: presence::PresenceStatus::Dnd as i32,
                clear_after: None,
            })
            .await
            .expect("DND");
        heartbeat(&mesh, &bob).await;
        let started = tokio::time::Instant::now();
        let second = send(&mesh, &ada, &chat, "left unread").await;
        let alert = eventually(ARRIVES, "the alert at the recheck", || async {
            to(&fake, &token)
                .into_iter()
                .find(|r| data(r, "message_id") == second.message_id)
        })
        .await;
        assert!(
            started.elapsed() >= RECHECK - Duration::from_millis(200),
            "{backend:?}: pushed before the recheck ({:?})",
            started.elapsed()
        );
        assert_eq!(data(&alert, "silent"), "true", "{backend:?}: DND is silent");
        mesh.shutdown().await;
    }
}

/// Spec §B2 "when" and "to whom": at the recheck, a message an ONLINE device already has
/// (MarkDelivered, heard as the live receipt update) is not pushed at all; when the device
/// that has it is AWAY by then, the push goes out, but only to the user's other devices.
#[tokio::test]
async fn a_device_that_has_the_message_is_not_pushed() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let Some(Chat {
            mesh,
            _files,
            ada,
            bob,
            token: phone_token,
            chat,
        }) = chat(backend, &fake).await
        else {
            continue;
        };
        let tablet = second_device(&mesh, &bob).await;
        let tablet_token = register_fcm(&mesh, &tablet).await;
        let conversation = chat.conversation_id.as_str();

        heartbeat(&mesh, &bob).await;
        let first = send(&mesh, &ada, &chat, "seen live on the phone").await;
        mark_delivered(&mesh, &bob, conversation, first.seq)
            .await
            .expect("phone acknowledges");
        tokio::time::sleep(RECHECK * 2).await;
        for token in [&phone_token, &tablet_token] {
            assert!(
                to(&fake, token)
                    .iter()
                    .all(|r| data(r, "message_id") != first.message_id),
                "{backend:?}: an ONLINE device had it, so no push: {:?}",
                to(&fake, token)
            );
        }

        let second = send(&mesh, &ada, &chat, "the phone got it, then went idle").await;
        mark_delivered(&mesh, &bob, conversation, second.seq)
            .await
            .expect("phone acknowledges");
        // Halfway to the recheck (the alert is waiting for it by now) the phone goes idle.
        tokio::time::sleep(RECHECK / 2).await;
        mesh.presence_as(&bob)
            .heartbeat(presence::HeartbeatRequest {
                status: presence::PresenceStatus::Away as i32,
            })
            .await
            .expect("phone goes AWAY");
        eventually(ARRIVES, "the tablet's alert at the recheck", || async {
            to(&fake, &tablet_token)
                .into_iter()
                .find(|r| data(r, "message_id") == second.message_id)
        })
        .await;
        assert!(
            to(&fake, &phone_token)
                .iter()
                .all(|r| data(r, "message_id") != second.message_id),
            "{backend:?}: the phone has the message, so its token gets no alert: {:?}",
            to(&fake, &phone_token)
        );
        mesh.shutdown().await;
    }
}

/// Muted conversations and blocked senders: no entry, no push, not in the badge; a mention
/// in a group is a MENTION entry; a message deleted for everyone before its push cancels the
/// push and erases the entry with its preview.
#[tokio::test]
async fn mute_block_mention_and_delete_for_everyone_follow_the_decision_table() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let Some((mesh, _files)) = start(backend, &fake).await else {
            continue;
        };
        let ada = mesh.sign_up().await;
        let bob = mesh.sign_up().await;
        let cy = mesh.sign_up().await;
        let bob_token = register_fcm(&mesh, &bob).await;
        let cy_token = register_fcm(&mesh, &cy).await;
        let dan = mesh.sign_up().await;
        let dan_token = register_fcm(&mesh, &dan).await;
        let to_bob = direct(&mesh, &ada, &bob).await;
        // Direct chats first: they wait until the message service knows Cy and Dan.
        direct(&mesh, &ada, &cy).await;
        let to_dan = direct(&mesh, &ada, &dan).await;
        let created =
            common::messages::group(&mesh, &ada, msg::ConversationType::Group, &[&cy, &dan]).await;

        // Bob mutes his chat with Ada; Cy blocks Ada.
        mesh.message_as(&bob)
            .update_member_settings(msg::UpdateMemberSettingsRequest {
                conversation_id: to_bob.conversation_id.clone(),
                settings: Some(msg::MemberSettings {
                    mute_until: Some(prost_types::Timestamp {
                        seconds: chrono::Utc::now().timestamp() + 3600,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["mute_until".into()],
                }),
            })
            .await
            .expect("mute");
        mesh.user_as(&cy)
            .block_user(user::BlockUserRequest {
                user_id: ada.tokens.user_id.clone(),
            })
            .await
            .expect("block");
        // Give the settings and block events a moment to reach notification's projections,
        // then send; Dan's alert for the group message shows the pipeline has passed both
        // sends (one consumer applies message events in order).
        tokio::time::sleep(Duration::from_millis(500)).await;
        send(&mesh, &ada, &to_bob, "muted").await;
        let in_group = send(&mesh, &ada, &created, "hello group").await;
        eventually(ARRIVES, "Dan's alert for the group message", || async {
            to(&fake, &dan_token)
                .into_iter()
                .find(|r| data(r, "message_id") == in_group.message_id)
        })
        .await;
        assert!(to(&fake, &bob_token).is_empty(), "{backend:?}: muted");
        assert!(inbox(&mesh, &bob).await.is_empty(), "{backend:?}: muted");
        assert_eq!(badge(&mesh, &bob).await, 0, "{backend:?}: muted");
        assert!(to(&fake, &cy_token).is_empty(), "{backend:?}: blocked");
        assert!(inbox(&mesh, &cy).await.is_empty(), "{backend:?}: blocked");
        // Blocking silences, it does not hide: the message still counts as unread for Cy.
        assert_eq!(badge(&mesh, &cy).await, 1, "{backend:?}: blocked");

        // A mention in the group.
        let mention = msg::MessageContent {
            text: "@dan rope?".into(),
            mentions: vec![msg::Mention {
                user_id: dan.tokens.user_id.clone(),
                offset: 0,
                length: 4,
            }],
            ..Default::default()
        };
        let mentioned = common::messages::send_content(&mesh, &ada, &created, mention).await;
        let alert = eventually(ARRIVES, "the mention's alert", || async {
            to(&fake, &dan_token)
                .into_iter()
                .find(|r| data(r, "message_id") == mentioned.message_id)
        })
        .await;
        assert_eq!(
            alert.payload["message"]["notification"]["title"],
            "Analytical Engine"
        );
        assert_eq!(data(&alert, "kind"), "mention");
        let entry = inbox(&mesh, &dan)
            .await
            .into_iter()
            .find(|e| e.message_id == mentioned.message_id)
            .expect("the mention's entry");
        assert_eq!(
            entry.kind,
            pb::InboxEntryKind::Mention as i32,
            "{backend:?}"
        );

        // Dan comes online, so the next alert waits for the recheck; Ada deletes the message
        // for everyone before it: no alert, no entry, no preview left.
        heartbeat(&mesh, &dan).await;
        let doomed = send(&mesh, &ada, &to_dan, "regret").await;
        eventually(ARRIVES, "the entry of the doomed message", || async {
            inbox(&mesh, &dan)
                .await
                .iter()
                .any(|e| e.message_id == doomed.message_id)
                .then_some(())
        })
        .await;
        mesh.message_as(&ada)
            .delete_message(msg::DeleteMessageRequest {
                conversation_id: to_dan.conversation_id.clone(),
                message_id: doomed.message_id.clone(),
                scope: msg::DeleteScope::ForEveryone as i32,
            })
            .await
            .expect("delete for everyone");
        eventually(ARRIVES, "the entry erased", || async {
            (!inbox(&mesh, &dan)
                .await
                .iter()
                .any(|e| e.message_id == doomed.message_id))
            .then_some(())
        })
        .await;
        tokio::time::sleep(RECHECK * 2).await;
        assert!(
            to(&fake, &dan_token)
                .iter()
                .all(|r| data(r, "message_id") != doomed.message_id || data(r, "type") != "alert"),
            "{backend:?}: the deleted message was pushed"
        );
        mesh.shutdown().await;
    }
}

/// Storm damping (spec §B5): within 10 s of an alert in the same conversation, the next
/// alerts are silent and summarise the unread count instead of showing their text.
#[tokio::test]
async fn alerts_in_quick_succession_go_silent_with_a_summary() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let Some(Chat {
            mesh,
            _files,
            ada,
            bob,
            token,
            chat,
        }) = chat(backend, &fake).await
        else {
            continue;
        };
        send(&mesh, &ada, &chat, "first of three").await;
        let first = nth(&fake, &token, 1, "the first alert").await.remove(0);
        assert_eq!(
            data(&first, "silent"),
            "",
            "{backend:?}: the first alert rings"
        );
        assert_eq!(
            first.payload["message"]["notification"]["body"],
            "first of three"
        );
        // The alert is recorded as sent (with the token's delivery time, in one transaction)
        // before the next message, so its damping cannot read a moment too early.
        eventually(ARRIVES, "the first alert recorded", || async {
            tokens(&mesh, &bob)
                .await
                .iter()
                .any(|t| t.last_delivered_at.is_some())
                .then_some(())
        })
        .await;

        send(&mesh, &ada, &chat, "second of three").await;
        send(&mesh, &ada, &chat, "third of three").await;
        let seen = nth(&fake, &token, 3, "the storm's alerts").await;
        for alert in &seen[1..] {
            assert_eq!(data(alert, "type"), "alert");
            assert_eq!(data(alert, "silent"), "true", "{backend:?}: damped");
            let body = alert.payload["message"]["notification"]["body"]
                .as_str()
                .unwrap_or_default();
            assert!(
                body.ends_with(" new messages") && !body.contains("of three"),
                "{backend:?}: a summary, not the text: {body:?}"
            );
        }
        assert_eq!(badge(&mesh, &bob).await, 3);
        mesh.shutdown().await;
    }
}
