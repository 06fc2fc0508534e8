//! Shared setup for NotificationService's store tests: an isolated database per test (a unique
//! PostgreSQL schema, or SQLite files in a tempdir) with notification's migrations applied,
//! fixtures, and probes that look past the store at what it wrote.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use echo_authn::Caller;
use echo_cache::MemoryCache;
use echo_ids::{ConversationId, DeviceId, MessageId, SessionId, UserId};
use echo_notification::inbox::{EntryKind, InboxEntry};
use echo_notification::tokens::{Registration, Tokens};
use echo_notification::{NotificationStore, Platform, badge, inbox, jobs};
pub use echo_store::testing::TestBackend as Backend;
use echo_store::testing::TestDatabase;
use echo_store::with_db;
use uuid::Uuid;

/// One isolated database and the store under test on it.
pub struct Env {
    pub store: NotificationStore,
    pub test_db: TestDatabase,
}

impl Env {
    /// `None` (after a loud skip notice) when PostgreSQL is needed and absent.
    pub async fn new(backend: Backend) -> Option<Env> {
        let migrations = [&echo_notification::migrations()];
        let test_db = TestDatabase::open(backend, "notification", &migrations).await?;
        let store = NotificationStore::new(test_db.db.clone());
        Some(Env { store, test_db })
    }

    /// Close the pools and drop this test's schema.
    pub async fn cleanup(self) {
        self.test_db.cleanup().await;
    }

    /// Rows of `table` (all of them).
    pub async fn rows(&self, table: &str) -> i64 {
        self.test_db.rows(table).await
    }

    /// Token handlers on this store with their own in-memory rate limits, accepting every
    /// platform (`production` as given).
    pub fn tokens(&self, production: bool) -> Tokens {
        self.tokens_for(Platform::ALL.into_iter().collect(), production)
    }

    /// Token handlers accepting only `configured`.
    pub fn tokens_for(
        &self,
        configured: std::collections::HashSet<Platform>,
        production: bool,
    ) -> Tokens {
        let cache = Arc::new(MemoryCache::new(&echo_testenv::unique_name("t_notify")));
        Tokens::new(
            self.store.clone(),
            echo_cache::Limits::new(cache),
            configured,
            production,
        )
    }

    /// Register `token` for `device` of `user` on `platform` (no app id), at `now()`.
    pub async fn register(
        &self,
        user: impl Into<UserId>,
        device: impl Into<DeviceId>,
        platform: Platform,
        token: &str,
    ) -> echo_notification::tokens::PushToken {
        self.store
            .register_token(&registration(user, device, platform, token), now(), 50)
            .await
            .expect("register")
    }

    /// A pending push job for `token` of `user` (as the pipeline will write them).
    pub async fn add_job(&self, token: Uuid, user: impl Into<UserId>) -> Uuid {
        const SQL: &str = "INSERT INTO push_jobs (push_job_id, message_id, push_token_id, \
             user_id, kind, due_at_ms, state, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4, 1, 0, $5, 0, 0)";
        let id = Uuid::now_v7();
        with_db!(self.store.database(), write, |c| {
            sqlx::query(SQL)
                .bind(id)
                .bind(Uuid::now_v7())
                .bind(token)
                .bind(Uuid::from(user.into()))
                .bind(jobs::PENDING)
                .execute(c)
                .await
                .expect("add job");
        });
        id
    }

    /// Jobs of `token` still queued.
    pub async fn jobs_of(&self, token: Uuid) -> i64 {
        self.count(
            "SELECT count(*) FROM push_jobs WHERE push_token_id = $1",
            token,
        )
        .await
    }

    /// `SELECT count(*) …` with one id (of any kind) bound.
    pub async fn count(&self, sql: &'static str, id: impl Into<Uuid>) -> i64 {
        let id = id.into();
        with_db!(self.store.database(), write, |c| {
            sqlx::query_scalar(sql)
                .bind(id)
                .fetch_one(c)
                .await
                .expect("count")
        })
    }

    /// Write `entry` in a transaction of its own, as the pipeline does; true if it was new.
    pub async fn write_entry(&self, entry: &InboxEntry) -> bool {
        let mut tx = self.store.database().begin().await.expect("begin");
        let new = inbox::store::write_entries(&mut tx, std::slice::from_ref(entry))
            .await
            .expect("write entry");
        tx.commit().await.expect("commit");
        assert!(new.len() <= 1);
        new == [entry.user_id]
    }

    /// `n` unread entries for `user`, oldest first.
    pub async fn entries(&self, user: impl Into<UserId>, n: usize) -> Vec<InboxEntry> {
        let user = user.into();
        let mut written = Vec::new();
        for i in 0..n {
            let entry = entry(user, i as i64 + 1);
            assert!(self.write_entry(&entry).await);
            written.push(entry);
        }
        written
    }

    /// Set `user`'s counts in `conversation`, and its mute, as the pipeline does.
    pub async fn counts(
        &self,
        user: impl Into<UserId>,
        conversation: impl Into<ConversationId>,
        unread: i32,
        mentions: i32,
        muted_until: Option<DateTime<Utc>>,
    ) {
        let (user, conversation) = (user.into(), conversation.into());
        let mut tx = self.store.database().begin().await.expect("begin");
        badge::set_counts(&mut tx, user, conversation, unread, mentions)
            .await
            .expect("set counts");
        badge::set_muted(&mut tx, user, conversation, muted_until)
            .await
            .expect("set muted");
        tx.commit().await.expect("commit");
    }
}

/// Now, to the millisecond both backends store, so round trips compare equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// `now()` moved by `ms` milliseconds.
pub fn at(ms: i64) -> DateTime<Utc> {
    now() + TimeDelta::milliseconds(ms)
}

/// A caller on a new device and session.
pub fn caller(user: impl Into<UserId>) -> Caller {
    Caller {
        user_id: user.into(),
        session_id: SessionId::new_v7(),
        device_id: DeviceId::new_v7(),
    }
}

/// A registration of `token` (already in stored form) without an app id.
pub fn registration(
    user: impl Into<UserId>,
    device: impl Into<DeviceId>,
    platform: Platform,
    token: &str,
) -> Registration {
    Registration {
        user_id: user.into(),
        device_id: device.into(),
        session_id: SessionId::new_v7(),
        platform,
        app_id: String::new(),
        token: token.to_owned(),
        sandbox: false,
    }
}

/// A distinct FCM token.
pub fn fcm_token() -> String {
    format!("fcm:{}", Uuid::now_v7().simple())
}

/// An unread MESSAGE entry for `user` at `seq`, in a new conversation.
pub fn entry(user: impl Into<UserId>, seq: i64) -> InboxEntry {
    InboxEntry {
        id: Uuid::now_v7(),
        user_id: user.into(),
        kind: EntryKind::Message,
        conversation_id: ConversationId::new_v7(),
        message_id: MessageId::new_v7(),
        seq,
        sender_user_id: UserId::new_v7(),
        sender_display_name: "Ada".into(),
        conversation_title: String::new(),
        preview: format!("message {seq}"),
        created_at: now(),
        read: false,
    }
}
