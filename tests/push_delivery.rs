//! The notification pipeline end to end, on both backends: messages sent through the public
//! API reach a fake push service (which checks every request as FCM and APNs would) according
//! to spec §B2's decision table, with inbox entries, badges, dismisses, retries, pruning and
//! erasure. Each test starts its own fake and mesh.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use echo_proto::echo::auth::v1 as auth;
use echo_proto::echo::message::v1 as msg;
use echo_proto::echo::notification::v1 as pb;
use echo_proto::echo::presence::v1 as presence;
use echo_proto::echo::user::v1 as user;
use echo_push::Platform;
use echo_push::fake::{FakePushServer, Recorded, Reply};
use echo_testkit::{Backend, SignedIn, TestMesh};

mod common;

use common::live::eventually;
use common::messages::{direct, send};
use common::second_device;

/// Long enough for a push that is coming to arrive on a busy machine.
const ARRIVES: Duration = Duration::from_secs(15);
/// The recheck delay these meshes use.
const RECHECK: Duration = Duration::from_secs(2);

/// A mesh whose notification service sends FCM and APNs pushes to `fake`; the credential
/// files live in the returned directory.
async fn start(backend: Backend, fake: &FakePushServer) -> Option<(TestMesh, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mesh = TestMesh::start_with(backend, "all", |config| {
        echo_testkit::push::configure(config, fake, dir.path());
        config.notification.recheck_delay = RECHECK;
        config.notification.poll_every = Duration::from_millis(50);
    })
    .await?;
    Some((mesh, dir))
}

/// Ada and Bob in a direct conversation, Bob with an FCM token, on a mesh pushing to a fake.
struct Chat {
    mesh: TestMesh,
    _files: tempfile::TempDir,
    ada: SignedIn,
    bob: SignedIn,
    token: String,
    chat: msg::Conversation,
}

async fn chat(backend: Backend, fake: &FakePushServer) -> Option<Chat> {
    let (mesh, files) = start(backend, fake).await?;
    let ada = mesh.sign_up().await;
    let bob = mesh.sign_up().await;
    let token = register_fcm(&mesh, &bob).await;
    let chat = direct(&mesh, &ada, &bob).await;
    Some(Chat {
        mesh,
        _files: files,
        ada,
        bob,
        token,
        chat,
    })
}

/// A fresh FCM registration token, unique by construction.
fn fcm_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "fcm-{}:{}",
        NEXT.fetch_add(1, Ordering::Relaxed),
        "A".repeat(140)
    )
}

/// A fresh APNs device token (64 hex digits), unique by construction.
fn apns_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:064x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn register_fcm(mesh: &TestMesh, who: &SignedIn) -> String {
    let token = fcm_token();
    mesh.notification_as(who)
        .register_push_token(pb::RegisterPushTokenRequest {
            platform: pb::PushPlatform::Fcm as i32,
            token: token.clone(),
            app_id: String::new(),
            sandbox: false,
        })
        .await
        .expect("register FCM token");
    token
}

fn to(fake: &FakePushServer, token: &str) -> Vec<Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| r.platform == Platform::Fcm && r.key == token)
        .collect()
}

fn data<'a>(request: &'a Recorded, field: &str) -> &'a str {
    request.payload["message"]["data"][field]
        .as_str()
        .unwrap_or_default()
}

/// Waits for the `n`th request to `token` and returns them all.
async fn nth(fake: &FakePushServer, token: &str, n: usize, what: &str) -> Vec<Recorded> {
    eventually(ARRIVES, what, || async {
        let seen = to(fake, token);
        (seen.len() >= n).then_some(seen)
    })
    .await
}

async fn badge(mesh: &TestMesh, who: &SignedIn) -> i32 {
    mesh.notification_as(who)
        .get_badge_count(pb::GetBadgeCountRequest {})
        .await
        .expect("badge")
        .into_inner()
        .badge_count
}

async fn inbox(mesh: &TestMesh, who: &SignedIn) -> Vec<pb::InboxEntry> {
    mesh.notification_as(who)
        .list_inbox(pb::ListInboxRequest::default())
        .await
        .expect("inbox")
        .into_inner()
        .entries
}

async fn mark_read(mesh: &TestMesh, who: &SignedIn, conversation: &msg::Conversation, seq: i64) {
    mesh.message_as(who)
        .mark_read(msg::MarkReadRequest {
            conversation_id: conversation.conversation_id.clone(),
            last_read_seq: seq,
        })
        .await
        .expect("mark read");
}

