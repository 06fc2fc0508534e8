//! Accounts, pending registrations and one-time codes.

use chrono::Duration;
use echo_auth::error::AuthError;
use echo_auth::store::{OtpPurpose, PendingRegistration, StoredOtp};
use echo_proto::echo::events::v1::SessionEndReason;

use crate::common::*;

/// A pending registration is stored, replaced by a second Register, and read back.
pub async fn pending_registration_put_replace_get(env: &Env) {
    assert_eq!(env.store.pending_registration(PHONE).await.unwrap(), None);
    let first = PendingRegistration {
        phone_number: PHONE.to_owned(),
        password_hash: "hash-1".to_owned(),
        display_name: "Ada".to_owned(),
    };
    env.store.put_pending_registration(&first).await.unwrap();
    assert_eq!(
        env.store.pending_registration(PHONE).await.unwrap(),
        Some(first)
    );
    let second = PendingRegistration {
        phone_number: PHONE.to_owned(),
        password_hash: "hash-2".to_owned(),
        display_name: "Grace".to_owned(),
    };
    env.store.put_pending_registration(&second).await.unwrap();
    assert_eq!(
        env.store.pending_registration(PHONE).await.unwrap(),
        Some(second)
    );
    assert_eq!(env.rows("pending_registrations").await, 1);
}

