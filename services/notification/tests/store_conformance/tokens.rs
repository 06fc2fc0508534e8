//! Push tokens: register, replace, move, the cap, unregister, list; and the handlers' checks
//! that need a store (platform configured, rate limit, what a listing shows).

use std::collections::HashSet;

use echo_ids::{DeviceId, UserId};
use echo_notification::tokens::MAX_TOKENS_PER_USER;
use echo_notification::{NotificationError, Platform};
use echo_proto::echo::notification::v1 as pb;
use uuid::Uuid;

use chrono::TimeDelta;

use crate::common::{Env, caller, fcm_token, now, registration};

pub async fn registration_stores_the_token(env: &Env) {
    let (user, device) = (UserId::new_v7(), DeviceId::new_v7());
    let mut asked = registration(user, device, Platform::Apns, &"ab".repeat(32));
    asked.app_id = "com.example.app".into();
    asked.sandbox = true;
    let when = now();
    let token = env.store.register_token(&asked, when, 50).await.unwrap();
    assert_eq!(token.user_id, user);
    assert_eq!(token.device_id, device);
    assert_eq!(token.platform, Platform::Apns);
    assert_eq!(token.app_id, "com.example.app");
    assert_eq!(token.token, "ab".repeat(32));
    assert!(token.sandbox);
    assert_eq!((token.created_at, token.updated_at), (when, when));
    assert_eq!(token.last_delivered_at, None);
    assert_eq!(env.store.user_tokens(user).await.unwrap(), [token]);
}

pub async fn registering_again_replaces_in_place(env: &Env) {
    let (user, device) = (UserId::new_v7(), DeviceId::new_v7());
    let t = now();
    let ms = |n| t + TimeDelta::milliseconds(n);
    let asked = |token: &str| registration(user, device, Platform::Fcm, token);
    let first = env
        .store
        .register_token(&asked("old"), ms(-1000), 50)
        .await
        .unwrap();
    env.add_job(first.id, user).await;
    // the same token again: idempotent, only updated_at moves
    let again = env
        .store
        .register_token(&asked("old"), ms(-500), 50)
        .await
        .unwrap();
    assert_eq!((again.id, again.created_at), (first.id, ms(-1000)));
    assert_eq!(again.updated_at, ms(-500));
    // a rotated token replaces it: same registration, new token
    let rotated = env
        .store
        .register_token(&asked("new"), t, 50)
        .await
        .unwrap();
    assert_eq!((rotated.id, rotated.created_at), (first.id, ms(-1000)));
    assert_eq!((rotated.token.as_str(), rotated.updated_at), ("new", t));
    assert_eq!(env.rows("push_tokens").await, 1);
    // the device's pending pushes stay: they are for the same device
    assert_eq!(env.jobs_of(first.id).await, 1);
}

pub async fn platforms_and_app_ids_are_separate_registrations(env: &Env) {
    let (user, device) = (UserId::new_v7(), DeviceId::new_v7());
    let fcm = env.register(user, device, Platform::Fcm, "same").await;
    let hook = env
        .register(
            user,
            device,
            Platform::Webhook,
            "https://hooks.example.com/x",
        )
        .await;
    assert_ne!(fcm.id, hook.id);
    // one token string under two app ids belongs to two apps: both stay
    let other_device = DeviceId::new_v7();
    let mut other_app = registration(user, other_device, Platform::Fcm, "same");
    other_app.app_id = "other.app".into();
    env.store
        .register_token(&other_app, now(), 50)
        .await
        .unwrap();
    assert_eq!(env.store.user_tokens(user).await.unwrap().len(), 3);
}

pub async fn a_token_held_elsewhere_moves_and_its_jobs_are_cancelled(env: &Env) {
    let (ada, ada_phone) = (UserId::new_v7(), DeviceId::new_v7());
    let (bob, bob_phone) = (UserId::new_v7(), DeviceId::new_v7());
    let token = fcm_token();
    let adas = env.register(ada, ada_phone, Platform::Fcm, &token).await;
    let adas_other = env
        .register(ada, Uuid::now_v7(), Platform::Fcm, &fcm_token())
        .await;
    env.add_job(adas.id, ada).await;
    env.add_job(adas_other.id, ada).await;
    // the phone changed hands: Bob registers the same token
    let bobs = env.register(bob, bob_phone, Platform::Fcm, &token).await;
    assert_ne!(bobs.id, adas.id, "a moved token starts a new registration");
    assert_eq!(bobs.user_id, bob);
    assert_eq!(
        env.store.user_tokens(bob).await.unwrap(),
        std::slice::from_ref(&bobs)
    );
    assert_eq!(
        env.store.user_tokens(ada).await.unwrap(),
        std::slice::from_ref(&adas_other)
    );
    assert_eq!(
        env.jobs_of(adas.id).await,
        0,
        "Ada's pending pushes never reach Bob"
    );
    assert_eq!(
        env.jobs_of(adas_other.id).await,
        1,
        "other tokens keep theirs"
    );
}

