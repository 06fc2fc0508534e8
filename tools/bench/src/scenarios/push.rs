//! `push` (spec §B7): notification's delivery pipeline against the in-process fake push
//! service, beside the bare tonic baseline of the same run.
//!
//! 1. **Latency**: R offline recipients, each with an FCM token and a direct conversation with
//!    one sender; M messages at a fixed rate, round robin. Latency runs from just before
//!    SendMessage is called to the fake's acceptance of the FCM request for that message
//!    (outbox → bus → consumer → inbox entry and job → dispatcher → OAuth'd HTTP/2 request).
//! 2. **Throughput**: a group of G of those members (more are signed up if G > R), each with
//!    a token. One probe message's pushes are awaited first (the group's 2·G membership events
//!    are applied by then), then K messages at `--group-rate` (0: as fast as the sender may):
//!    provider requests/s over the span from the first to the last accepted request, each
//!    message's lag (its send to its last push), and the lag from the last send to the last
//!    request.
//! 3. **Channel** (`--channel N`, off by default: by hand, outside CI): a channel of the sender
//!    whose N members, each with an FCM token, are seeded straight into notification's
//!    database (the fixture: signing up 100,000 users would take hours); one post, and
//!    meanwhile direct messages at `--rate`: the time from the post to the fake's last request
//!    for it, and the direct messages' latency while the channel drains.
//!
//! The mesh runs in this process (the fake must be reachable and trusted by it), on the
//! embedded or the real backends. Everything is bounded: fixed counts, waits with deadlines.
//!
//! One piece past 400 lines: the three parts share one setup (the signed-up users, their
//! tokens and conversations, the fake's arrivals by message id) and one report against the
//! same run's baseline; each part is a function, and apart they would pass that setup across
//! files for no reader's gain.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use echo_proto::echo::message::v1 as msg;
use echo_proto::echo::notification::v1 as pb;
use echo_push::Platform;
use echo_push::fake::FakePushServer;
use echo_testkit::{Backend, TestMesh};
use serde_json::json;
use tonic::transport::Channel;

use super::presence::MeshCodes;
use crate::cli::{BackendKind, BaselineArgs, Global, PushArgs};
use crate::client::users::{self, User};
use crate::client::{Bearer, Pool, send_text};
use crate::report::{Progress, Report, Setup, round1};
use crate::stats::{Latencies, per_second};

/// Direct messages per second one sender sends (under the SEND rule's 10 a second).
const DIRECT_PER_SENDER: usize = 5;

/// How long the pushes of a phase may take to arrive after its last send.
const DRAIN: Duration = Duration::from_secs(120);

type NotificationClient = pb::notification_service_client::NotificationServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, Bearer>,
>;

fn notifications(pool: &Pool, index: usize, user: &User) -> NotificationClient {
    pb::notification_service_client::NotificationServiceClient::with_interceptor(
        pool.get(index).clone(),
        user.bearer.clone(),
    )
}

/// Run the scenario.
pub async fn run(args: &PushArgs, global: &Global) -> anyhow::Result<Vec<Report>> {
    if args.recipients == 0 || args.messages == 0 || args.rate == 0 {
        bail!("--recipients, --messages and --rate must be above zero");
    }
    let baseline = super::baseline::run(&BaselineArgs::default(), global)
        .await?
        .into_iter()
        .next()
        .context("the baseline reported nothing")?;
    let backend = match global.backend {
        BackendKind::Embedded => Backend::Embedded,
        BackendKind::Real => Backend::Real,
    };
    let progress = Progress::new(global.quiet);
    let fake = FakePushServer::start().await;
    let dir = tempfile::tempdir()?;
    let Some(mesh) = TestMesh::start_with(backend, "all", |config| {
        echo_testkit::push::configure(config, &fake, dir.path());
        config.notification.poll_every = Duration::from_millis(50);
        if let Some(batch) = args.dispatch_batch {
            config.notification.dispatch_batch = batch;
        }
        if let Some(concurrency) = args.dispatch_concurrency {
            config.notification.dispatch_concurrency = concurrency;
        }
    })
    .await
    else {
        bail!("the real backends are not reachable (`just services` starts them)");
    };
    let outcome = measure(args, global, &mesh, &fake, &progress).await;
    mesh.shutdown().await;
    let figures = outcome?;
    let setup = Setup {
        backend: match global.backend {
            BackendKind::Embedded => "embedded".into(),
            BackendKind::Real => "real".into(),
        },
        server: "in-process, with the fake push service".into(),
    };
    Ok(vec![report(args, &setup, &baseline, figures)])
}