async fn heartbeat(mesh: &TestMesh, who: &SignedIn) {
    mesh.presence_as(who)
        .heartbeat(presence::HeartbeatRequest {
            status: presence::PresenceStatus::Online as i32,
        })
        .await
        .expect("heartbeat");
}

fn display_name(who: &SignedIn) -> String {
    format!("Test {}", &who.phone[who.phone.len() - 4..])
}

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

/// Provider answers: 503, 503 then 200 is delivered on the third try (same dedupe tag);
/// FCM 404 UNREGISTERED prunes the token (it leaves ListPushTokens); logging out removes the
/// device's tokens, so nothing more is sent to them.
#[tokio::test]
async fn retries_pruning_and_logout() {
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

        fake.script(&token, [Reply::status(503), Reply::status(503)]);
        send(&mesh, &ada, &chat, "third time lucky").await;
        let tries = eventually(Duration::from_secs(30), "three tries", || async {
            let seen = to(&fake, &token);
            (seen.len() >= 3).then_some(seen)
        })
        .await;
        let statuses: Vec<u16> = tries.iter().map(|r| r.status).collect();
        assert_eq!(statuses[..3], [503, 503, 200], "{backend:?}");
        let tag = |r: &Recorded| r.payload["message"]["android"]["notification"]["tag"].clone();
        assert_eq!(
            tag(&tries[0]),
            tag(&tries[2]),
            "a resend keeps the dedupe tag"
        );

        fake.script(&token, [Reply::fcm_unregistered()]);
        send(&mesh, &ada, &chat, "to a dead token").await;
        eventually(ARRIVES, "the token pruned", || async {
            let listed = mesh
                .notification_as(&bob)
                .list_push_tokens(pb::ListPushTokensRequest::default())
                .await
                .expect("list")
                .into_inner();
            listed.push_tokens.is_empty().then_some(())
        })
        .await;

        // A new registration, then logout: the device's tokens go with its session.
        let again = register_fcm(&mesh, &bob).await;
        mesh.auth_as(&bob)
            .logout(auth::LogoutRequest {})
            .await
            .expect("logout");
        // Signed in again on another device: once logout's event is applied, the old
        // device's token is gone, and a new message reaches nothing of it.
        let bob_again = second_device(&mesh, &bob).await;
        eventually(ARRIVES, "the token removed at logout", || async {
            let listed = mesh
                .notification_as(&bob_again)
                .list_push_tokens(pb::ListPushTokensRequest::default())
                .await
                .expect("list")
                .into_inner();
            listed.push_tokens.is_empty().then_some(())
        })
        .await;
        let after = send(&mesh, &ada, &chat, "after logout").await;
        tokio::time::sleep(RECHECK * 2).await;
        assert!(
            to(&fake, &again)
                .iter()
                .all(|r| data(r, "message_id") != after.message_id),
            "{backend:?}: pushed to a logged-out device"
        );
        mesh.shutdown().await;
    }
}

