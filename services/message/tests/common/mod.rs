//! Shared setup for MessageService's store tests: an isolated database per test (a unique
//! PostgreSQL schema prefix, or SQLite files in a tempdir) with the bus and message migrations
//! applied, fixtures, and raw-SQL probes that look past the store at what it wrote (the outbox
//! above all: its payloads are decoded to check kinds and seqs).
//! Over 400 lines as one piece: every conformance file uses these fixtures and probes, and
//! splitting them by size would only make each case import from several places.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use echo_bus::Outbox;
use echo_ids::{ConversationId, DeviceId, MessageId, UserId};
use echo_message::store::{
    Actor, Conversation, Kind, Member, Message, MessageStore, NewConversation, NewMessage, Sent,
    SeqWindow,
};
use echo_proto::echo::events::v1::{ConversationEventRecorded, UserEventRecorded};
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::MessageContent;
use echo_store::Database;
pub use echo_store::testing::TestBackend as Backend;
use echo_store::testing::{Arg, TestDatabase, text};
use prost::Message as _;
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

/// The subject prefix and type of per-conversation events.
pub const CONVERSATION_EVENT: (&str, &str) = (
    "echo.message.conversation_event.",
    "echo.events.v1.ConversationEventRecorded",
);
/// The subject prefix and type of per-user events.
pub const USER_EVENT: (&str, &str) = (
    "echo.message.user_event.",
    "echo.events.v1.UserEventRecorded",
);

/// One isolated database and the store under test on it.
pub struct Env {
    pub store: Arc<MessageStore>,
    pub test_db: TestDatabase,
}

/// One outbox row as appended.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub event_id: String,
    pub subject: String,
    pub event_type: String,
    pub payload: Vec<u8>,
}

/// A value bound to [`Env::exec`]: ids and times are bound natively on PostgreSQL and in
/// the SQLite store's encoding (text, unix microseconds) on SQLite, so one SQL text serves both.
#[derive(Clone, Copy, Debug)]
pub enum Val {
    Id(Uuid),
    Int(i64),
    Bool(bool),
    Time(Option<DateTime<Utc>>),
}

impl Env {
    /// `None` (after a loud skip notice) when PostgreSQL is needed and absent.
    pub async fn new(backend: Backend) -> Option<Env> {
        let migrations = [&echo_bus::migrations(), &echo_message::migrations()];
        let test_db = TestDatabase::open(backend, "message", &migrations).await?;
        let outbox = Outbox::new("message", test_db.db.clone());
        let store = echo_message::store::for_database(&test_db.db, outbox);
        Some(Env { store, test_db })
    }

    /// Close the pools and drop this test's schema.
    pub async fn cleanup(self) {
        self.test_db.cleanup().await;
    }

    // ---- fixtures ----

    /// Apply `user`'s existence (or deletion) in a consumer transaction of its own.
    pub async fn record_user(&self, user: UserId, deleted_at: Option<DateTime<Utc>>) {
        let mut tx = self.test_db.db.begin().await.expect("begin");
        self.store
            .record_user(&mut tx, user, deleted_at)
            .await
            .expect("record user");
        tx.commit().await.expect("commit");
    }

    /// A known user.
    pub async fn user(&self) -> UserId {
        let user = UserId::new_v7();
        self.record_user(user, None).await;
        user
    }

    /// `N` known users.
    pub async fn users<const N: usize>(&self) -> [UserId; N] {
        let mut ids = [UserId::nil(); N];
        for id in &mut ids {
            *id = self.user().await;
        }
        ids
    }

    /// A user whose account was deleted.
    pub async fn deleted_user(&self) -> UserId {
        let user = self.user().await;
        self.record_user(user, Some(now())).await;
        user
    }

    /// Apply `blocker` blocking (or unblocking) `blocked` in a consumer transaction.
    pub async fn set_block(&self, blocker: UserId, blocked: UserId, blocking: bool) {
        let mut tx = self.test_db.db.begin().await.expect("begin");
        self.store
            .record_block(&mut tx, blocker, blocked, blocking)
            .await
            .expect("record block");
        tx.commit().await.expect("commit");
    }

    /// The direct conversation `actor` opens with `peer` (created now).
    pub async fn direct(&self, actor: Actor, peer: UserId) -> Conversation {
        let (conversation, _) = self
            .store
            .create_direct(actor, peer, ConversationId::new_v7(), now())
            .await
            .expect("create direct");
        conversation
    }

    /// A new `kind` conversation of `owner` with `members`, at `at`.
    pub async fn group_at(
        &self,
        kind: Kind,
        owner: Actor,
        members: &[UserId],
        at: DateTime<Utc>,
    ) -> Conversation {
        let (conversation, created) = self
            .store
            .create_conversation(owner, &new_group(kind, members), at)
            .await
            .expect("create conversation");
        assert!(created);
        conversation
    }

    /// A new GROUP of `owner` with `members`.
    pub async fn group(&self, owner: Actor, members: &[UserId]) -> Conversation {
        self.group_at(Kind::Group, owner, members, now()).await
    }

