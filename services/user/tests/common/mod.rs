//! Shared setup for UserService's store tests: an isolated database per test (a unique
//! PostgreSQL schema prefix, or SQLite files in a tempdir) with the bus and user migrations
//! applied, fixtures, and raw-SQL probes that look past the store at what was written.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use echo_bus::{Event, Outbox};
pub use echo_ids::{ContactRequestId, UserId};
use echo_proto::echo::events::v1 as events;
use echo_store::Database;
pub use echo_store::testing::TestBackend as Backend;
use echo_store::testing::{Arg, TestDatabase, text};
use echo_user::store::{Profile, ProfileChange, Registration, UserStore};
use prost::Message;
use uuid::Uuid;

/// One outbox row, read back as the store wrote it.
#[derive(Clone, Debug)]
pub struct Appended {
    pub id: Uuid,
    pub subject: String,
    pub event_type: String,
    pub payload: Vec<u8>,
}

/// One isolated database and the store under test on it.
pub struct Env {
    pub store: Arc<UserStore>,
    pub test_db: TestDatabase,
}

impl Env {
    /// `None` (after a loud skip notice) when PostgreSQL is needed and absent.
    pub async fn new(backend: Backend) -> Option<Env> {
        let migrations = [&echo_bus::migrations(), &echo_user::migrations()];
        let test_db = TestDatabase::open(backend, "user", &migrations).await?;
        let outbox = Outbox::new("user", test_db.db.clone());
        let store = Arc::new(UserStore::new(test_db.db.clone(), outbox));
        Some(Env { store, test_db })
    }

    /// Close the pools and drop this test's schema.
    pub async fn cleanup(self) {
        self.test_db.cleanup().await;
    }

