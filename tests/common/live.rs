//! Helpers for the live delivery tests (Subscribe, SetTyping): opening streams, reading them
//! with deadlines, collecting them in the background, and reading the live gauges.
//!
//! One piece: the two ways a test reads a Subscribe stream, `LiveStream` with deadlines and
//! `Collector` in the background, keep the same record (every item, the last non-empty cursor) and
//! report through the same `describe`; the calls made around the streams are apart in
//! `live/calls.rs`. Split, the two readers could come to disagree on what a resume cursor is.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{SignedIn, TestMesh};
use pb::subscribe_response::Item;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tonic::Status;

pub mod calls;

#[allow(unused_imports)] // the binaries that do not use live helpers need none of them
pub use calls::*;

/// How long a test waits for something that must come (generous: CI machines are slow).
pub const WAIT: Duration = Duration::from_secs(10);

/// The gauges are process-wide (one Prometheus recorder per test binary): a test that asserts
/// on them takes this exclusively, every other test that opens streams takes it shared.
static GAUGES: RwLock<()> = RwLock::const_new(());

/// Taken by tests that open streams but do not read the gauges.
pub async fn gauges_shared() -> RwLockReadGuard<'static, ()> {
    GAUGES.read().await
}

/// Taken by a test that reads the gauges, so no other test's streams count in them.
pub async fn gauges_exclusive() -> RwLockWriteGuard<'static, ()> {
    GAUGES.write().await
}

/// What reading a stream once gave.
#[derive(Debug)]
pub enum Next {
    /// An item (boxed: items are large, the other outcomes small).
    Item(Box<pb::SubscribeResponse>),
    /// The stream ended with this status.
    Ended(Status),
    /// The stream ended without a status (the server must never do that).
    Closed,
    /// Nothing within the deadline.
    Timeout,
}

/// An open Subscribe stream that remembers what it received.
pub struct LiveStream {
    inner: tonic::Streaming<pb::SubscribeResponse>,
    /// The last non-empty cursor received ("" before any).
    pub cursor: String,
    /// Every item received, in order.
    pub seen: Vec<pb::SubscribeResponse>,
}

/// Open `user`'s stream from `cursor` ("" = from now).
pub async fn try_subscribe(
    mesh: &TestMesh,
    user: &SignedIn,
    cursor: &str,
) -> Result<LiveStream, Status> {
    let request = pb::SubscribeRequest {
        cursor: cursor.into(),
    };
    LiveStream::open(mesh.message_as(user).subscribe(request).await)
}

/// Open `user`'s stream from `cursor`, which must succeed.
pub async fn subscribe(mesh: &TestMesh, user: &SignedIn, cursor: &str) -> LiveStream {
    try_subscribe(mesh, user, cursor)
        .await
        .unwrap_or_else(|status| panic!("subscribe: {status:?}"))
}

/// Open `user`'s stream with an empty cursor and read up to its Ready (which must come first).
pub async fn subscribe_ready(mesh: &TestMesh, user: &SignedIn) -> LiveStream {
    let mut stream = subscribe(mesh, user, "").await;
    let first = stream.item(WAIT).await;
    assert!(
        matches!(first.item, Some(Item::Ready(_))),
        "an empty cursor starts with Ready: {first:?}"
    );
    assert!(!first.cursor.is_empty(), "Ready carries a cursor");
    stream
}

/// A cursor of `subscriber` that covers everything committed so far: a stream opened now
/// reads until a marker message `sender` sends to `conversation` (an empty cursor starts at
/// the commit-safe head, which may trail the latest commits; the marker's cursor does not).
pub async fn caught_up(
    mesh: &TestMesh,
    sender: &SignedIn,
    subscriber: &SignedIn,
    conversation: &pb::Conversation,
) -> String {
    let mut stream = subscribe_ready(mesh, subscriber).await;
    let marker = super::messages::send(mesh, sender, conversation, "marker").await;
    stream
        .event_at(&conversation.conversation_id, marker.seq, WAIT)
        .await;
    stream.cursor
}

