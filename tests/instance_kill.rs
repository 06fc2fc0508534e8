//! R3 (docs/reliability.md): SIGKILL of an Echo instance under load. Two whole-mesh `echo`
//! processes share the real backends (PostgreSQL, NATS, Redis) and the identity; Ada sends
//! through both in turn while Bob's Subscribe stream is on the first and Ada's own on the
//! second. Half-way, the first gets SIGKILL (no shutdown, no drain: its sockets vanish). A send
//! the dead instance does not answer is retried on the survivor with the same
//! `client_message_id`, as a client does. Then: every message Ada was told was stored is in
//! the history once; Bob resumes from his last cursor on the survivor and receives every
//! acknowledged message once, in order, with no gap; Ada's stream on the survivor never broke.
//!
//! One piece: the three R3 runs (SIGKILL, a rolling SIGTERM restart, SIGKILL behind the edge) share
//! the `Deployment`, the keyed `numbered` sends, `subscribe` up to Ready and `created`, and one
//! verdict: every acknowledged seq once, in order, on each resumed stream. Split, each file would
//! copy that harness and the verdict could weaken in one of them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::live::{LiveStream, Next};
use common::processes::{
    another_device, auth_env, backends, serving, sign_up, sign_up_with_phone, spawn, webhook,
};
use echo_proto::echo::message::v1 as pb;
use echo_testenv::unique_name;
use pb::subscribe_response::Item;
use tonic::transport::Channel;

/// Messages Ada sends; the kill comes after half of them.
const MESSAGES: usize = 60;
/// Messages sent during the rolling restart, 80 ms apart (within the send limit of a burst of
/// 100 and then 10 a second), so both restarts fall inside the load.
const ROLLING_MESSAGES: usize = 120;
/// Every wait is bounded, so a broken recovery fails instead of hanging.
const WAIT: Duration = Duration::from_secs(20);

type Client = pb::message_service_client::MessageServiceClient<echo_testkit::Authed>;

fn client(channel: &Channel, token: &str) -> Client {
    pb::message_service_client::MessageServiceClient::new(echo_testkit::authed_on(channel, token))
}

/// What every test here starts from: the shared backends under a prefix of its own, the
/// environment each `echo` gets (auth's secrets, the service secret), the OTP webhook's inbox
/// and a data dir.
struct Deployment {
    backends: Vec<(String, String)>,
    env: Vec<(String, String)>,
    inbox: common::processes::Inbox,
    data: tempfile::TempDir,
}

async fn deployment() -> Option<Deployment> {
    let backends = backends()?;
    let key = echo_authn::SigningKey::generate().unwrap();
    let (webhook, inbox) = webhook().await;
    let mut env = auth_env(&backends, &key, &webhook);
    env.push((
        "ECHO_SERVICE_SECRET".to_owned(),
        unique_name("s") + &unique_name("s"),
    ));
    Some(Deployment {
        backends,
        env,
        inbox,
        data: tempfile::tempdir().unwrap(),
    })
}

/// The direct conversation of `client`'s user with `peer`, once message knows the peer.
async fn direct(client: &mut Client, peer: &str) -> String {
    loop {
        let request = pb::CreateDirectConversationRequest {
            peer_user_id: peer.to_owned(),
        };
        match client.create_direct_conversation(request).await {
            Ok(created) => return created.into_inner().conversation.unwrap().conversation_id,
            // Until message has applied the peer's registration.
            Err(status) if common::reason(&status) == "USER_NOT_FOUND" => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("create the conversation: {status:?}"),
        }
    }
}

