//! The badge is never stuck: it equals the message service's unread total.

use crate::helpers::*;

/// The badge is never stuck: after a long, seeded mix of sends, reads, deletions for everyone
/// and for one user over three groups of four users, every user's GetBadgeCount equals the
/// message service's unread total within a second or two of the last change.
#[tokio::test]
async fn the_badge_equals_the_message_services_unread_total() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let Some((mesh, _files)) = start(backend, &fake).await else {
            continue;
        };
        let users = [
            mesh.sign_up().await,
            mesh.sign_up().await,
            mesh.sign_up().await,
            mesh.sign_up().await,
        ];
        // The message service must know every account before groups name them.
        for other in &users[1..] {
            direct(&mesh, &users[0], other).await;
        }
        let mut groups = Vec::new();
        for owner in 0..3 {
            let others: Vec<&SignedIn> = users
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != owner)
                .map(|(_, u)| u)
                .collect();
            groups.push(
                common::messages::group(
                    &mesh,
                    &users[owner],
                    msg::ConversationType::Group,
                    &others,
                )
                .await,
            );
        }
        // A fixed-seed linear congruential generator: the same sequence every run.
        let mut state: u64 = 0x5eed_1234;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(state >> 33).unwrap_or(0) % n
        };
        let mut sent: Vec<(usize, usize, msg::Message)> = Vec::new();
        for step in 0..120 {
            let who = next(users.len());
            let group = next(groups.len());
            match next(10) {
                0..=5 => {
                    let message =
                        send(&mesh, &users[who], &groups[group], &format!("step {step}")).await;
                    sent.push((who, group, message));
                }
                6 | 7 => {
                    let last = sent.iter().rev().find(|(_, g, _)| *g == group);
                    if let Some((_, _, message)) = last {
                        let upto = message.seq - i64::try_from(next(3)).unwrap_or(0);
                        mark_read(&mesh, &users[who], &groups[group], upto.max(1)).await;
                    }
                }
                8 if !sent.is_empty() => {
                    let (author, group, message) = sent.remove(next(sent.len()));
                    mesh.message_as(&users[author])
                        .delete_message(msg::DeleteMessageRequest {
                            conversation_id: groups[group].conversation_id.clone(),
                            message_id: message.message_id.clone(),
                            scope: msg::DeleteScope::ForEveryone as i32,
                        })
                        .await
                        .expect("delete for everyone");
                }
                _ if !sent.is_empty() => {
                    let (_, group, message) = &sent[next(sent.len())];
                    let reader = next(users.len());
                    // Refused when the reader is the author's peer who never saw it, or it
                    // is gone: both fine, the counts must agree either way.
                    let _ = mesh
                        .message_as(&users[reader])
                        .delete_message(msg::DeleteMessageRequest {
                            conversation_id: groups[*group].conversation_id.clone(),
                            message_id: message.message_id.clone(),
                            scope: msg::DeleteScope::ForMe as i32,
                        })
                        .await;
                }
                _ => {}
            }
        }
        let mut total = 0;
        for user in &users {
            let expected = message_unread_total(&mesh, user).await;
            total += expected;
            eventually(Duration::from_secs(10), "badge = unread total", || async {
                let got = badge(&mesh, user).await;
                (got == expected).then_some(())
            })
            .await;
        }
        assert!(
            total > 0,
            "{backend:?}: the sequence left nothing unread to compare"
        );
        mesh.shutdown().await;
    }
}

/// A badge change is pushed on its own (a mute lowers it, 0 included), at most once per user
/// per `notification.badge_interval`: a change sooner after the last badge push waits out the
/// interval and then sends the number current at that time.
#[tokio::test]
async fn badge_pushes_follow_mutes_at_most_once_per_interval() {
    for backend in Backend::BOTH {
        let fake = FakePushServer::start().await;
        let Some(Chat {
            mesh,
            _files,
            ada,
            bob,
            token,
            chat,
        }) = crate::helpers::chat(backend, &fake).await
        else {
            continue;
        };
        send(&mesh, &ada, &chat, "one").await;
        send(&mesh, &ada, &chat, "two").await;
        let alerts = nth(&fake, &token, 2, "two alerts").await;
        assert_eq!(data(&alerts[1], "badge"), "2", "{backend:?}");

        mute(&mesh, &bob, &chat, Some(3600)).await;
        let seen = nth(&fake, &token, 3, "the badge push after muting").await;
        assert_eq!(data(&seen[2], "type"), "badge", "{backend:?}");
        assert_eq!(data(&seen[2], "badge"), "0", "{backend:?}: muted");
        // Badge-only pushes show nothing: normal priority, data only.
        assert_eq!(seen[2].payload["message"]["android"]["priority"], "NORMAL");
        assert!(seen[2].payload["message"]["notification"].is_null());

        // Unmuting at once raises the badge again, but the push waits out the interval.
        mute(&mesh, &bob, &chat, None).await;
        let seen = nth(&fake, &token, 4, "the badge push after unmuting").await;
        assert_eq!(data(&seen[3], "type"), "badge", "{backend:?}");
        assert_eq!(data(&seen[3], "badge"), "2", "{backend:?}: unmuted");
        let apart = seen[3].received_at - seen[2].received_at;
        // The interval counts from when the first was sent, a moment before the fake saw it.
        assert!(
            apart >= BADGE_INTERVAL - Duration::from_millis(500),
            "{backend:?}: two badge pushes {apart:?} apart"
        );
        assert_eq!(badge(&mesh, &bob).await, 2);
        mesh.shutdown().await;
    }
}

/// `who` mutes `conversation` for `secs` seconds from now, or unmutes it (None).
async fn mute(
    mesh: &TestMesh,
    who: &SignedIn,
    conversation: &msg::Conversation,
    secs: Option<i64>,
) {
    mesh.message_as(who)
        .update_member_settings(msg::UpdateMemberSettingsRequest {
            conversation_id: conversation.conversation_id.clone(),
            settings: Some(msg::MemberSettings {
                mute_until: secs.map(|secs| prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() + secs,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["mute_until".into()],
            }),
        })
        .await
        .expect("update mute");
}