/// The refusal of a Subscribe that must fail, whether the server refuses the call itself or
/// ends the stream before its first item.
pub async fn subscribe_refused(mesh: &TestMesh, user: &SignedIn, cursor: &str) -> Status {
    match try_subscribe(mesh, user, cursor).await {
        Err(status) => status,
        Ok(mut stream) => match stream.next(WAIT).await {
            Next::Ended(status) => status,
            other => panic!("expected a refusal, got {other:?}"),
        },
    }
}

impl LiveStream {
    /// Wrap a Subscribe answer (for streams opened on a custom channel).
    pub fn open(
        answer: Result<tonic::Response<tonic::Streaming<pb::SubscribeResponse>>, Status>,
    ) -> Result<Self, Status> {
        Ok(Self {
            inner: answer?.into_inner(),
            cursor: String::new(),
            seen: Vec::new(),
        })
    }

    /// Read one thing, waiting at most `within`.
    pub async fn next(&mut self, within: Duration) -> Next {
        match tokio::time::timeout(within, self.inner.message()).await {
            Err(_) => Next::Timeout,
            Ok(Err(status)) => Next::Ended(status),
            Ok(Ok(None)) => Next::Closed,
            Ok(Ok(Some(response))) => {
                if !response.cursor.is_empty() {
                    self.cursor.clone_from(&response.cursor);
                }
                self.seen.push(response.clone());
                Next::Item(Box::new(response))
            }
        }
    }

    /// The next item, which must come within `within`.
    pub async fn item(&mut self, within: Duration) -> pb::SubscribeResponse {
        match self.next(within).await {
            Next::Item(response) => *response,
            other => panic!("expected an item within {within:?}, got {other:?}"),
        }
    }

    /// The first user event whose kind `pick` accepts, among those already seen or, failing
    /// that, those still to come within `within`.
    pub async fn user_event_where<T>(
        &mut self,
        within: Duration,
        pick: impl Fn(&pb::user_event::Kind) -> Option<T>,
    ) -> T {
        let picked =
            |r: &pb::SubscribeResponse| user_event(r).and_then(|e| e.kind.as_ref()).and_then(&pick);
        if let Some(found) = self.seen.iter().find_map(picked) {
            return found;
        }
        let response = self.until(within, |r| picked(r).is_some()).await;
        picked(&response).expect("the awaited user event")
    }

