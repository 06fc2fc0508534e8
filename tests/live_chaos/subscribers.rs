//! The readers: every device keeps a stream, drops it at random moments and resumes with the
//! last cursor it received, recording what each stream segment delivered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_testkit::SignedIn;
use pb::conversation_event::Kind;
use pb::subscribe_response::Item;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::common::live::{LiveStream, Next, WAIT, subscribe_ready, try_subscribe};
use crate::common::reason;
use crate::world::World;

/// A membership change, as the observers' logs tell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A user joined; `initial` when at creation (their period starts at seq 1).
    Joined { user: String, initial: bool },
    /// A user left or was removed (the event is still theirs).
    Gone { user: String },
}

/// One delivered item, as much as the checks need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Got {
    /// A conversation event.
    Conversation {
        conversation: String,
        seq: i64,
        change: Option<Change>,
    },
    /// A user event.
    User { user: String, seq: i64 },
    /// Ready.
    Ready,
    /// ResyncRequired (never expected here).
    Resync(i32),
    /// Receipts, read markers, typing, heartbeats.
    Ephemeral,
}

impl Got {
    fn of(response: &pb::SubscribeResponse) -> Self {
        match &response.item {
            Some(Item::ConversationEvent(event)) => Got::Conversation {
                conversation: event.conversation_id.clone(),
                seq: event.seq,
                change: change_of(event),
            },
            Some(Item::UserEvent(event)) => Got::User {
                user: event.user_id.clone(),
                seq: event.seq,
            },
            Some(Item::Ready(_)) => Got::Ready,
            Some(Item::ResyncRequired(resync)) => Got::Resync(resync.reason),
            _ => Got::Ephemeral,
        }
    }
}

fn change_of(event: &pb::ConversationEvent) -> Option<Change> {
    match &event.kind {
        Some(Kind::MemberJoined(joined)) => Some(Change::Joined {
            user: joined.member.as_ref()?.user_id.clone(),
            initial: joined.method() == pb::JoinMethod::Created,
        }),
        Some(Kind::MemberLeft(left)) => Some(Change::Gone {
            user: left.user_id.clone(),
        }),
        Some(Kind::MemberRemoved(removed)) => Some(Change::Gone {
            user: removed.user_id.clone(),
        }),
        _ => None,
    }
}

/// What one stream delivered, from open to drop (or to its end status).
#[derive(Debug, Default)]
pub struct Segment {
    /// Its items, in order.
    pub items: Vec<Got>,
    /// The status it ended with, if the server ended it.
    pub ended: Option<String>,
    /// The instance it was opened on (0: the mesh, 1: its sibling).
    pub instance: usize,
}

/// One subscribing device and everything its streams delivered.
pub struct Device {
    /// Its user (an index into the world's users).
    pub user: usize,
    /// Its sign-in.
    pub signed_in: SignedIn,
    /// The last cursor it received.
    pub cursor: String,
    /// Its streams, in order.
    pub segments: Vec<Segment>,
}

impl Device {
    /// Open the device's first stream (empty cursor) and read its Ready.
    /// Across instances, devices start on alternate ones (`n`: the device's number).
    pub async fn open(
        world: &World,
        n: usize,
        user: usize,
        signed_in: SignedIn,
    ) -> (Self, LiveStream) {
        let instances = world.instances();
        let instance = n % instances.len();
        let stream = subscribe_ready(instances[instance], &signed_in).await;
        let device = Self {
            user,
            signed_in,
            cursor: stream.cursor.clone(),
            segments: vec![Segment {
                items: vec![Got::Ready],
                ended: None,
                instance,
            }],
        };
        (device, stream)
    }

    /// Read `stream` until `until` (or its end), recording into the last segment.
    pub async fn read(&mut self, stream: &mut LiveStream, until: Instant) {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match stream.next(left).await {
                Next::Item(response) => {
                    if !response.cursor.is_empty() {
                        self.cursor.clone_from(&response.cursor);
                    }
                    self.segment().items.push(Got::of(&response));
                    stream.seen.clear(); // keep memory flat; the segment has what matters
                }
                Next::Timeout => return,
                Next::Ended(status) => {
                    let ended = format!("{:?} {}", status.code(), reason(&status));
                    self.segment().ended = Some(ended);
                    return;
                }
                Next::Closed => {
                    self.segment().ended = Some("closed without a status".into());
                    return;
                }
            }
        }
    }

    /// Resume from the last cursor in a new segment, on instance `instance`.
    pub async fn resume(&mut self, world: &World, instance: usize) -> Option<LiveStream> {
        self.segments.push(Segment {
            instance,
            ..Segment::default()
        });
        let mesh = world.instances()[instance];
        match try_subscribe(mesh, &self.signed_in, &self.cursor).await {
            Ok(stream) => Some(stream),
            Err(status) => {
                self.segment().ended = Some(format!("refused: {status:?}"));
                None
            }
        }
    }

    fn segment(&mut self) -> &mut Segment {
        self.segments.last_mut().expect("a segment")
    }
}

/// Keep `device` subscribed until `stop`, dropping its stream after random spells and
/// resuming from its last cursor.
pub async fn churn(
    world: Arc<World>,
    mut device: Device,
    mut stream: LiveStream,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Device {
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        let spell = Duration::from_millis(rng.random_range(50..1500));
        device.read(&mut stream, Instant::now() + spell).await;
        drop(stream);
        if stop.load(Ordering::Relaxed) {
            return device;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..50))).await;
        stream = loop {
            let instance = world.instance(&mut rng).0;
            if let Some(stream) = device.resume(&world, instance).await {
                break stream;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
    }
}

/// The final resume of a quiet world: a new segment read up to its Ready. Across instances,
/// on the instance the device's last stream was not on.
pub async fn final_stream(world: &World, device: &mut Device) -> LiveStream {
    let last = device.segments.last().map_or(0, |s| s.instance);
    let instance = (last + 1) % world.instances().len();
    let mut stream = device
        .resume(world, instance)
        .await
        .unwrap_or_else(|| panic!("final resume refused: {:?}", device.segments.last()));
    let deadline = Instant::now() + WAIT;
    while !device.segment().items.contains(&Got::Ready) {
        assert!(Instant::now() < deadline, "no Ready on the final resume");
        device
            .read(&mut stream, Instant::now() + Duration::from_millis(200))
            .await;
        if let Some(ended) = &device.segment().ended {
            panic!("the final stream ended: {ended}");
        }
    }
    stream
}

/// How many of `device`'s resumes went to another instance than its stream before.
pub fn moves(device: &Device) -> usize {
    device
        .segments
        .windows(2)
        .filter(|pair| pair[0].instance != pair[1].instance)
        .count()
}