pub async fn a_moved_token_lands_in_the_callers_registration(env: &Env) {
    let (ada, bob, bob_device) = (UserId::new_v7(), UserId::new_v7(), DeviceId::new_v7());
    let token = fcm_token();
    let adas = env
        .register(ada, Uuid::now_v7(), Platform::Fcm, &token)
        .await;
    let bobs_old = env
        .register(bob, bob_device, Platform::Fcm, "bobs-old")
        .await;
    let bobs = env.register(bob, bob_device, Platform::Fcm, &token).await;
    assert_eq!(bobs.id, bobs_old.id, "Bob's device keeps its registration");
    assert_eq!(bobs.token, token);
    assert!(env.store.user_tokens(ada).await.unwrap().is_empty());
    assert_eq!(env.rows("push_tokens").await, 1);
    assert_eq!(env.jobs_of(adas.id).await, 0);
}

pub async fn the_cap_counts_registrations_not_moves(env: &Env) {
    let user = UserId::new_v7();
    let max = 3;
    let mut held = Vec::new();
    for _ in 0..max {
        let asked = registration(user, Uuid::now_v7(), Platform::Fcm, &fcm_token());
        held.push(env.store.register_token(&asked, now(), max).await.unwrap());
    }
    let extra = registration(user, Uuid::now_v7(), Platform::Fcm, &fcm_token());
    let refused = env.store.register_token(&extra, now(), max).await;
    assert!(
        matches!(refused, Err(NotificationError::TooManyTokens(3))),
        "{refused:?}"
    );
    // replacing an existing device's token adds nothing
    let rotate = registration(user, held[0].device_id, Platform::Fcm, &fcm_token());
    env.store.register_token(&rotate, now(), max).await.unwrap();
    // a new device taking over one of the user's own tokens frees that slot
    let takeover = registration(user, Uuid::now_v7(), Platform::Fcm, &held[1].token);
    env.store
        .register_token(&takeover, now(), max)
        .await
        .unwrap();
    assert_eq!(env.store.user_tokens(user).await.unwrap().len(), max);
    // a refused registration changed nothing
    let refused = env.store.register_token(&extra, now(), max).await;
    assert!(matches!(refused, Err(NotificationError::TooManyTokens(_))));
    assert_eq!(env.rows("push_tokens").await, max as i64);
    // the real cap
    assert_eq!(MAX_TOKENS_PER_USER, 50);
}

pub async fn racing_registrations_of_one_token_leave_one_holder(env: &Env) {
    let token = fcm_token();
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let store = env.store.clone();
            let asked = registration(Uuid::now_v7(), Uuid::now_v7(), Platform::Fcm, &token);
            tokio::spawn(async move { store.register_token(&asked, now(), 50).await })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap().expect("every registration succeeds");
    }
    assert_eq!(env.rows("push_tokens").await, 1, "the token has one holder");
}

pub async fn racing_registrations_respect_the_cap(env: &Env) {
    let user = UserId::new_v7();
    let max = 5;
    let racers: Vec<_> = (0..12)
        .map(|_| {
            let store = env.store.clone();
            let asked = registration(user, Uuid::now_v7(), Platform::Fcm, &fcm_token());
            tokio::spawn(async move { store.register_token(&asked, now(), max).await })
        })
        .collect();
    let mut refused = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => {}
            Err(NotificationError::TooManyTokens(_)) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 12 - max);
    assert_eq!(env.rows("push_tokens").await, max as i64);
}

pub async fn unregister_removes_only_the_callers_own(env: &Env) {
    let (ada, bob) = (UserId::new_v7(), UserId::new_v7());
    let adas = env
        .register(ada, Uuid::now_v7(), Platform::Fcm, &fcm_token())
        .await;
    let adas_laptop = env
        .register(
            ada,
            Uuid::now_v7(),
            Platform::Webhook,
            "https://hooks.example.com/a",
        )
        .await;
    let bobs = env
        .register(bob, Uuid::now_v7(), Platform::Fcm, &fcm_token())
        .await;
    env.add_job(adas.id, ada).await;
    env.add_job(bobs.id, bob).await;
    // foreign and unknown ids succeed and change nothing
    env.store.unregister_token(ada, bobs.id).await.unwrap();
    env.store
        .unregister_token(ada, Uuid::now_v7())
        .await
        .unwrap();
    assert_eq!(
        env.store.user_tokens(bob).await.unwrap(),
        std::slice::from_ref(&bobs)
    );
    assert_eq!(env.jobs_of(bobs.id).await, 1);
    // the caller's own, from any of their devices, goes with its pending pushes
    env.store.unregister_token(ada, adas.id).await.unwrap();
    assert_eq!(env.store.user_tokens(ada).await.unwrap(), [adas_laptop]);
    assert_eq!(env.jobs_of(adas.id).await, 0);
    // again: still fine
    env.store.unregister_token(ada, adas.id).await.unwrap();
}