    /// The next item `wanted` accepts, skipping (but remembering) others.
    pub async fn until(
        &mut self,
        within: Duration,
        wanted: impl Fn(&pb::SubscribeResponse) -> bool,
    ) -> pb::SubscribeResponse {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Item(response) if wanted(&response) => return *response,
                Next::Item(_) => {}
                other => panic!(
                    "the awaited item did not come within {within:?} ({other:?}); seen: {}",
                    describe_all(&self.seen)
                ),
            }
        }
    }

    /// The next conversation event, skipping other items.
    pub async fn conversation_event(&mut self, within: Duration) -> pb::ConversationEvent {
        let response = self
            .until(within, |r| conversation_event(r).is_some())
            .await;
        conversation_event(&response).cloned().expect("matched")
    }

    /// The conversation event of `conversation` at `seq`, skipping everything before it.
    pub async fn event_at(
        &mut self,
        conversation: &str,
        seq: i64,
        within: Duration,
    ) -> pb::SubscribeResponse {
        self.until(within, |r| {
            conversation_event(r).is_some_and(|e| e.conversation_id == conversation && e.seq == seq)
        })
        .await
    }

    /// Read on until `conversation`'s event at `seq` has arrived on this stream (maybe it has
    /// already): for checks that look at replay and live together, since events committed
    /// just before a resume may come either side of Ready.
    pub async fn through(&mut self, conversation: &str, seq: i64, within: Duration) {
        if !seqs_of(&self.seen, conversation).contains(&seq) {
            self.collect_until(within, |items| seqs_of(items, conversation).contains(&seq))
                .await;
        }
    }

    /// Every item up to Ready, which must come within `within`: (the items before, Ready).
    pub async fn until_ready(
        &mut self,
        within: Duration,
    ) -> (Vec<pb::SubscribeResponse>, pb::Ready) {
        let start = self.seen.len();
        let ready = self
            .until(within, |r| matches!(r.item, Some(Item::Ready(_))))
            .await;
        let before = self.seen[start..self.seen.len() - 1].to_vec();
        let Some(Item::Ready(ready)) = ready.item else {
            unreachable!("matched Ready")
        };
        (before, ready)
    }

    /// The items from now on until `done` holds for them (checked after each item); panics
    /// if that takes longer than `within`.
    pub async fn collect_until(
        &mut self,
        within: Duration,
        done: impl Fn(&[pb::SubscribeResponse]) -> bool,
    ) -> Vec<pb::SubscribeResponse> {
        let start = self.seen.len();
        let deadline = tokio::time::Instant::now() + within;
        while !done(&self.seen[start..]) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Item(_) => {}
                other => panic!(
                    "not collected within {within:?} ({other:?}); got: {}",
                    describe_all(&self.seen[start..])
                ),
            }
        }
        self.seen[start..].to_vec()
    }

    /// The status the stream ends with, skipping items; it must end within `within`.
    pub async fn ended(&mut self, within: Duration) -> Status {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Item(_) => {}
                Next::Ended(status) => return status,
                other => panic!("expected the stream to end with a status, got {other:?}"),
            }
        }
    }

    /// Everything that arrives during `period` (the stream must stay open).
    pub async fn during(&mut self, period: Duration) -> Vec<pb::SubscribeResponse> {
        let start = self.seen.len();
        let deadline = tokio::time::Instant::now() + period;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Item(_) => {}
                Next::Timeout => return self.seen[start..].to_vec(),
                other => panic!("the stream ended: {other:?}"),
            }
        }
    }
}

/// What a background collector has read so far.
#[derive(Debug, Default)]
pub struct Collected {
    /// Every item, in order.
    pub items: Vec<pb::SubscribeResponse>,
    /// The status the stream ended with, once it has.
    pub ended: Option<Status>,
    /// True if the stream ended without a status.
    pub closed: bool,
}

impl Collected {
    /// The last non-empty cursor.
    pub fn cursor(&self) -> String {
        last_cursor(&self.items)
    }
}

/// A stream read by a background task as fast as items come.
pub struct Collector {
    shared: Arc<Mutex<Collected>>,
    task: tokio::task::JoinHandle<()>,
}

/// Read `stream` in the background until it ends or the collector is dropped.
pub fn collect(mut stream: LiveStream) -> Collector {
    let shared = Arc::new(Mutex::new(Collected {
        items: stream.seen.clone(),
        ..Collected::default()
    }));
    let sink = shared.clone();
    let task = tokio::spawn(async move {
        loop {
            let next = stream.inner.message().await;
            let mut collected = sink.lock().expect("collector lock");
            match next {
                Ok(Some(response)) => collected.items.push(response),
                Ok(None) => {
                    collected.closed = true;
                    return;
                }
                Err(status) => {
                    collected.ended = Some(status);
                    return;
                }
            }
        }
    });
    Collector { shared, task }
}

impl Collector {
    /// A look at what has been collected.
    pub fn read<T>(&self, look: impl FnOnce(&Collected) -> T) -> T {
        look(&self.shared.lock().expect("collector lock"))
    }