    /// `SELECT count(*) …` with text `args` bound in order (compare ids as `CAST(x AS TEXT)`).
    pub async fn count(&self, sql: &str, args: &[String]) -> i64 {
        let args: Vec<Arg> = args.iter().map(text).collect();
        self.test_db.count(sql, &args).await
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

    /// The subjects in the outbox, in append order.
    pub async fn outbox_subjects(&self) -> Vec<String> {
        let sql = "SELECT subject FROM outbox ORDER BY id";
        self.test_db.texts(sql, &[]).await
    }

    /// Every outbox row, in append order.
    pub async fn appended(&self) -> Vec<Appended> {
        let sql = "SELECT CAST(event_id AS TEXT), subject, event_type, payload FROM outbox \
                   ORDER BY id";
        let rows: Vec<(String, String, String, Vec<u8>)> = match &self.test_db.db {
            Database::Postgres(db) => sqlx::query_as(sql).fetch_all(&db.pool).await,
            Database::Sqlite(db) => sqlx::query_as(sql).fetch_all(&db.writer).await,
        }
        .expect("read the outbox");
        rows.into_iter()
            .map(|(id, subject, event_type, payload)| Appended {
                id: Uuid::parse_str(&id).unwrap(),
                subject,
                event_type,
                payload,
            })
            .collect()
    }

    /// The ids of the outbox rows whose subject starts with `prefix`, in append order.
    pub async fn outbox_ids_of(&self, prefix: &str) -> Vec<Uuid> {
        let appended = self.appended().await;
        let of = appended
            .iter()
            .filter(|row| row.subject.starts_with(prefix));
        of.map(|row| row.id).collect()
    }

    /// The `PrivacyChanged` events appended, in order, each checked against its row (subject
    /// naming the user, type, event id, a time).
    pub async fn privacy_changes(&self) -> Vec<events::PrivacyChanged> {
        let mut changes = Vec::new();
        for row in self.appended().await {
            if !row.subject.starts_with("echo.user.privacy_changed.") {
                continue;
            }
            assert_eq!(row.event_type, "echo.events.v1.PrivacyChanged");
            let event = events::PrivacyChanged::decode(row.payload.as_slice()).unwrap();
            assert_eq!(
                row.subject,
                format!("echo.user.privacy_changed.{}", event.user_id)
            );
            assert_eq!(event.event_id, row.id.to_string());
            assert!(event.occurred_at.is_some());
            changes.push(event);
        }
        changes
    }

    /// The `ContactAdded` events appended, as `(owner, contact)` in append order, each checked
    /// against its row.
    pub async fn contacts_added(&self) -> Vec<(UserId, UserId)> {
        self.contact_events("contact_added", "echo.events.v1.ContactAdded", |payload| {
            let event = events::ContactAdded::decode(payload).unwrap();
            (
                event.event_id,
                event.occurred_at,
                event.owner_user_id,
                event.contact_user_id,
            )
        })
        .await
    }

    /// The `ContactRemoved` events appended, as `(owner, contact)` in append order, each
    /// checked against its row.
    pub async fn contacts_removed(&self) -> Vec<(UserId, UserId)> {
        self.contact_events(
            "contact_removed",
            "echo.events.v1.ContactRemoved",
            |payload| {
                let event = events::ContactRemoved::decode(payload).unwrap();
                (
                    event.event_id,
                    event.occurred_at,
                    event.owner_user_id,
                    event.contact_user_id,
                )
            },
        )
        .await
    }

    async fn contact_events(
        &self,
        kind: &str,
        event_type: &str,
        decode: impl Fn(&[u8]) -> (String, Option<prost_types::Timestamp>, String, String),
    ) -> Vec<(UserId, UserId)> {
        let prefix = format!("echo.user.{kind}.");
        let mut pairs = Vec::new();
        for row in self.appended().await {
            if !row.subject.starts_with(&prefix) {
                continue;
            }
            assert_eq!(row.event_type, event_type);
            let (event_id, occurred_at, owner, contact) = decode(&row.payload);
            assert_eq!(row.subject, format!("{prefix}{owner}"));
            assert_eq!(event_id, row.id.to_string());
            assert!(occurred_at.is_some());
            pairs.push((owner.parse().unwrap(), contact.parse().unwrap()));
        }
        pairs
    }

    /// `user`'s search terms, sorted.
    pub async fn terms(&self, user: UserId) -> Vec<String> {
        self.test_db
            .texts(
                "SELECT term FROM profile_search_terms WHERE CAST(user_id AS TEXT) = $1 \
                 ORDER BY term",
                &[text(user)],
            )
            .await
    }

    /// Rows of `table` whose columns `a` or `b` hold `user`.
    pub async fn rows_involving(&self, table: &str, a: &str, b: &str, user: UserId) -> i64 {
        let sql = format!(
            "SELECT count(*) FROM {table} WHERE CAST({a} AS TEXT) = $1 OR CAST({b} AS TEXT) = $1"
        );
        self.test_db.count(&sql, &[text(user)]).await
    }

    /// Open (pending or declined) requests from `sender` to `recipient`.
    pub async fn open_requests(&self, sender: UserId, recipient: UserId) -> i64 {
        self.test_db
            .count(
                "SELECT count(*) FROM contact_requests WHERE state IN (1, 3) \
                 AND CAST(sender_id AS TEXT) = $1 AND CAST(recipient_id AS TEXT) = $2",
                &[text(sender), text(recipient)],
            )
            .await
    }

    /// Apply `registration` in a consumer transaction of its own, as the consumer does.
    pub async fn record(&self, registration: &Registration) {
        let mut tx = self.test_db.db.begin().await.expect("begin");
        self.store
            .record_registration(&mut tx, registration)
            .await
            .expect("record registration");
        tx.commit().await.expect("commit");
    }

    /// Erase `user` in a consumer transaction of its own.
    pub async fn erase(&self, user: UserId, at: DateTime<Utc>) {
        let mut tx = self.test_db.db.begin().await.expect("begin");
        self.store
            .erase_user(&mut tx, user, at)
            .await
            .expect("erase user");
        tx.commit().await.expect("commit");
    }

    /// A registered user named `display_name`; returns their id.
    pub async fn register(&self, display_name: &str) -> UserId {
        let registration = registration(display_name);
        self.record(&registration).await;
        registration.user_id
    }

    /// `N` registered users named "User 0", "User 1", ….
    pub async fn users<const N: usize>(&self) -> [UserId; N] {
        let mut ids = [UserId::nil(); N];
        for (n, id) in ids.iter_mut().enumerate() {
            *id = self.register(&format!("User {n}")).await;
        }
        ids
    }

    /// A registered user with a username (discoverable by search).
    pub async fn user(&self, display_name: &str, username: &str) -> UserId {
        let id = self.register(display_name).await;
        self.set_username(id, username).await;
        id
    }

    /// Set `user`'s username.
    pub async fn set_username(&self, user: UserId, username: &str) -> Profile {
        let change = ProfileChange {
            username: Some(Some(username.to_owned())),
            ..ProfileChange::default()
        };
        self.store
            .update_profile(user, &change, now(), &profile_event)
            .await
            .expect("set username")
    }

    /// Make `a` and `b` each other's contacts.
    pub async fn befriend(&self, a: UserId, b: UserId) {
        for (owner, contact) in [(a, b), (b, a)] {
            self.store
                .add_contact(owner, contact, "", now(), 1000)
                .await
                .expect("add contact");
        }
    }

    /// `blocker` blocks `blocked`.
    pub async fn block(&self, blocker: UserId, blocked: UserId) {
        assert!(
            self.store
                .block(blocker, blocked, now(), &block_event("blocked", blocker))
                .await
                .expect("block")
        );
    }
}

/// Now, at the precision both backends store (microseconds), so round trips compare equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A phone number no other call of this process returns.
pub fn phone() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "+1415555{:04}",
        NEXT.fetch_add(1, Ordering::Relaxed) % 10_000
    )
}

/// A registration event for a new user.
pub fn registration(display_name: &str) -> Registration {
    Registration {
        user_id: UserId::new_v7(),
        display_name: display_name.to_owned(),
        phone_number: phone(),
        registered_at: now(),
    }
}

/// The event a profile change publishes (its subject names the user and the display name, so
/// a test can tell which profile it was built from).
pub fn profile_event(profile: &Profile) -> Event {
    Event::new(
        format!("echo.user.profile_updated.{}", profile.user_id),
        "echo.events.v1.ProfileUpdated",
        Bytes::from(profile.display_name.clone()),
    )
}

pub fn block_event(kind: &str, user: UserId) -> Event {
    Event::new(
        format!("echo.user.{kind}.{user}"),
        "echo.events.v1.UserBlocked",
        Bytes::from_static(b"payload"),
    )
}

/// A change setting only the display name.
pub fn rename(display_name: &str) -> ProfileChange {
    ProfileChange {
        display_name: Some(display_name.to_owned()),
        ..ProfileChange::default()
    }
}
