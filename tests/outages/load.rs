//! The load every outage test runs: four users sending to one group without pause on a
//! real-backend mesh wired to the dependency under test, `/readyz` polled beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_testenv::TcpProxy;
use echo_testkit::{Backend, SignedIn, TestMesh};
use tokio::time::Instant;
use tonic::Status;

use crate::common::live::caught_up;
use crate::common::messages::{group, send_request, text};
use crate::common::users::known_user;

/// One send of the load.
#[derive(Debug)]
pub struct Sent {
    pub key: String,
    pub answer: Result<pb::Message, Status>,
    pub started: Instant,
    pub took: Duration,
}

/// Four senders in one group, each sending as fast as its rate limit allows (10/s) until
/// `stop`; what each send answered, with the sender's index.
pub fn load(
    mesh: &TestMesh,
    senders: &[SignedIn],
    chat: &pb::Conversation,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinSet<(usize, Vec<Sent>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, sender) in senders.iter().enumerate() {
        let mut client = mesh.message_as(sender);
        let (chat, stop) = (chat.clone(), stop.clone());
        tasks.spawn(async move {
            let mut sent = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let key = format!("s{index}-{n}");
                n += 1;
                let started = Instant::now();
                let answer = client
                    .send_message(send_request(&chat, &key, text(&key)))
                    .await
                    .map(|r| r.into_inner().message.expect("message"));
                sent.push(Sent {
                    key,
                    answer,
                    started,
                    took: started.elapsed(),
                });
                tokio::time::sleep(Duration::from_millis(110)).await;
            }
            (index, sent)
        });
    }
    tasks
}

/// `/readyz` polled every 100 ms until `stop`: when it answered and whether it said ready.
pub fn readiness(
    mesh: &TestMesh,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(Instant, bool)>> {
    let (url, stop) = (format!("{}/readyz", mesh.admin_url()), stop.clone());
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Acquire) {
            let ready = reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success());
            seen.push((Instant::now(), ready));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    })
}

/// Ada and four senders in one group; Ada's cursor from before anything is sent.
async fn group_under_load(mesh: &TestMesh) -> (SignedIn, Vec<SignedIn>, pb::Conversation, String) {
    let ada = known_user(mesh).await;
    let mut senders = Vec::new();
    for _ in 0..4 {
        senders.push(known_user(mesh).await);
    }
    let members: Vec<&SignedIn> = senders.iter().collect();
    let chat = group(mesh, &ada, pb::ConversationType::Group, &members).await;
    let cursor = caught_up(mesh, &ada, &ada, &chat).await;
    (ada, senders, chat, cursor)
}

/// A group under the four-sender load, on a real-backend mesh `configure`d to reach one
/// dependency through the test's proxy or private server.
pub struct Loaded {
    pub mesh: TestMesh,
    pub ada: SignedIn,
    pub senders: Vec<SignedIn>,
    pub chat: pb::Conversation,
    pub cursor: String,
    pub stop: Arc<AtomicBool>,
    pub load: tokio::task::JoinSet<(usize, Vec<Sent>)>,
}

pub async fn loaded(configure: impl FnOnce(&mut echo_config::Config)) -> Option<Loaded> {
    let mesh = TestMesh::start_with(Backend::Real, "all", configure).await?;
    let (ada, senders, chat, cursor) = group_under_load(&mesh).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = load(&mesh, &senders, &chat, &stop);
    Some(Loaded {
        mesh,
        ada,
        senders,
        chat,
        cursor,
        stop,
        load,
    })
}

impl Loaded {
    /// Let the load run `for` longer, stop it, and hand back every sender's sends, in the
    /// senders' order: `settle` retries `sent[i]` as `senders[i]`, and the tasks end in any
    /// order (retrying one sender's key as another once stored a second message for a send
    /// that had been committed but answered with an error).
    pub async fn finish(&mut self, r#for: Duration) -> Vec<Vec<Sent>> {
        tokio::time::sleep(r#for).await;
        self.stop.store(true, Ordering::Release);
        let mut sent: Vec<(usize, Vec<Sent>)> = Vec::new();
        while let Some(task) = self.load.join_next().await {
            sent.push(task.expect("sender"));
        }
        sent.sort_by_key(|(index, _)| *index);
        sent.into_iter().map(|(_, sends)| sends).collect()
    }
}

/// Cut `proxy` for 2 s, then for 8 s (longer than the pool's 5 s acquire timeout), 2 s after
/// the load or the last cut; when each cut ended.
pub async fn cut_twice(proxy: &TcpProxy) -> Vec<Instant> {
    let mut ends = Vec::new();
    for length in [Duration::from_secs(2), Duration::from_secs(8)] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.cut();
        tokio::time::sleep(length).await;
        proxy.restore();
        ends.push(Instant::now());
    }
    ends
}
