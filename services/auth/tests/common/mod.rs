//! Shared setup for AuthService's store tests: an isolated database per test (a unique
//! PostgreSQL schema prefix, or SQLite files in a tempdir) with the bus and auth migrations
//! applied, fixtures, and raw-SQL probes that look past the store at what was written.
#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use echo_auth::store::{Account, AuthStore, Device, RefreshRecord, Session};
use echo_bus::{Event, Outbox};
pub use echo_ids::{DeviceId, SessionId, UserId};
use echo_store::testing::TestDatabase;
pub use echo_store::testing::{Arg, TestBackend as Backend, text};
use uuid::Uuid;

/// One isolated database and the store under test on it.
pub struct Env {
    pub store: Arc<AuthStore>,
    pub test_db: TestDatabase,
}

impl Env {
    /// `None` (after a loud skip notice) when PostgreSQL is needed and absent.
    pub async fn new(backend: Backend) -> Option<Env> {
        let migrations = [&echo_bus::migrations(), &echo_auth::migrations()];
        let test_db = TestDatabase::open(backend, "auth", &migrations).await?;
        let outbox = Outbox::new("auth", test_db.db.clone());
        let store = echo_auth::store::for_database(&test_db.db, outbox);
        Some(Env { store, test_db })
    }

    /// Close the pools and drop this test's schema.
    pub async fn cleanup(self) {
        self.test_db.cleanup().await;
    }

    /// `SELECT count(*) …` with `args` bound in order.
    pub async fn count(&self, sql: &str, args: &[Arg]) -> i64 {
        self.test_db.count(sql, args).await
    }

    /// Rows of `table` (all of them).
    pub async fn rows(&self, table: &str) -> i64 {
        self.test_db.rows(table).await
    }

    /// The event ids in the outbox, in append order.
    pub async fn outbox_ids(&self) -> Vec<Uuid> {
        let sql = "SELECT CAST(event_id AS TEXT) FROM outbox ORDER BY id";
        let ids = self.test_db.texts(sql, &[]).await;
        ids.iter().map(|id| Uuid::parse_str(id).unwrap()).collect()
    }

    /// Whether the token with `hash` is stored, and whether it is marked rotated.
    pub async fn token(&self, hash: &[u8]) -> (bool, bool) {
        let arg = || [Arg::Bytes(hash.to_vec())];
        let stored = self
            .count(
                "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1",
                &arg(),
            )
            .await;
        let rotated = self
            .count(
                "SELECT count(*) FROM refresh_tokens \
                 WHERE token_hash = $1 AND rotated_at IS NOT NULL",
                &arg(),
            )
            .await;
        (stored == 1, rotated == 1)
    }
}

/// Now, at the precision both backends store (microseconds), so round trips compare equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A fresh 32-byte stand-in for a token or code hash.
pub fn hash() -> Vec<u8> {
    [*Uuid::now_v7().as_bytes(), *Uuid::now_v7().as_bytes()].concat()
}

pub fn account(phone: &str) -> Account {
    Account {
        user_id: UserId::new_v7(),
        phone_number: phone.to_owned(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        display_name: "Ada".to_owned(),
        created_at: now(),
    }
}

pub fn session(user_id: UserId) -> Session {
    let at = now();
    Session {
        session_id: SessionId::new_v7(),
        user_id,
        device_id: DeviceId::new_v7(),
        device: Device {
            name: "Pixel 9".to_owned(),
            platform: 2,
            app_version: "1.0.0".to_owned(),
        },
        created_at: at,
        last_active_at: at,
        last_ip: Some("192.0.2.1".to_owned()),
        revoked_at: None,
    }
}

/// A refresh token for `session_id` that expires `ttl` from now (negative: already expired).
pub fn refresh(session_id: SessionId, ttl: Duration) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash(),
        session_id,
        issued_at: now(),
        expires_at: now() + ttl,
        rotated_at: None,
    }
}

/// A refresh token valid for 30 days.
pub fn fresh_refresh(session_id: SessionId) -> RefreshRecord {
    refresh(session_id, Duration::days(30))
}

pub fn event(kind: &str, user_id: UserId) -> Event {
    Event::new(
        format!("echo.auth.{kind}.{user_id}"),
        "echo.events.v1.UserRegistered",
        Bytes::from_static(b"payload"),
    )
}

/// Create an account (with a first session) and return it with that session and its token.
pub async fn registered(env: &Env, phone: &str) -> (Account, Session, RefreshRecord) {
    let account = account(phone);
    let session = session(account.user_id);
    let refresh = fresh_refresh(session.session_id);
    env.store
        .create_account(
            &account,
            &session,
            &refresh,
            &event("user_registered", account.user_id),
        )
        .await
        .expect("create account");
    (account, session, refresh)
}

/// Open another session for `user_id`; returns it with its token.
pub async fn signed_in(env: &Env, user_id: UserId) -> (Session, RefreshRecord) {
    let session = session(user_id);
    let refresh = fresh_refresh(session.session_id);
    env.store
        .open_session(&session, &refresh)
        .await
        .expect("open session");
    (session, refresh)
}

/// The phone most cases register.
pub const PHONE: &str = "+14155550100";