/// Codes are per (phone, purpose), replaced on reissue, count failures and work at most once; an
/// expired code is still returned (the domain answers OTP_EXPIRED for it).
pub async fn otp_lifecycle(env: &Env) {
    let login = OtpPurpose::Login;
    assert_eq!(env.store.otp(PHONE, login).await.unwrap(), None);
    assert_eq!(env.store.record_otp_failure(PHONE, login).await.unwrap(), 0);
    let first = StoredOtp {
        code_hash: hash(),
        expires_at: now() + Duration::minutes(5),
        attempts: 0,
        created_at: now(),
    };
    env.store.put_otp(PHONE, login, &first).await.unwrap();
    assert_eq!(
        env.store.otp(PHONE, login).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(env.store.record_otp_failure(PHONE, login).await.unwrap(), 1);
    assert_eq!(env.store.record_otp_failure(PHONE, login).await.unwrap(), 2);
    assert_eq!(
        env.store.otp(PHONE, login).await.unwrap().unwrap().attempts,
        2
    );

    // A reissued code replaces the old one, attempts included.
    let second = StoredOtp {
        code_hash: hash(),
        ..first.clone()
    };
    env.store.put_otp(PHONE, login, &second).await.unwrap();
    assert_eq!(env.store.otp(PHONE, login).await.unwrap(), Some(second));

    // Other purposes are separate.
    let reset = StoredOtp {
        code_hash: hash(),
        ..first.clone()
    };
    let purpose = OtpPurpose::PasswordReset;
    env.store.put_otp(PHONE, purpose, &reset).await.unwrap();
    assert!(env.store.consume_otp(PHONE, login).await.unwrap());
    assert!(
        !env.store.consume_otp(PHONE, login).await.unwrap(),
        "a code works at most once"
    );
    assert_eq!(env.store.otp(PHONE, login).await.unwrap(), None);
    assert_eq!(env.store.otp(PHONE, purpose).await.unwrap(), Some(reset));

    let expired = StoredOtp {
        expires_at: now() - Duration::seconds(1),
        ..first
    };
    env.store
        .put_otp(PHONE, OtpPurpose::Register, &expired)
        .await
        .unwrap();
    assert_eq!(
        env.store.otp(PHONE, OtpPurpose::Register).await.unwrap(),
        Some(expired)
    );
}

/// create_account writes the account, first session, token and one outbox row, and consumes the
/// pending registration; a second account on the same phone is refused (`PhoneTaken`) and
/// writes nothing.
pub async fn create_account_is_atomic(env: &Env) {
    let pending = PendingRegistration {
        phone_number: PHONE.to_owned(),
        password_hash: "hash".to_owned(),
        display_name: "Ada".to_owned(),
    };
    env.store.put_pending_registration(&pending).await.unwrap();
    let account = account(PHONE);
    let session = session(account.user_id);
    let refresh = fresh_refresh(session.session_id);
    let registered = event("user_registered", account.user_id);
    env.store
        .create_account(&account, &session, &refresh, &registered)
        .await
        .unwrap();

    assert_eq!(
        env.store.account_by_phone(PHONE).await.unwrap(),
        Some(account.clone())
    );
    assert_eq!(
        env.store.account_by_id(account.user_id).await.unwrap(),
        Some(account.clone())
    );
    assert_eq!(
        env.store.session(session.session_id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(env.token(&refresh.token_hash).await, (true, false));
    assert_eq!(env.outbox_ids().await, vec![registered.id]);
    assert_eq!(env.store.pending_registration(PHONE).await.unwrap(), None);

    let twin = crate::common::account(PHONE);
    let twin_session = crate::common::session(twin.user_id);
    let twin_refresh = fresh_refresh(twin_session.session_id);
    let again = env
        .store
        .create_account(
            &twin,
            &twin_session,
            &twin_refresh,
            &event("user_registered", twin.user_id),
        )
        .await;
    assert!(matches!(again, Err(AuthError::PhoneTaken)), "{again:?}");
    assert_eq!(env.store.account_by_id(twin.user_id).await.unwrap(), None);
    assert_eq!(
        env.store.session(twin_session.session_id).await.unwrap(),
        None
    );
    assert_eq!(env.token(&twin_refresh.token_hash).await, (false, false));
    assert_eq!(
        env.outbox_ids().await,
        vec![registered.id],
        "the conflict appended an event"
    );
    assert_eq!(env.rows("accounts").await, 1);
    assert_eq!(env.rows("sessions").await, 1);
    assert_eq!(env.rows("refresh_tokens").await, 1);
}

/// set_password replaces the hash.
pub async fn set_password(env: &Env) {
    let (account, _, _) = registered(env, PHONE).await;
    env.store
        .set_password(account.user_id, "new-hash")
        .await
        .unwrap();
    let stored = env
        .store
        .account_by_id(account.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.password_hash.as_deref(), Some("new-hash"));
}

/// delete_account removes the account with its sessions, tokens and codes, appends one event,
/// and returns the sessions that were active.
pub async fn delete_account_removes_everything(env: &Env) {
    let (account, first, _) = registered(env, PHONE).await;
    let (second, _) = signed_in(env, account.user_id).await;
    let (gone, _) = signed_in(env, account.user_id).await;
    env.store
        .revoke_sessions(
            account.user_id,
            Some(gone.session_id),
            None,
            SessionEndReason::Revoked,
        )
        .await
        .unwrap();
    let code = StoredOtp {
        code_hash: hash(),
        expires_at: now() + Duration::minutes(5),
        attempts: 0,
        created_at: now(),
    };
    env.store
        .put_otp(PHONE, OtpPurpose::Login, &code)
        .await
        .unwrap();
    let (other, other_session, _) = registered(env, "+14155550199").await;
    env.store
        .put_otp("+14155550199", OtpPurpose::Login, &code)
        .await
        .unwrap();
    let before = env.outbox_ids().await;

    let deleted = event("user_deleted", account.user_id);
    let mut expected = vec![first.session_id, second.session_id];
    expected.sort();
    let active = env
        .store
        .delete_account(account.user_id, &deleted)
        .await
        .unwrap();
    assert_eq!(active, expected);

    assert_eq!(
        env.store.account_by_id(account.user_id).await.unwrap(),
        None
    );
    assert_eq!(env.store.account_by_phone(PHONE).await.unwrap(), None);
    for session in [&first, &second, &gone] {
        assert_eq!(env.store.session(session.session_id).await.unwrap(), None);
    }
    let user = [text(account.user_id)];
    let left = "SELECT count(*) FROM sessions WHERE CAST(user_id AS TEXT) = $1";
    assert_eq!(env.count(left, &user).await, 0);
    assert_eq!(
        env.rows("refresh_tokens").await,
        1,
        "only the other user's token is left"
    );
    assert_eq!(env.store.otp(PHONE, OtpPurpose::Login).await.unwrap(), None);
    assert!(
        env.store
            .otp("+14155550199", OtpPurpose::Login)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        env.store
            .session(other_session.session_id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        env.store
            .account_by_id(other.user_id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(env.outbox_ids().await, [before, vec![deleted.id]].concat());

    // The phone is free again.
    registered(env, PHONE).await;
}