pub async fn list_is_newest_first_in_pages(env: &Env) {
    let user = UserId::new_v7();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            env.register(user, Uuid::now_v7(), Platform::Fcm, &fcm_token())
                .await
                .id,
        );
    }
    env.register(Uuid::now_v7(), Uuid::now_v7(), Platform::Fcm, &fcm_token())
        .await;
    ids.reverse();
    let tokens = env.tokens(false);
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListPushTokensRequest {
            page_size: 2,
            page_token: page_token.clone(),
        };
        let page = tokens
            .list(crate::common::caller(user), request)
            .await
            .unwrap();
        assert!(page.push_tokens.len() <= 2);
        seen.extend(
            page.push_tokens
                .iter()
                .map(|t| t.push_token_id.parse::<Uuid>().unwrap()),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(
        seen, ids,
        "newest first, no gaps, no repeats, only the caller's"
    );
    // the store's own keyset
    let below = env.store.list_tokens(user, Some(ids[1]), 10).await.unwrap();
    let below: Vec<Uuid> = below.iter().map(|t| t.id).collect();
    assert_eq!(below, ids[2..]);
}

pub async fn rpc_refuses_unconfigured_platforms(env: &Env) {
    let tokens = env.tokens_for(HashSet::from([Platform::Fcm]), false);
    let user = UserId::new_v7();
    let request = pb::RegisterPushTokenRequest {
        platform: pb::PushPlatform::Apns as i32,
        token: "ab".repeat(32),
        ..Default::default()
    };
    let refused = tokens.register(caller(user), request).await;
    assert!(
        matches!(
            refused,
            Err(NotificationError::PlatformUnavailable(Platform::Apns))
        ),
        "{refused:?}"
    );
    let fcm = pb::RegisterPushTokenRequest {
        platform: pb::PushPlatform::Fcm as i32,
        token: fcm_token(),
        ..Default::default()
    };
    tokens.register(caller(user), fcm).await.unwrap();
    assert_eq!(env.rows("push_tokens").await, 1);
}

pub async fn rpc_rate_limits_registrations_per_device(env: &Env) {
    let tokens = env.tokens(false);
    let device = caller(Uuid::now_v7());
    let request = |token: String| pb::RegisterPushTokenRequest {
        platform: pb::PushPlatform::Fcm as i32,
        token,
        ..Default::default()
    };
    for _ in 0..20 {
        tokens.register(device, request(fcm_token())).await.unwrap();
    }
    let limited = tokens.register(device, request(fcm_token())).await;
    let Err(NotificationError::RateLimited(wait)) = limited else {
        panic!("expected a rate limit, got {limited:?}");
    };
    assert!(wait.as_secs() >= 60, "{wait:?}");
    // another device of the same user is not limited
    let other = caller(device.user_id);
    tokens.register(other, request(fcm_token())).await.unwrap();
}

pub async fn rpc_lists_suffixes_never_tokens(env: &Env) {
    let tokens = env.tokens(true);
    let user = caller(Uuid::now_v7());
    let secret = format!("{}-ENDS1234", Uuid::now_v7().simple());
    let request = pb::RegisterPushTokenRequest {
        platform: pb::PushPlatform::Fcm as i32,
        token: secret.clone(),
        app_id: "com.example".into(),
        sandbox: true,
    };
    let registered = tokens
        .register(user, request)
        .await
        .unwrap()
        .push_token
        .unwrap();
    assert_eq!(registered.token_suffix, "ENDS1234");
    assert_eq!(registered.device_id, user.device_id.to_string());
    assert!(!registered.sandbox, "sandbox applies to APNs only");
    let listed = tokens
        .list(user, pb::ListPushTokensRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.push_tokens, std::slice::from_ref(&registered));
    assert!(!format!("{listed:?}").contains(&secret));
    assert!(registered.created_at.is_some() && registered.last_delivered_at.is_none());
}
