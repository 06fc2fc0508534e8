//! Dispatch: provider answers (retries, pruning), logout, Web Push and webhooks, and two
//! notification instances sharing one queue.

use crate::helpers::*;

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
            tokens(&mesh, &bob).await.is_empty().then_some(())
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
            tokens(&mesh, &bob_again).await.is_empty().then_some(())
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

/// Our credentials refused (FCM 401, and 401 again after the re-mint): the platform pauses
/// (spec §B3's circuit breaker) — no request at all until the pause ends, the token kept —
/// then the held pushes go.
#[tokio::test]
async fn refused_credentials_pause_the_platform_and_never_prune() {
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
        fake.script(&token, [Reply::status(401), Reply::status(401)]);
        let refused = send(&mesh, &ada, &chat, "refused").await;
        nth(&fake, &token, 2, "the send and its re-mint refused").await;
        let held = send(&mesh, &ada, &chat, "held while paused").await;
        let seen = nth(&fake, &token, 4, "both pushes after the pause").await;
        assert_eq!(seen[0].status, 401, "{backend:?}");
        assert_eq!(seen[1].status, 401, "{backend:?}");
        let quiet = seen[2].received_at - seen[1].received_at;
        assert!(
            quiet >= CREDENTIAL_PAUSE - Duration::from_millis(500),
            "{backend:?}: the next request came {quiet:?} after the refusal"
        );
        let mut delivered: Vec<&str> = seen[2..].iter().map(|r| data(r, "message_id")).collect();
        delivered.sort_unstable();
        let mut expected = [refused.message_id.as_str(), held.message_id.as_str()];
        expected.sort_unstable();
        assert_eq!(delivered, expected, "{backend:?}");
        assert_eq!(
            tokens(&mesh, &bob).await.len(),
            1,
            "{backend:?}: never pruned"
        );
        mesh.shutdown().await;
    }
}

/// Deleting an account purges what notification holds of it: its tokens, inbox, counts,
/// settings, and a push still waiting for its recheck, which is never sent.
#[tokio::test]
async fn account_deletion_purges_tokens_inbox_counts_settings_and_pending_pushes() {
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
        mesh.notification_as(&bob)
            .update_notification_settings(pb::UpdateNotificationSettingsRequest {
                settings: Some(pb::NotificationSettings {
                    show_previews: false,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["show_previews".into()],
                }),
            })
            .await
            .expect("settings");
        // Bob ONLINE: the alert waits for its recheck, and the account goes meanwhile.
        heartbeat(&mesh, &bob).await;
        send(&mesh, &ada, &chat, "before the account goes").await;
        eventually(ARRIVES, "Bob's inbox entry", || async {
            (!inbox(&mesh, &bob).await.is_empty()).then_some(())
        })
        .await;
        let user: uuid::Uuid = bob.tokens.user_id.parse().expect("user id");
        assert!(held(&mesh, user).await > 0, "{backend:?}: nothing to purge");

        mesh.auth_as(&bob)
            .delete_account(auth::DeleteAccountRequest {
                password: echo_testkit::PASSWORD.into(),
            })
            .await
            .expect("delete account");
        eventually(ARRIVES, "everything of Bob purged", || async {
            (held(&mesh, user).await == 0).then_some(())
        })
        .await;
        tokio::time::sleep(RECHECK * 2).await;
        assert!(
            to(&fake, &token).is_empty(),
            "{backend:?}: pushed to a deleted account"
        );
        mesh.shutdown().await;
    }
}

/// Rows notification holds about `user`, over every table keyed by user.
async fn held(mesh: &TestMesh, user: uuid::Uuid) -> i64 {
    const TABLES: [&str; 5] = [
        "push_tokens",
        "push_jobs",
        "inbox_entries",
        "notify_counts",
        "notification_settings",
    ];
    let (_, db) = mesh
        .mesh
        .databases
        .iter()
        .find(|(t, _)| t.name() == "notification")
        .expect("notification's database");
    let mut total = 0;
    for table in TABLES {
        let sql = format!("SELECT count(*) FROM {table} WHERE user_id = $1");
        let sql = sqlx::AssertSqlSafe(sql);
        let rows: i64 = match db {
            echo_store::Database::Postgres(pg) => sqlx::query_scalar(sql)
                .bind(user)
                .fetch_one(&pg.pool)
                .await
                .expect("count"),
            echo_store::Database::Sqlite(lite) => sqlx::query_scalar(sql)
                .bind(user)
                .fetch_one(&lite.reader)
                .await
                .expect("count"),
        };
        total += rows;
    }
    total
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