    /// Sends `new` as `actor`, which must create a message.
    pub async fn send_at(&self, actor: Actor, new: &NewMessage, at: DateTime<Utc>) -> Message {
        match self.store.send(actor, new, at).await {
            Ok(Sent::Created(message)) => message,
            other => panic!("expected a new message, got {other:?}"),
        }
    }

    /// Sends `text` into `conversation` as `actor`, now.
    pub async fn say(&self, actor: Actor, conversation: ConversationId, text: &str) -> Message {
        self.send_at(actor, &text_message(conversation, text), now())
            .await
    }

    /// `user`'s member row in `conversation`, which must exist.
    pub async fn member(&self, conversation: ConversationId, user: UserId) -> Member {
        self.store
            .member(conversation, user)
            .await
            .expect("member")
            .unwrap_or_else(|| panic!("no member row for {user} in {conversation}"))
    }

    /// The conversation `id`, which must exist.
    pub async fn conversation(&self, id: ConversationId) -> Conversation {
        self.store
            .conversation(id)
            .await
            .expect("conversation")
            .expect("conversation exists")
    }

    // ---- probes ----

    /// `SELECT count(*) …` with text `args` bound in order (compare ids as `CAST(x AS TEXT)`).
    pub async fn count(&self, sql: &str, args: &[String]) -> i64 {
        let args: Vec<Arg> = args.iter().map(text).collect();
        self.test_db.count(sql, &args).await
    }

    /// Rows of `table`.
    pub async fn rows(&self, table: &str) -> i64 {
        self.test_db.rows(table).await
    }

    /// Runs a statement behind the store's back (for states the trait cannot make yet, such
    /// as a member who left); returns the rows affected.
    pub async fn exec(&self, sql: &str, args: &[Val]) -> u64 {
        let sql = AssertSqlSafe(sql.to_owned());
        match &self.test_db.db {
            Database::Postgres(db) => {
                let query = args.iter().fold(sqlx::query(sql), |q, arg| match *arg {
                    Val::Id(id) => q.bind(id),
                    Val::Int(n) => q.bind(n),
                    Val::Bool(b) => q.bind(b),
                    Val::Time(t) => q.bind(t),
                });
                query.execute(&db.pool).await.map(|r| r.rows_affected())
            }
            Database::Sqlite(db) => {
                let query = args.iter().fold(sqlx::query(sql), |q, arg| match *arg {
                    Val::Id(id) => q.bind(id.to_string()),
                    Val::Int(n) => q.bind(n),
                    Val::Bool(b) => q.bind(b),
                    Val::Time(t) => q.bind(t.map(|t| t.timestamp_micros())),
                });
                query.execute(&db.writer).await.map(|r| r.rows_affected())
            }
        }
        .expect("exec")
    }

    /// Every outbox row, in append order.
    pub async fn outbox(&self) -> Vec<OutboxRow> {
        const SQL: &str = "SELECT CAST(event_id AS TEXT), subject, event_type, payload \
                           FROM outbox ORDER BY id";
        let rows: Vec<(String, String, String, Vec<u8>)> = match &self.test_db.db {
            Database::Postgres(db) => sqlx::query_as(SQL).fetch_all(&db.pool).await,
            Database::Sqlite(db) => sqlx::query_as(SQL).fetch_all(&db.writer).await,
        }
        .expect("outbox");
        rows.into_iter()
            .map(|(event_id, subject, event_type, payload)| OutboxRow {
                event_id,
                subject,
                event_type,
                payload,
            })
            .collect()
    }

    /// The per-conversation events in the outbox, in append order, each checked against its
    /// row (subject, type, event id).
    pub async fn conversation_events(&self) -> Vec<pb::ConversationEvent> {
        self.outbox()
            .await
            .iter()
            .filter(|row| row.event_type == CONVERSATION_EVENT.1)
            .map(conversation_event)
            .collect()
    }

    /// The per-user events in the outbox, in append order, each checked against its row.
    pub async fn user_events(&self) -> Vec<pb::UserEvent> {
        self.outbox()
            .await
            .iter()
            .filter(|row| row.event_type == USER_EVENT.1)
            .map(user_event)
            .collect()
    }

    /// `conversation`'s events, in append order.
    pub async fn events_of(&self, conversation: ConversationId) -> Vec<pb::ConversationEvent> {
        let id = conversation.to_string();
        let mut events = self.conversation_events().await;
        events.retain(|event| event.conversation_id == id);
        events
    }