/// Σ unread over `who`'s conversations as the message service counts them.
async fn message_unread_total(mesh: &TestMesh, who: &SignedIn) -> i32 {
    let listed = mesh
        .message_as(who)
        .list_conversations(msg::ListConversationsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list conversations")
        .into_inner();
    listed
        .conversations
        .iter()
        .filter_map(|c| c.my_state.as_ref())
        .map(|s| s.unread_count)
        .sum()
}

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

/// Two notification instances on one database and bus (a whole mesh, and a second process
/// running only notification): each message's alert goes out exactly once, and the badge still
/// equals the message service's unread total (the message events are applied in stream order
/// across both instances). PostgreSQL, NATS and Redis only: the embedded backend is one process.
#[tokio::test]
async fn two_notification_instances_send_each_push_once_and_keep_counts_in_order() {
    let fake = FakePushServer::start().await;
    let Some((first, _files)) = start(Backend::Real, &fake).await else {
        return;
    };
    let internal = format!(
        "http://{}",
        first.mesh.internal_addr.expect("internal port")
    );
    let second = TestMesh::start_with(Backend::Real, "notification", |config| {
        config.data_dir.clone_from(&first.config.data_dir);
        config
            .database_schema_prefix
            .clone_from(&first.config.database_schema_prefix);
        config
            .bus_subject_prefix
            .clone_from(&first.config.bus_subject_prefix);
        config
            .cache_key_prefix
            .clone_from(&first.config.cache_key_prefix);
        config.notification = first.config.notification.clone();
        config.notification.message_internal_url = Some(internal.clone());
        config.notification.presence_internal_url = Some(internal.clone());
        // It verifies access tokens with auth's public keys, fetched from the first.
        config.upstreams.auth = Some(format!("http://{}", first.addr()));
    })
    .await
    .expect("the second notification instance");

    let ada = first.sign_up().await;
    let bob = first.sign_up().await;
    let token = register_fcm(&first, &bob).await;
    let chat = direct(&first, &ada, &bob).await;
    let mut sent = Vec::new();
    for n in 0..24 {
        let message = send(&first, &ada, &chat, &format!("message {n}")).await;
        if n % 8 == 7 {
            mark_read(&first, &bob, &chat, message.seq - 2).await;
        }
        sent.push(message);
    }
    for message in &sent {
        eventually(ARRIVES, "an alert for every unread message", || async {
            let alerts = to(&fake, &token)
                .into_iter()
                .filter(|r| {
                    data(r, "type") == "alert" && data(r, "message_id") == message.message_id
                })
                .count();
            // Read before its push was due is the only reason for none.
            (alerts == 1 || alerts == 0 && message.seq <= sent[23].seq - 2).then_some(())
        })
        .await;
    }
    let duplicates: Vec<String> = sent
        .iter()
        .filter(|m| {
            to(&fake, &token)
                .iter()
                .filter(|r| data(r, "type") == "alert" && data(r, "message_id") == m.message_id)
                .count()
                > 1
        })
        .map(|m| m.message_id.clone())
        .collect();
    assert!(duplicates.is_empty(), "pushed twice: {duplicates:?}");
    let expected = message_unread_total(&first, &bob).await;
    assert!(expected > 0);
    eventually(ARRIVES, "badge = unread total", || async {
        (badge(&second, &bob).await == expected).then_some(())
    })
    .await;
    second.shutdown().await;
    first.shutdown().await;
}

/// Web Push and webhooks end to end (embedded only: in production mode, which every real
/// backend is, endpoints on loopback are refused at registration): the Web Push body decrypts
/// with the subscription's keys (the fake checks VAPID and decrypts), the webhook carries a
/// valid signature, and both carry the alert.
#[tokio::test]
async fn web_push_and_webhook_alerts_reach_their_endpoints() {
    let fake = FakePushServer::start().await;
    let Some((mesh, _files)) = start(Backend::Embedded, &fake).await else {
        return;
    };
    let ada = mesh.sign_up().await;
    let bob = mesh.sign_up().await;
    let subscription = fake.subscribe();
    mesh.notification_as(&bob)
        .register_push_token(pb::RegisterPushTokenRequest {
            platform: pb::PushPlatform::Webpush as i32,
            token: subscription.token.clone(),
            app_id: String::new(),
            sandbox: false,
        })
        .await
        .expect("register a Web Push subscription");
    // A webhook is a second device's registration (one token per device and platform).
    let cy = mesh.sign_up().await;
    mesh.notification_as(&cy)
        .register_push_token(pb::RegisterPushTokenRequest {
            platform: pb::PushPlatform::Webhook as i32,
            token: fake.webhook_url("cy"),
            app_id: String::new(),
            sandbox: false,
        })
        .await
        .expect("register a webhook");
    let to_bob = direct(&mesh, &ada, &bob).await;
    let to_cy = direct(&mesh, &ada, &cy).await;
    let for_bob = send(&mesh, &ada, &to_bob, "over web push").await;
    let for_cy = send(&mesh, &ada, &to_cy, "over a webhook").await;

    let web = eventually(ARRIVES, "the Web Push alert", || async {
        fake.requests()
            .into_iter()
            .find(|r| r.platform == Platform::WebPush && r.key == subscription.id)
    })
    .await;
    assert_eq!(web.payload["body"], "over web push", "{}", web.payload);
    assert_eq!(web.payload["message_id"], for_bob.message_id);
    assert_eq!(web.payload["badge"], 1);
    assert_eq!(web.header("topic").map(str::len), Some(32));
    let hook = eventually(ARRIVES, "the webhook alert", || async {
        fake.requests()
            .into_iter()
            .find(|r| r.platform == Platform::Webhook && r.key == "cy")
    })
    .await;
    assert_eq!(hook.payload["body"], "over a webhook", "{}", hook.payload);
    assert_eq!(hook.payload["message_id"], for_cy.message_id);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
    mesh.shutdown().await;
}