    /// Wait until `done` holds for what was collected; panics after `within`.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&Collected) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.read(&done) {
            if tokio::time::Instant::now() > deadline {
                self.read(|c| {
                    panic!(
                        "not collected within {within:?}; ended {:?}; items: {}",
                        c.ended,
                        describe_all(&c.items)
                    )
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop reading (dropping the stream) and hand back what was collected.
    pub async fn stop(self) -> Collected {
        self.task.abort();
        let _ = self.task.await;
        std::mem::take(&mut *self.shared.lock().expect("collector lock"))
    }
}

/// Wait until `check` gives `Some`, polling every 20 ms; panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The conversation event inside `response`, if it is one.
pub fn conversation_event(response: &pb::SubscribeResponse) -> Option<&pb::ConversationEvent> {
    match &response.item {
        Some(Item::ConversationEvent(event)) => Some(event),
        _ => None,
    }
}

/// The user event inside `response`, if it is one.
pub fn user_event(response: &pb::SubscribeResponse) -> Option<&pb::UserEvent> {
    match &response.item {
        Some(Item::UserEvent(event)) => Some(event),
        _ => None,
    }
}

/// The typing update inside `response`, if it is one.
pub fn typing(response: &pb::SubscribeResponse) -> Option<&pb::TypingUpdate> {
    match &response.item {
        Some(Item::TypingUpdate(update)) => Some(update),
        _ => None,
    }
}

/// Whether `response` is a durable item (one that carries a cursor and is replayed).
pub fn is_durable(response: &pb::SubscribeResponse) -> bool {
    matches!(
        response.item,
        Some(Item::ConversationEvent(_) | Item::UserEvent(_))
    )
}

/// The message a MessageCreated or MessageEdited event carries.
pub fn message_of(event: &pb::ConversationEvent) -> Option<&pb::Message> {
    use pb::conversation_event::Kind;
    match &event.kind {
        Some(Kind::MessageCreated(created)) => created.message.as_ref(),
        Some(Kind::MessageEdited(edited)) => edited.message.as_ref(),
        _ => None,
    }
}

/// The seqs of `conversation`'s events among `items`, in arrival order.
pub fn seqs_of(items: &[pb::SubscribeResponse], conversation: &str) -> Vec<i64> {
    items
        .iter()
        .filter_map(conversation_event)
        .filter(|e| e.conversation_id == conversation)
        .map(|e| e.seq)
        .collect()
}

/// The last non-empty cursor among `items` ("" if none).
pub fn last_cursor(items: &[pb::SubscribeResponse]) -> String {
    items
        .iter()
        .rev()
        .find(|r| !r.cursor.is_empty())
        .map(|r| r.cursor.clone())
        .unwrap_or_default()
}

/// A short description of an item, for assertion messages.
pub fn describe(response: &pb::SubscribeResponse) -> String {
    match &response.item {
        Some(Item::ConversationEvent(e)) => {
            let kind = format!("{:?}", e.kind);
            let kind = kind.split('(').nth(1).unwrap_or("?");
            format!("conv {}#{} {kind}", short(&e.conversation_id), e.seq)
        }
        Some(Item::UserEvent(e)) => {
            let kind = format!("{:?}", e.kind);
            let kind = kind.split('(').nth(1).unwrap_or("?");
            format!("user {}#{} {kind}", short(&e.user_id), e.seq)
        }
        Some(Item::TypingUpdate(t)) => format!(
            "typing {} by {} = {}",
            short(&t.conversation_id),
            short(&t.user_id),
            t.typing
        ),
        Some(Item::ReceiptUpdate(r)) => format!(
            "receipt {} by {} up to {}",
            short(&r.conversation_id),
            short(&r.user_id),
            r.delivered_up_to_seq
        ),
        Some(Item::ReadMarkerUpdate(r)) => format!(
            "read marker {} by {} at {}",
            short(&r.conversation_id),
            short(&r.user_id),
            r.last_read_seq
        ),
        Some(Item::Heartbeat(_)) => "heartbeat".into(),
        Some(Item::ResyncRequired(r)) => format!("resync {:?}", r.reason()),
        Some(Item::Ready(r)) => format!("ready (replayed {})", r.replayed_count),
        None => "empty item".into(),
    }
}

/// All of `items`, described.
pub fn describe_all(items: &[pb::SubscribeResponse]) -> String {
    let described: Vec<String> = items.iter().map(describe).collect();
    format!("[{}]", described.join(", "))
}

fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(6)..).unwrap_or(id)
}