    /// Every sequenced change wrote exactly one outbox row: per conversation, the outbox holds
    /// seqs 1..=last_seq in append order; per user, 1..=their user_sequences.last_seq; and
    /// the outbox holds nothing else.
    pub async fn assert_one_event_per_seq(&self) {
        let rows = self.outbox().await;
        let mut conversations: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut users: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for row in &rows {
            if row.event_type == CONVERSATION_EVENT.1 {
                let event = conversation_event(row);
                conversations
                    .entry(event.conversation_id)
                    .or_default()
                    .push(event.seq);
            } else if row.event_type == USER_EVENT.1 {
                let event = user_event(row);
                users.entry(event.user_id).or_default().push(event.seq);
            } else {
                panic!("unexpected outbox row {row:?}");
            }
        }
        let expect = |sql: &'static str| async move {
            let pairs = self.test_db.texts(sql, &[]).await;
            pairs
                .iter()
                .map(|pair| {
                    let (id, last) = pair.split_once(' ').expect("id and seq");
                    (id.to_owned(), (1..=last.parse::<i64>().unwrap()).collect())
                })
                .collect::<BTreeMap<String, Vec<i64>>>()
        };
        let last_seqs = expect(
            "SELECT CAST(conversation_id AS TEXT) || ' ' || CAST(last_seq AS TEXT) \
             FROM conversations",
        )
        .await;
        assert_eq!(conversations, last_seqs, "conversation seqs vs outbox rows");
        let user_seqs = expect(
            "SELECT CAST(user_id AS TEXT) || ' ' || CAST(last_seq AS TEXT) FROM user_sequences",
        )
        .await;
        assert_eq!(users, user_seqs, "user seqs vs outbox rows");
    }
}

/// Decodes a per-conversation event row, checking its subject and event id.
pub fn conversation_event(row: &OutboxRow) -> pb::ConversationEvent {
    assert_eq!(row.event_type, CONVERSATION_EVENT.1);
    let recorded = ConversationEventRecorded::decode(row.payload.as_slice()).expect("decode");
    assert_eq!(recorded.event_id, row.event_id);
    let event = recorded.event.expect("event");
    assert_eq!(
        row.subject,
        format!("{}{}", CONVERSATION_EVENT.0, event.conversation_id)
    );
    event
}

/// Decodes a per-user event row, checking its subject and event id.
pub fn user_event(row: &OutboxRow) -> pb::UserEvent {
    assert_eq!(row.event_type, USER_EVENT.1);
    let recorded = UserEventRecorded::decode(row.payload.as_slice()).expect("decode");
    assert_eq!(recorded.event_id, row.event_id);
    let event = recorded.event.expect("event");
    assert_eq!(row.subject, format!("{}{}", USER_EVENT.0, event.user_id));
    event
}

/// Now, at the precision both backends store (microseconds), so round trips compare equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// `user` on a device of their own (a new one on every call).
pub fn device(user: UserId) -> Actor {
    Actor {
        user_id: user,
        device_id: DeviceId::new_v7(),
    }
}

/// A GROUP or CHANNEL to create, with a fresh idempotency key.
pub fn new_group(kind: Kind, members: &[UserId]) -> NewConversation {
    NewConversation {
        id: ConversationId::new_v7(),
        kind,
        title: "Team".to_owned(),
        description: String::new(),
        avatar: None,
        only_admins_edit_info: true,
        only_admins_add_members: true,
        members: members.to_vec(),
        client_request_id: Uuid::now_v7().to_string(),
    }
}

/// The request hash the service would compute for `content` (the store only compares it).
pub fn hash(content: &MessageContent) -> [u8; 32] {
    Sha256::digest(content.encode_to_vec()).into()
}

/// A message with `content`, a fresh id and a fresh idempotency key.
pub fn new_message(conversation: ConversationId, content: MessageContent) -> NewMessage {
    NewMessage {
        id: MessageId::new_v7(),
        conversation_id: conversation,
        client_message_id: Uuid::now_v7().to_string(),
        request_hash: hash(&content),
        content,
        mentioned: Vec::new(),
        reply_to_message_id: None,
        thread_root_message_id: None,
    }
}

/// A text message.
pub fn text_message(conversation: ConversationId, text: &str) -> NewMessage {
    let content = MessageContent {
        text: text.to_owned(),
        ..MessageContent::default()
    };
    new_message(conversation, content)
}

/// The same request again (a retry): same key and hash, a fresh id as a new call would pick.
pub fn retry(new: &NewMessage) -> NewMessage {
    NewMessage {
        id: MessageId::new_v7(),
        ..new.clone()
    }
}

/// The kind of a per-conversation event.
pub fn kind(event: &pb::ConversationEvent) -> &pb::conversation_event::Kind {
    event.kind.as_ref().expect("event kind")
}

/// The window of everything.
pub fn all() -> SeqWindow {
    SeqWindow {
        after: 0,
        before: i64::MAX,
        newest_first: false,
        limit: 1000,
        top_level_only: false,
    }
}

/// Sends `n` texts into `conversation` as `actor`, one second apart from `from`.
pub async fn say_many(
    env: &Env,
    actor: Actor,
    conversation: ConversationId,
    n: usize,
    from: DateTime<Utc>,
) -> Vec<Message> {
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        let at = from + chrono::Duration::seconds(i64::try_from(i).unwrap());
        let new = text_message(conversation, &format!("message {i}"));
        sent.push(env.send_at(actor, &new, at).await);
    }
    sent
}
