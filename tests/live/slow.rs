//! A subscriber too slow to keep up is cut off with UNAVAILABLE + RESUME while the server's
//! memory stays bounded (the live gauges say so), then resumes from the last cursor it
//! received and catches up with everything.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use pb::message_service_client::MessageServiceClient;
use pb::subscribe_response::Item;
use tonic::Code;
use tonic::transport::Endpoint;

use crate::common::assert_reason;
use crate::common::live::*;
use crate::common::messages::{send_request, text};
use crate::common::users::known_user;

const BUFFER: usize = 16;
const STREAMS: &str = "echo_live_streams";
const BUFFERED: &str = "echo_live_buffered_items";
const SENDERS: usize = 6;
/// Under the per-user send limit (100 per 10 s); six of them send about 1 MB.
const PER_SENDER: usize = 60;

/// `user`'s stream on a connection with small HTTP/2 windows, so that a few hundred
/// kilobytes not read fill everything between the server's buffer and this test.
async fn slow_stream(mesh: &TestMesh, user: &SignedIn) -> LiveStream {
    let channel = Endpoint::from_shared(format!("http://{}", mesh.addr()))
        .expect("endpoint")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect");
    let token: tonic::metadata::MetadataValue<_> = format!("Bearer {}", user.tokens.access_token)
        .parse()
        .expect("ascii token");
    let mut client =
        MessageServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
            Ok(request)
        });
    let answer = client.subscribe(pb::SubscribeRequest::default()).await;
    LiveStream::open(answer).expect("subscribe")
}

/// Senders that each send up to PER_SENDER big messages until `stop`; each hands back how
/// many it sent.
fn start_senders(
    mesh: &TestMesh,
    senders: &[SignedIn],
    chat: &pb::Conversation,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    let body = "slow ".repeat(600);
    senders
        .iter()
        .map(|sender| {
            let mut client = mesh.message_as(sender);
            let (chat, stop, body) = (chat.clone(), stop.clone(), body.clone());
            tokio::spawn(async move {
                let mut sent = 0;
                while sent < PER_SENDER && !stop.load(Ordering::Relaxed) {
                    let key = uuid::Uuid::now_v7().to_string();
                    let request = send_request(&chat, &key, text(&body));
                    client.send_message(request).await.expect("send");
                    sent += 1;
                }
                sent
            })
        })
        .collect()
}

#[tokio::test]
async fn a_slow_subscriber_is_cut_off_then_catches_up() {
    // The gauges are process-wide: no other test's streams may count while this one reads them.
    let _gauges = gauges_exclusive().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start_with(backend, "all", |config| {
            config.live.stream_buffer = BUFFER;
        })
        .await
        else {
            continue;
        };
        let reader = known_user(&mesh).await;
        let mut senders = Vec::new();
        for _ in 0..SENDERS {
            senders.push(known_user(&mesh).await);
        }
        let others: Vec<&SignedIn> = std::iter::once(&reader).chain(&senders[1..]).collect();
        let chat = group_of(&mesh, &senders[0], &others).await;
        let id = chat.conversation_id.clone();
        let baseline = gauge(&mesh, STREAMS).await.unwrap_or(0.0);

        let mut slow = slow_stream(&mesh, &reader).await;
        let first = slow.item(WAIT).await;
        assert!(matches!(first.item, Some(Item::Ready(_))), "{first:?}");
        eventually(WAIT, "echo_live_streams counts the open stream", || async {
            (gauge(&mesh, STREAMS).await == Some(baseline + 1.0)).then_some(())
        })
        .await;

        // Send without reading: far more than the HTTP/2 windows and the server's buffers
        // hold. Meanwhile the buffered items never exceed the one open stream's buffer.
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = start_senders(&mesh, &senders, &chat, &stop);
        let mut most_buffered: f64 = 0.0;
        let mut cut_seen = false;
        while !tasks.iter().all(tokio::task::JoinHandle::is_finished) && !cut_seen {
            let buffered = gauge(&mesh, BUFFERED)
                .await
                .expect("echo_live_buffered_items is exported");
            most_buffered = most_buffered.max(buffered);
            assert!(
                buffered <= BUFFER as f64,
                "{backend:?}: {buffered} items buffered for one stream of {BUFFER}"
            );
            cut_seen = gauge(&mesh, STREAMS).await.unwrap_or(0.0) <= baseline;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let mut sent = 0;
        for task in tasks {
            sent += task.await.expect("sender");
        }
        // The cut shows in the stream gauge before the client reads again (checked last, so
        // that a failure here does not hide how the rest behaves).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !cut_seen && tokio::time::Instant::now() < deadline {
            cut_seen = gauge(&mesh, STREAMS).await.unwrap_or(0.0) <= baseline;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Reading on yields what was already on its way, in order, then RESUME.
        let status = slow.ended(WAIT).await;
        assert_reason(&status, Code::Unavailable, "RESUME");
        let before_cut = seqs_of(&slow.seen, &id);
        assert!(
            before_cut.windows(2).all(|w| w[1] == w[0] + 1),
            "{backend:?}: {before_cut:?}"
        );

        // Resuming from the last cursor received catches up with everything else, once.
        let last = last_seq(&mesh, &reader, &id).await;
        let mut back = subscribe(&mesh, &reader, &slow.cursor).await;
        let (replayed, ready) = back.until_ready(WAIT).await;
        assert_eq!(usize::try_from(ready.replayed_count), Ok(replayed.len()));
        if !seqs_of(&back.seen, &id).contains(&last) {
            back.collect_until(WAIT, |items| seqs_of(items, &id).contains(&last))
                .await;
        }
        let resumed = seqs_of(&back.seen, &id);
        let resume_from = before_cut.last().map_or(chat.last_seq + 1, |s| s + 1);
        assert_eq!(
            resumed,
            (resume_from..=last).collect::<Vec<_>>(),
            "{backend:?}: after the cut, everything once and in order"
        );
        assert!(
            cut_seen,
            "{backend:?}: {sent} messages sent to an unread stream, which was cut (RESUME \
             came when it read on), but echo_live_streams still counted it until then \
             (at most {most_buffered} items were buffered)"
        );
        mesh.shutdown().await;
    }
}
