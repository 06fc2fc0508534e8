//! Sessions: opening, listing, revoking, and refresh token rotation.

use chrono::Duration;
use echo_auth::store::{Rotation, Session};
use echo_proto::echo::events::v1::SessionEndReason;

use crate::common::*;

/// Sessions open with their token, read back, page by id and count only active ones.
pub async fn sessions_page_and_count(env: &Env) {
    let (account, first, _) = registered(env, PHONE).await;
    let mut ids = vec![first.session_id];
    for _ in 0..4 {
        let (session, refresh) = signed_in(env, account.user_id).await;
        assert_eq!(
            env.store.session(session.session_id).await.unwrap(),
            Some(session.clone())
        );
        assert_eq!(env.token(&refresh.token_hash).await, (true, false));
        ids.push(session.session_id);
    }
    let (other, _, _) = registered(env, "+14155550199").await;
    assert_eq!(env.store.session(SessionId::new_v7()).await.unwrap(), None);
    assert_eq!(
        env.store
            .count_active_sessions(account.user_id)
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        env.store
            .count_active_sessions(other.user_id)
            .await
            .unwrap(),
        1
    );

    let store = &env.store;
    let page = |after, limit| store.active_sessions(account.user_id, after, limit);
    let ids_of = |sessions: Vec<Session>| -> Vec<SessionId> {
        sessions.into_iter().map(|s| s.session_id).collect()
    };
    ids.sort();
    assert_eq!(ids_of(page(None, 2).await.unwrap()), ids[..2]);
    assert_eq!(ids_of(page(Some(ids[1]), 2).await.unwrap()), ids[2..4]);
    assert_eq!(ids_of(page(Some(ids[3]), 2).await.unwrap()), ids[4..]);
    assert!(page(Some(ids[4]), 2).await.unwrap().is_empty());

    env.store
        .revoke_sessions(
            account.user_id,
            Some(ids[2]),
            None,
            SessionEndReason::Revoked,
        )
        .await
        .unwrap();
    assert_eq!(
        env.store
            .count_active_sessions(account.user_id)
            .await
            .unwrap(),
        4
    );
    let active = ids_of(page(None, 10).await.unwrap());
    assert_eq!(active, [ids[0], ids[1], ids[3], ids[4]]);
}

/// Rotate `old` with a fresh new token and no ip.
async fn rotate(env: &Env, old: &[u8]) -> Rotation {
    let next = fresh_refresh(SessionId::nil());
    env.store.rotate_refresh(old, &next, None).await.unwrap()
}

/// A current token rotates once; the same token again is AlreadyRotated; unknown, expired and
/// revoked-session tokens are Invalid.
pub async fn rotate_refresh_cases(env: &Env) {
    let (account, session, refresh) = registered(env, PHONE).await;
    let next = fresh_refresh(SessionId::nil()); // the store files it under the old token's session
    let rotation = env
        .store
        .rotate_refresh(&refresh.token_hash, &next, Some("198.51.100.7"))
        .await;
    let Ok(Rotation::Rotated(rotated)) = rotation else {
        panic!("current token did not rotate: {rotation:?}");
    };
    assert_eq!(rotated.session_id, session.session_id);
    assert_eq!(rotated.last_ip.as_deref(), Some("198.51.100.7"));
    assert!(rotated.last_active_at >= session.last_active_at);
    assert_eq!(
        env.token(&refresh.token_hash).await,
        (true, true),
        "old token not marked"
    );
    assert_eq!(
        env.token(&next.token_hash).await,
        (true, false),
        "new token not stored"
    );
    let filed = env
        .count(
            "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1 \
             AND CAST(session_id AS TEXT) = $2",
            &[
                Arg::Bytes(next.token_hash.clone()),
                text(session.session_id),
            ],
        )
        .await;
    assert_eq!(filed, 1, "new token not filed under the session");

    match rotate(env, &refresh.token_hash).await {
        Rotation::AlreadyRotated {
            session: found,
            rotated_at,
        } => {
            assert_eq!(found.session_id, session.session_id);
            assert!(rotated_at >= refresh.issued_at - Duration::seconds(5));
        }
        other => panic!("reused token: {other:?}"),
    }
    assert_eq!(
        env.rows("refresh_tokens").await,
        2,
        "a reuse stored a token"
    );

    // The new token is current and rotates in turn; a missing ip keeps the last one.
    let third = fresh_refresh(SessionId::nil());
    let rotation = env
        .store
        .rotate_refresh(&next.token_hash, &third, None)
        .await
        .unwrap();
    let Rotation::Rotated(touched) = rotation else {
        panic!("new token did not rotate: {rotation:?}");
    };
    assert_eq!(touched.last_ip.as_deref(), Some("198.51.100.7"));

    assert_eq!(
        rotate(env, &hash()).await,
        Rotation::Invalid,
        "unknown token"
    );

    let expiring = crate::common::session(account.user_id);
    let expired = crate::common::refresh(expiring.session_id, -Duration::seconds(1));
    env.store.open_session(&expiring, &expired).await.unwrap();
    let stale = rotate(env, &expired.token_hash).await;
    assert_eq!(stale, Rotation::Invalid, "expired token");

    let (revoked, revoked_refresh) = signed_in(env, account.user_id).await;
    let done = env.store.revoke_sessions(
        account.user_id,
        Some(revoked.session_id),
        None,
        SessionEndReason::Revoked,
    );
    assert_eq!(done.await.unwrap(), vec![revoked.session_id]);
    let next = fresh_refresh(SessionId::nil());
    let after = env
        .store
        .rotate_refresh(&revoked_refresh.token_hash, &next, None);
    assert_eq!(after.await.unwrap(), Rotation::Invalid, "revoked session");
    assert_eq!(env.token(&next.token_hash).await, (false, false));
    assert_eq!(env.token(&revoked_refresh.token_hash).await, (true, false));
}