async fn measure(
    args: &PushArgs,
    global: &Global,
    mesh: &TestMesh,
    fake: &FakePushServer,
    progress: &Progress,
) -> anyhow::Result<serde_json::Value> {
    let pool = Pool::connect(
        &format!("http://{}", mesh.addr()),
        global.connections,
        global.streams_per_connection,
    )
    .await?;
    // One user may send 10 messages a second after a burst of 100 (the message service's
    // SEND rule): the direct messages come from enough senders that each stays at 5/s, so
    // no latency includes a wait for the sender's rate limit.
    let senders = (args.rate as usize).div_ceil(DIRECT_PER_SENDER).max(1);
    let people = args.recipients.max(args.group) + senders;
    let users = users::sign_up(&MeshCodes(mesh), &pool, people, progress).await?;
    let (senders, others) = users.split_at(senders);
    let sender = &senders[0];
    let mut tokens = HashMap::new();
    let bar = progress.bar(others.len() as u64, "registering FCM tokens");
    for (i, user) in others.iter().enumerate() {
        let token = format!("bench-{i}:{}", "A".repeat(140));
        notifications(&pool, i, user)
            .register_push_token(pb::RegisterPushTokenRequest {
                platform: pb::PushPlatform::Fcm as i32,
                token: token.clone(),
                ..Default::default()
            })
            .await
            .context("register an FCM token")?;
        tokens.insert(user.user_id.clone(), token);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let recipients = &others[..args.recipients];
    let mut conversations = Vec::with_capacity(recipients.len());
    for (i, recipient) in recipients.iter().enumerate() {
        let from = &senders[i % senders.len()];
        let id = users::direct(&from.messages(&pool, i), &recipient.user_id).await?;
        conversations.push((from, id));
    }
    // The setup's events (sign-ups, tokens, conversations) are still being applied: one
    // probe's push arriving means the ordered message consumer is past them.
    direct_latency(args, &pool, &conversations, fake, 1, || false).await?;
    let bar = progress.bar(args.messages as u64, "sending (latency)");
    let latency = direct_latency(args, &pool, &conversations, fake, args.messages, || {
        bar.inc(1);
        false
    })
    .await?;
    bar.finish_and_clear();
    let throughput = throughput(args, &pool, sender, &others[..args.group], fake, progress).await?;
    let channel = if args.channel > 0 {
        channel(args, mesh, &pool, sender, &conversations, fake, progress).await?
    } else {
        json!(null)
    };
    Ok(json!({ "latency": latency, "throughput": throughput, "channel": channel }))
}

/// Waits until the fake accepted an FCM request for each of `messages`; their acceptance
/// times by message id.
async fn arrivals(
    fake: &FakePushServer,
    messages: &HashMap<String, Instant>,
    expected_per_message: usize,
) -> HashMap<String, Vec<Instant>> {
    let deadline = Instant::now() + DRAIN;
    let mut seen: HashMap<String, Vec<Instant>> = HashMap::new();
    let mut looked = 0;
    loop {
        let new = fake.requests_since(looked);
        looked += new.len();
        for request in new {
            if request.platform != Platform::Fcm || request.status != 200 {
                continue;
            }
            let id = request.payload["message"]["data"]["message_id"]
                .as_str()
                .unwrap_or_default();
            if messages.contains_key(id) {
                seen.entry(id.to_owned())
                    .or_default()
                    .push(request.received_at);
            }
        }
        let complete =
            seen.values().map(Vec::len).sum::<usize>() >= messages.len() * expected_per_message;
        if complete || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends up to `count` direct messages at `--rate`, round robin over `conversations` (each
/// from its sender), until `stop` says so (called after each send); the latency of each to
/// its FCM request.
async fn direct_latency(
    args: &PushArgs,
    pool: &Pool,
    conversations: &[(&User, String)],
    fake: &FakePushServer,
    count: usize,
    mut stop: impl FnMut() -> bool,
) -> anyhow::Result<serde_json::Value> {
    let mut sent = HashMap::new();
    let mut rate_limited = 0;
    let every = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut tick = tokio::time::interval(every);
    for k in 0..count {
        tick.tick().await;
        let (from, conversation) = &conversations[k % conversations.len()];
        let started = Instant::now();
        let done = send_text(
            &mut from.messages(pool, k),
            conversation,
            format!("push {k}"),
        )
        .await
        .context("send")?;
        rate_limited += done.rate_limited;
        sent.insert(done.message.message_id, started);
        if stop() {
            break;
        }
    }
    let seen = arrivals(fake, &sent, 1).await;
    let mut latencies = Latencies::new();
    for (id, started) in &sent {
        if let Some(first) = seen.get(id).and_then(|times| times.iter().min()) {
            latencies.record(first.saturating_duration_since(*started));
        }
    }
    let duplicates: usize = seen.values().map(|t| t.len().saturating_sub(1)).sum();
    Ok(json!({
        "messages": sent.len(),
        "pushed": latencies.count(),
        "missing": sent.len() as u64 - latencies.count(),
        "duplicates": duplicates,
        "sends_rate_limited": rate_limited,
        "latency": latencies.summary(),
    }))
}

/// Phase 3: a channel of `--channel` seeded members, one post, direct messages meanwhile.
async fn channel(
    args: &PushArgs,
    mesh: &TestMesh,
    pool: &Pool,
    sender: &User,
    conversations: &[(&User, String)],
    fake: &FakePushServer,
    progress: &Progress,
) -> anyhow::Result<serde_json::Value> {
    let request = msg::CreateConversationRequest {
        r#type: msg::ConversationType::Channel.into(),
        title: format!("bench channel of {}", args.channel),
        client_request_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let channel = sender
        .messages(pool, 0)
        .create_conversation(request)
        .await
        .context("create the channel")?
        .into_inner()
        .conversation
        .context("no conversation in the answer")?
        .conversation_id;
    let spinner = progress.bar(args.channel as u64, "seeding channel members");
    let db = echo_store::Database::connect_sized(
        &mesh.config.database_url(),
        "notification",
        &mesh.config.database_schema_prefix,
        2,
    )
    .await
    .context("notification's database")?;
    // Typed ids (`echo_ids::UserId`, `ConversationId`), named by `seed_members`' signature.
    let members: Vec<(_, String)> = (0..args.channel)
        .map(|i| {
            (
                uuid::Uuid::now_v7().into(),
                format!("chan-{i}:{}", "A".repeat(140)),
            )
        })
        .collect();
    let conversation = uuid::Uuid::try_parse(&channel)?.into();
    echo_notification::fixture::seed_members(&db, conversation, &members, chrono::Utc::now())
        .await
        .context("seed the channel's members")?;
    db.close().await;
    spinner.finish_and_clear();

    let bar = progress.bar(args.channel as u64, "channel post: pushes");
    let posted = Instant::now();
    let post = send_text(
        &mut sender.messages(pool, 0),
        &channel,
        "to the whole channel".into(),
    )
    .await
    .context("post")?
    .message
    .message_id;
    // Direct messages keep going while the channel drains; their latency is the figure.
    let done = std::sync::atomic::AtomicBool::new(false);
    let drained = async {
        let deadline = posted + DRAIN;
        let (mut last, mut count, mut looked) = (None, 0, 0);
        loop {
            let new = fake.requests_since(looked);
            looked += new.len();
            for request in new {
                if request.platform == Platform::Fcm
                    && request.status == 200
                    && request.payload["message"]["data"]["message_id"].as_str() == Some(&post)
                {
                    count += 1;
                    last = last.max(Some(request.received_at));
                }
            }
            bar.set_position(count as u64);
            if count >= args.channel || Instant::now() > deadline {
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                return (count, last);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let direct = direct_latency(args, pool, conversations, fake, usize::MAX, || {
        done.load(std::sync::atomic::Ordering::Relaxed)
    });
    let ((requests, last), direct) = tokio::join!(drained, direct);
    bar.finish_and_clear();
    let dispatched_s = last.map(|l| round1(l.saturating_duration_since(posted).as_secs_f64()));
    Ok(json!({
        "members": args.channel,
        "requests": requests,
        "dispatched_s": dispatched_s,
        "direct_meanwhile": direct?,
    }))
}

async fn throughput(
    args: &PushArgs,
    pool: &Pool,
    sender: &User,
    members: &[User],
    fake: &FakePushServer,
    progress: &Progress,
) -> anyhow::Result<serde_json::Value> {
    let ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
    let group = users::group(&sender.messages(pool, 0), &ids).await?;
    let mut client = sender.messages(pool, 0);
    // The group's membership events come before its first message in the ordered consumer:
    // one probe's pushes arriving means they are applied.
    let spinner = progress.bar(1, "group: probe");
    let probe = send_text(&mut client, &group, "group probe".into())
        .await
        .context("send")?
        .message;
    let probed = arrivals(
        fake,
        &HashMap::from([(probe.message_id, Instant::now())]),
        members.len(),
    )
    .await;
    if probed.values().map(Vec::len).sum::<usize>() < members.len() {
        bail!("the group's probe message was not pushed to every member within {DRAIN:?}");
    }
    spinner.finish_and_clear();
    let bar = progress.bar(args.group_messages as u64, "sending (group)");
    let mut sent = HashMap::new();
    let every =
        (args.group_rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(args.group_rate)));
    let start = Instant::now();
    for k in 0..args.group_messages {
        if let Some(every) = every {
            tokio::time::sleep_until((start + every * u32::try_from(k).unwrap_or(u32::MAX)).into())
                .await;
        }
        let started = Instant::now();
        let message = send_text(&mut client, &group, format!("group {k}"))
            .await
            .context("send")?
            .message;
        sent.insert(message.message_id, started);
        bar.inc(1);
    }
    let last_send = Instant::now();
    bar.finish_and_clear();
    let seen = arrivals(fake, &sent, members.len()).await;
    let times: Vec<Instant> = seen.values().flatten().copied().collect();
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        return Ok(json!({ "requests": 0 }));
    };
    let span = last.saturating_duration_since(*first);
    // Each message's lag: from its send to the last of its pushes.
    let mut lags = Latencies::default();
    for (message, pushes) in &seen {
        if let (Some(sent_at), Some(done)) = (sent.get(message), pushes.iter().max()) {
            lags.record(done.saturating_duration_since(*sent_at));
        }
    }
    Ok(json!({
        "members": members.len(),
        "messages": sent.len(),
        "rate": args.group_rate,
        "requests": times.len(),
        "expected": sent.len() * members.len(),
        "requests_per_s": round1(per_second(times.len() as u64, span)),
        "message_lag": lags.summary(),
        "lag_after_last_send_ms": round1(last.saturating_duration_since(last_send).as_secs_f64() * 1000.0),
    }))
}

fn report(args: &PushArgs, setup: &Setup, baseline: &Report, figures: serde_json::Value) -> Report {
    let baseline_calls = baseline.figure("calls_per_s").unwrap_or(0.0);
    let number = |path: &[&str]| {
        path.iter()
            .try_fold(&figures, |value, key| value.get(key))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    let rate = number(&["throughput", "requests_per_s"]);
    let share = if baseline_calls > 0.0 {
        round1(100.0 * rate / baseline_calls)
    } else {
        0.0
    };
    let line = format!(
        "MessageCreated→FCM request ({} offline recipients, {}/s): p50 {} p99 {} max {} ms, \
         {} missing, {} duplicates | group of {} ×{} at {}/s: {rate} requests/s ({share} % of \
         baseline {baseline_calls} calls/s), {} of {} requests, each message's lag p50 {} max {} \
         ms, lag after the last send {} ms{}",
        args.recipients,
        args.rate,
        number(&["latency", "latency", "p50_ms"]),
        number(&["latency", "latency", "p99_ms"]),
        number(&["latency", "latency", "max_ms"]),
        number(&["latency", "missing"]),
        number(&["latency", "duplicates"]),
        args.group,
        args.group_messages,
        args.group_rate,
        number(&["throughput", "requests"]),
        number(&["throughput", "expected"]),
        number(&["throughput", "message_lag", "p50_ms"]),
        number(&["throughput", "message_lag", "max_ms"]),
        number(&["throughput", "lag_after_last_send_ms"]),
        if args.channel > 0 {
            format!(
                " | channel of {}: {} requests in {} s, direct messages meanwhile p50 {} p99 {} \
                 ms ({} missing)",
                args.channel,
                number(&["channel", "requests"]),
                number(&["channel", "dispatched_s"]),
                number(&["channel", "direct_meanwhile", "latency", "p50_ms"]),
                number(&["channel", "direct_meanwhile", "latency", "p99_ms"]),
                number(&["channel", "direct_meanwhile", "missing"]),
            )
        } else {
            String::new()
        },
    );
    let mut json = figures;
    json["args"] = json!({
        "recipients": args.recipients,
        "messages": args.messages,
        "rate": args.rate,
        "group": args.group,
        "group_messages": args.group_messages,
        "group_rate": args.group_rate,
        "channel": args.channel,
    });
    json["baseline"] = baseline.json["figures"].clone();
    json["requests_share_of_baseline_pct"] = json!(share);
    Report::new("push", setup, line, json)
}