/// Message `index` of a run: text "message {index}", idempotency key "{prefix}-{index}".
fn numbered(conversation: &str, prefix: &str, index: usize) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        conversation_id: conversation.to_owned(),
        client_message_id: format!("{prefix}-{index}"),
        content: Some(pb::MessageContent {
            text: format!("message {index}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Bob's stream from `cursor`, read up to its Ready (replayed items first, kept in `seen`).
async fn subscribe(client: &mut Client, cursor: &str) -> LiveStream {
    let request = pb::SubscribeRequest {
        cursor: cursor.into(),
    };
    let mut stream = LiveStream::open(client.subscribe(request).await).expect("subscribe");
    loop {
        match stream.next(WAIT).await {
            Next::Item(item) if matches!(item.item, Some(Item::Ready(_))) => return stream,
            Next::Item(_) => {}
            other => panic!("the stream ended before Ready: {other:?}"),
        }
    }
}

/// The MessageCreated seqs of `conversation` among `items`, in arrival order.
fn created(items: &[pb::SubscribeResponse], conversation: &str) -> Vec<i64> {
    items
        .iter()
        .filter_map(common::live::conversation_event)
        .filter(|event| event.conversation_id == conversation)
        .filter_map(common::live::message_of)
        .map(|message| message.seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_an_instance_under_load_loses_no_acknowledged_message() {
    let Some(Deployment {
        env, inbox, data, ..
    }) = deployment().await
    else {
        return;
    };
    let (first_dir, second_dir) = (data.path().join("first"), data.path().join("second"));
    let mut first = spawn("all", &env, &first_dir);
    let mut second = spawn("all", &env, &second_dir);
    let (on_first, on_second) = (serving(&mut first).await, serving(&mut second).await);

    let ada = sign_up(on_first.clone(), &inbox).await;
    let bob = sign_up(on_second.clone(), &inbox).await;
    let mut ada_first = client(&on_first, &ada.access_token);
    let mut ada_second = client(&on_second, &ada.access_token);
    let conversation = direct(&mut ada_first, &bob.user_id).await;
    let mut bob_first = client(&on_first, &bob.access_token);
    let mut bob_second = client(&on_second, &bob.access_token);
    let mut bob_stream = subscribe(&mut bob_first, "").await;
    let mut ada_stream = subscribe(&mut client(&on_second, &ada.access_token), "").await;

    let mut acked = BTreeSet::new();
    let mut killed = false;
    for index in 0..MESSAGES {
        if index == MESSAGES / 2 {
            // SIGKILL: no drain, no goodbye.
            first.child.start_kill().unwrap();
            first.child.wait().await.unwrap();
            killed = true;
        }
        let request = numbered(&conversation, "kill", index);
        // Alternate the instances while both live; a send the first does not answer is
        // retried on the second with the same key.
        let via_first = index % 2 == 0 && !killed;
        let sent = if via_first {
            ada_first.send_message(request.clone()).await
        } else {
            Err(tonic::Status::unavailable("not tried"))
        };
        let message = match sent {
            Ok(sent) => sent.into_inner().message.unwrap(),
            Err(_) => {
                let mut retried = None;
                for _ in 0..50 {
                    match ada_second.send_message(request.clone()).await {
                        Ok(sent) => {
                            retried = sent.into_inner().message;
                            break;
                        }
                        Err(status) if status.code() == tonic::Code::Unavailable => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(status) => panic!("send {index} on the survivor: {status:?}"),
                    }
                }
                retried.unwrap_or_else(|| panic!("send {index} never stored"))
            }
        };
        assert!(acked.insert(message.seq), "seq {} twice", message.seq);
    }
    assert_eq!(acked.len(), MESSAGES);

    // Bob's stream on the killed instance ends (a transport error: the process is gone); he
    // resumes from his last cursor on the survivor.
    let mut bob_seen = Vec::new();
    loop {
        match bob_stream.next(WAIT).await {
            Next::Item(_) => {}
            Next::Ended(_) | Next::Closed => break,
            Next::Timeout => panic!("Bob's stream on the killed instance did not end"),
        }
    }
    bob_seen.extend(bob_stream.seen.clone());
    let cursor = bob_stream.cursor.clone();
    let mut resumed = subscribe(&mut bob_second, &cursor).await;
    let last = *acked.last().unwrap();
    while !created(&resumed.seen, &conversation).contains(&last) {
        match resumed.next(WAIT).await {
            Next::Item(_) => {}
            other => panic!("Bob's resumed stream: {other:?} before seq {last}"),
        }
    }
    bob_seen.extend(resumed.seen.clone());
    let bob_seqs = created(&bob_seen, &conversation);
    let expected: Vec<i64> = acked.iter().copied().collect();
    assert_eq!(
        bob_seqs, expected,
        "Bob: every acknowledged message once, in order, across the kill"
    );

    // Ada's stream on the survivor never broke and saw them all too.
    while !created(&ada_stream.seen, &conversation).contains(&last) {
        match ada_stream.next(WAIT).await {
            Next::Item(_) => {}
            other => panic!("Ada's stream on the survivor: {other:?} before seq {last}"),
        }
    }
    assert_eq!(created(&ada_stream.seen, &conversation), expected);

    // The history holds each once.
    let history = ada_second
        .list_messages(pb::ListMessagesRequest {
            conversation_id: conversation.clone(),
            page_size: 200,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    let stored: BTreeSet<i64> = history
        .iter()
        .filter(|m| {
            m.content
                .as_ref()
                .is_some_and(|c| c.text.starts_with("message "))
        })
        .map(|m| m.seq)
        .collect();
    assert_eq!(
        stored, acked,
        "the history: every acknowledged message, once"
    );
    drop(second);
}

/// Ask `process` to stop (SIGTERM) and wait for it: a drained exit is status 0.
async fn terminate(process: &mut common::processes::Process) {
    let pid = process.child.id().expect("still running").to_string();
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
    let exited = tokio::time::timeout(WAIT, process.child.wait())
        .await
        .expect("drained within the wait")
        .unwrap();
    assert!(exited.success(), "a SIGTERM'd instance exits 0: {exited}");
}

/// A rolling restart under load (R3): each of two instances in turn is stopped with SIGTERM,
/// drains, exits 0 and is started again, while Ada keeps sending through whichever instance
/// is up. Every refusal a client meets is UNAVAILABLE (retried with the same key on the other
/// instance), nothing acknowledged is lost or doubled, and Bob, whose stream the first restart
/// ended, resumes from his cursor and has every message once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_nothing() {
    let Some(Deployment {
        env, inbox, data, ..
    }) = deployment().await
    else {
        return;
    };
    let dirs = [data.path().join("first"), data.path().join("second")];
    let mut processes = [spawn("all", &env, &dirs[0]), spawn("all", &env, &dirs[1])];
    let mut channels = [
        serving(&mut processes[0]).await,
        serving(&mut processes[1]).await,
    ];
    let ada = sign_up(channels[0].clone(), &inbox).await;
    let bob = sign_up(channels[1].clone(), &inbox).await;
    let conversation = direct(&mut client(&channels[0], &ada.access_token), &bob.user_id).await;
    let mut bob_stream = subscribe(&mut client(&channels[0], &bob.access_token), "").await;

    // Ada sends in the background, 80 ms apart, through whichever instance is up, while the
    // instances restart one by one.
    let live = std::sync::Arc::new(std::sync::Mutex::new(channels.clone()));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sender = tokio::spawn({
        let (live, sent, conversation) = (live.clone(), sent.clone(), conversation.clone());
        let token = ada.access_token.clone();
        async move {
            let mut acked = BTreeSet::new();
            let mut refusals = Vec::new();
            for index in 0..ROLLING_MESSAGES {
                let request = numbered(&conversation, "roll", index);
                let mut stored = None;
                for attempt in 0..100 {
                    let channel = live.lock().unwrap()[(index + attempt) % 2].clone();
                    match client(&channel, &token).send_message(request.clone()).await {
                        Ok(answer) => {
                            stored = answer.into_inner().message;
                            break;
                        }
                        Err(status) => {
                            refusals.push(status.code());
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                let message = stored.unwrap_or_else(|| panic!("send {index} never stored"));
                assert!(acked.insert(message.seq), "seq {} twice", message.seq);
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
            (acked, refusals)
        }
    });
    for (at, which) in [(ROLLING_MESSAGES / 4, 0), (ROLLING_MESSAGES / 2, 1)] {
        while sent.load(std::sync::atomic::Ordering::Relaxed) < at {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        terminate(&mut processes[which]).await;
        processes[which] = spawn("all", &env, &dirs[which]);
        channels[which] = serving(&mut processes[which]).await;
        live.lock().unwrap()[which] = channels[which].clone();
    }
    let (acked, refusals) = tokio::time::timeout(Duration::from_secs(120), sender)
        .await
        .expect("the sends finish")
        .unwrap();
    assert_eq!(acked.len(), ROLLING_MESSAGES);
    assert!(
        refusals
            .iter()
            .all(|code| *code == tonic::Code::Unavailable),
        "every refusal during the rollout is UNAVAILABLE: {refusals:?}"
    );
    assert!(
        !refusals.is_empty(),
        "some sends met a stopped instance (else the rollout was not under load)"
    );

    // Bob's stream was ended by the first restart (resumable); he resumes from its cursor.
    loop {
        match bob_stream.next(WAIT).await {
            Next::Item(_) => {}
            Next::Ended(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                break;
            }
            other => panic!("Bob's stream on the restarted instance: {other:?}"),
        }
    }
    let mut bob_seen = bob_stream.seen.clone();
    let mut resumed = subscribe(
        &mut client(&channels[1], &bob.access_token),
        &bob_stream.cursor,
    )
    .await;
    let last = *acked.last().unwrap();
    while !created(&resumed.seen, &conversation).contains(&last) {
        match resumed.next(WAIT).await {
            Next::Item(_) => {}
            other => panic!("Bob's resumed stream: {other:?} before seq {last}"),
        }
    }
    bob_seen.extend(resumed.seen.clone());
    let expected: Vec<i64> = acked.iter().copied().collect();
    assert_eq!(
        created(&bob_seen, &conversation),
        expected,
        "Bob: every acknowledged message once, in order, across the rollout"
    );
    for process in &mut processes {
        terminate(process).await;
    }
}

/// Bob's devices, each with its Subscribe stream through the edge: with two instances the
/// edge alternates them, so some are on the instance that is killed.
const EDGE_STREAMS: usize = 4;

/// R3 behind the edge (issue 16's scale-out): two instances behind one `--target edge`
/// process listing both; Bob's four devices each hold a Subscribe stream through the edge
/// (spread over the two), Ada sends through the edge, and half-way one instance gets SIGKILL. Sends go on
/// through the edge (a refused connection is tried on the other instance; anything else is
/// UNAVAILABLE and retried with the same key), and every stream — broken ones resumed
/// through the edge from their cursor — has every acknowledged message once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_an_instance_behind_the_edge_loses_nothing() {
    let Some(Deployment {
        backends,
        env,
        inbox,
        data,
    }) = deployment().await
    else {
        return;
    };
    let mut first = spawn("all", &env, &data.path().join("first"));
    let mut second = spawn("all", &env, &data.path().join("second"));
    serving(&mut first).await;
    serving(&mut second).await;
    let both = format!(
        "http://127.0.0.1:{},http://127.0.0.1:{}",
        first.port, second.port
    );
    let mut edge_env = backends.clone();
    for service in ["AUTH", "USER", "MESSAGE", "PRESENCE", "NOTIFICATION"] {
        edge_env.push((format!("ECHO_UPSTREAMS__{service}"), both.clone()));
    }
    let mut edge = spawn("edge", &edge_env, data.path());
    let through_edge = serving(&mut edge).await;

    let ada = sign_up(through_edge.clone(), &inbox).await;
    let (bob_phone, bob) = sign_up_with_phone(through_edge.clone(), &inbox).await;
    let mut ada_client = client(&through_edge, &ada.access_token);
    let conversation = direct(&mut ada_client, &bob.user_id).await;
    let mut devices = vec![client(&through_edge, &bob.access_token)];
    while devices.len() < EDGE_STREAMS {
        let tokens = another_device(through_edge.clone(), &bob_phone).await;
        devices.push(client(&through_edge, &tokens.access_token));
    }
    let mut streams = Vec::new();
    for device in &mut devices {
        streams.push(subscribe(device, "").await);
    }

    let mut acked = BTreeSet::new();
    for index in 0..MESSAGES {
        if index == MESSAGES / 2 {
            first.child.start_kill().unwrap();
            first.child.wait().await.unwrap();
        }
        let request = numbered(&conversation, "edge-kill", index);
        let mut stored = None;
        for _ in 0..50 {
            match ada_client.send_message(request.clone()).await {
                Ok(sent) => {
                    stored = sent.into_inner().message;
                    break;
                }
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("send {index} through the edge: {status:?}"),
            }
        }
        let message = stored.unwrap_or_else(|| panic!("send {index} never stored"));
        assert!(acked.insert(message.seq), "seq {} twice", message.seq);
    }

    // Each stream: read until the last message; a stream the kill broke ends UNAVAILABLE
    // and is resumed through the edge from its cursor.
    let last = *acked.last().unwrap();
    let expected: Vec<i64> = acked.iter().copied().collect();
    let mut broken = 0;
    for (mut stream, device) in streams.into_iter().zip(&mut devices) {
        let mut seen = Vec::new();
        loop {
            if created(&stream.seen, &conversation).contains(&last) {
                break;
            }
            match stream.next(WAIT).await {
                Next::Item(_) => {}
                Next::Ended(status) => {
                    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                    broken += 1;
                    seen.extend(stream.seen.clone());
                    let cursor = stream.cursor.clone();
                    stream = subscribe(device, &cursor).await;
                }
                other => panic!("a stream through the edge: {other:?}"),
            }
        }
        seen.extend(stream.seen.clone());
        assert_eq!(
            created(&seen, &conversation),
            expected,
            "every acknowledged message once, in order, on each stream"
        );
    }
    assert!(
        broken > 0,
        "some streams were on the killed instance (the edge spreads them)"
    );
    drop(edge);
    drop(second);
}