/// Twenty concurrent refreshes with one token: exactly one rotates; the rest see it rotated.
pub async fn concurrent_rotations_rotate_once(env: &Env) {
    let (_, _, refresh) = registered(env, PHONE).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = env.store.clone();
            let old = refresh.token_hash.clone();
            tokio::spawn(async move {
                store
                    .rotate_refresh(&old, &fresh_refresh(SessionId::nil()), None)
                    .await
            })
        })
        .collect();
    let mut rotated = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Rotation::Rotated(_) => rotated += 1,
            Rotation::AlreadyRotated { .. } => {}
            Rotation::Invalid => panic!("a concurrent refresh saw the token as invalid"),
        }
    }
    assert_eq!(rotated, 1);
    assert_eq!(env.rows("refresh_tokens").await, 2);
}

/// revoke_sessions with `only`, `except` or neither returns exactly the ids it revoked now.
pub async fn revoke_sessions_only_except_all(env: &Env) {
    let (account, current, _) = registered(env, PHONE).await;
    let (a, _) = signed_in(env, account.user_id).await;
    let (b, _) = signed_in(env, account.user_id).await;
    let (c, _) = signed_in(env, account.user_id).await;
    let (other, other_session, _) = registered(env, "+14155550199").await;
    let store = &env.store;
    let user = account.user_id;
    let events_before = env.outbox_ids().await.len();

    assert_eq!(
        store
            .revoke_sessions(user, Some(a.session_id), None, SessionEndReason::Revoked)
            .await
            .unwrap(),
        [a.session_id]
    );
    assert!(
        store
            .revoke_sessions(user, Some(a.session_id), None, SessionEndReason::Revoked)
            .await
            .unwrap()
            .is_empty()
    );
    let foreign = store.revoke_sessions(
        user,
        Some(other_session.session_id),
        None,
        SessionEndReason::Revoked,
    );
    assert!(
        foreign.await.unwrap().is_empty(),
        "revoked another user's session"
    );
    let revoked = store.session(a.session_id).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());

    let mut rest = vec![b.session_id, c.session_id];
    rest.sort();
    let except = store.revoke_sessions(
        user,
        None,
        Some(current.session_id),
        SessionEndReason::Revoked,
    );
    assert_eq!(except.await.unwrap(), rest);
    let except = store.revoke_sessions(
        user,
        None,
        Some(current.session_id),
        SessionEndReason::Revoked,
    );
    assert!(except.await.unwrap().is_empty());

    assert_eq!(
        store
            .revoke_sessions(user, None, None, SessionEndReason::Revoked)
            .await
            .unwrap(),
        [current.session_id]
    );
    assert!(
        store
            .revoke_sessions(user, None, None, SessionEndReason::Revoked)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count_active_sessions(user).await.unwrap(), 0);
    assert_eq!(store.count_active_sessions(other.user_id).await.unwrap(), 1);
    // One SessionRevoked event per session revoked (a, b, c, then current), none for the
    // calls that revoked nothing.
    assert_eq!(env.outbox_ids().await.len(), events_before + 4);
}

/// revoked_since lists every session revoked after the instant, with when it was revoked
/// (what the auth service announces again after the cache lost its revocations), and no
/// active session.
pub async fn revoked_since_lists_recent_revocations(env: &Env) {
    let (account, active, _) = registered(env, PHONE).await;
    let (early, _) = signed_in(env, account.user_id).await;
    let (late, _) = signed_in(env, account.user_id).await;
    let store = &env.store;
    let revoke = |session: SessionId| {
        store.revoke_sessions(
            account.user_id,
            Some(session),
            None,
            SessionEndReason::Revoked,
        )
    };
    revoke(early.session_id).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    revoke(late.session_id).await.unwrap();

    let recent = store.revoked_since(between).await.unwrap();
    let revoked_at = store
        .session(late.session_id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at;
    assert_eq!(recent, [(late.session_id, revoked_at.unwrap())]);
    let mut all: Vec<SessionId> = store
        .revoked_since(between - Duration::minutes(1))
        .await
        .unwrap()
        .into_iter()
        .map(|(session, _)| session)
        .collect();
    all.sort();
    assert_eq!(all, [early.session_id, late.session_id]);
    assert!(!all.contains(&active.session_id));
}

/// The sessions of a deleted account are gone with it, yet revoked_since still lists those
/// that were active (their access tokens may live on), and only those.
pub async fn revoked_since_lists_sessions_of_deleted_accounts(env: &Env) {
    let (account, active, _) = registered(env, PHONE).await;
    let (revoked_before, _) = signed_in(env, account.user_id).await;
    env.store
        .revoke_sessions(
            account.user_id,
            Some(revoked_before.session_id),
            None,
            SessionEndReason::Revoked,
        )
        .await
        .unwrap();
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let ended = env
        .store
        .delete_account(account.user_id, &event("user_deleted", account.user_id))
        .await
        .unwrap();
    assert_eq!(ended, [active.session_id]);
    assert_eq!(env.store.session(active.session_id).await.unwrap(), None);

    let listed = env.store.revoked_since(between).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].0, active.session_id);
    assert!(listed[0].1 > between, "{listed:?}");
    assert!(
        env.store
            .revoked_since(chrono::Utc::now() + Duration::seconds(1))
            .await
            .unwrap()
            .is_empty()
    );
}
