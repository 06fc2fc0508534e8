//! `presence` (spec §A7): what PresenceService does under load, each figure beside the bare
//! tonic baseline of the same run (run first, in this process, with its defaults).
//!
//! 1. **Heartbeats** of D devices (tokens minted with the server's key: Heartbeat needs a
//!    valid token, not an account): every device once (it comes online: a seed from the
//!    database and a hint), then closed loop for the maximum rate, then open loop at a fixed
//!    rate for latency. A device may heartbeat once a second after a burst of 2, so D bounds
//!    the rate at D/s; RATE_LIMITED answers are counted, not retried.
//! 2. **GetPresence of 100 ids** by the target user, of 100 watchers who heartbeated and have
//!    the target in their contacts (so every entry is visible, and checked to be ONLINE).
//! 3. **Fan-out**: W signed-up watchers, each with one WatchPresence stream of the target,
//!    multiplexed at most `--streams-per-connection` (90) a connection over `--connections`
//!    or as many more as that takes (the server takes 100 streams a connection). Visibility:
//!    the target adds every watcher to its contacts (its `last_seen` setting stays the
//!    default, CONTACTS). The target alternates SetStatus AWAY / ONLINE `--change-every-ms`
//!    apart (ONLINE↔AWAY is damped to once per 2 s); latency runs from just before each
//!    SetStatus is sent to each watcher's item.
//!    Memory per open watch is the RSS delta of opening them / W.
//! 4. **Across instances** (real backends, in-process only): a second instance sharing the
//!    backends; the watchers move their streams to it and the target changes on the first.
//!
//! Beside the unary baseline, the fan-out has a floor of its own, run second: the same W
//! streams over the same connections on a bare tonic streaming RPC, one item handed to each
//! stream's channel per change ([`super::stream_floor`]).
//!
//! Everything is bounded: fixed counts and durations, waits with deadlines.

mod reads;
mod watchers;

use std::time::Duration;

use anyhow::{Context as _, bail};
use echo_testkit::{Backend, OtpPurpose, TestMesh};
use serde_json::json;
use uuid::Uuid;

use super::Run;
use super::stream_floor::Floor;
use crate::cli::{BackendKind, BaselineArgs, Global, PresenceArgs, ServerKind};
use crate::client::Pool;
use crate::client::users::{self, Codes, User};
use crate::report::{Failed, Progress, Report, Setup, note, round1};
use crate::server::{Echo, ServerSpec, memory_kib};
use crate::stats::Clock;

/// Most watchers: the target adds each to its contacts, and a user keeps at most 10,000.
const MAX_WATCHERS: usize = 10_000;
/// Ids per GetPresence (its maximum).
const GET_IDS: usize = 100;
/// Time between the floor's items (bare tonic has no damping to respect).
const FLOOR_EVERY: Duration = Duration::from_millis(300);

/// The Echo under load, as the phases need it.
enum Server<'a> {
    /// One the bench's server module started (or reaches).
    Echo(&'a Echo),
    /// The first of two in-process instances this scenario started itself.
    Mesh(&'a TestMesh),
}

impl Server<'_> {
    /// A token for a new device of `user`, signed as auth signs them.
    fn mint(&self, user: Uuid) -> anyhow::Result<String> {
        match self {
            Server::Echo(echo) => echo.mint_token(user),
            Server::Mesh(mesh) => Ok(mesh.mint_token(user)),
        }
    }

    /// The server's resident memory.
    fn memory_kib(&self) -> Option<u64> {
        match self {
            Server::Echo(echo) => echo.memory_kib(),
            Server::Mesh(_) => memory_kib(std::process::id()),
        }
    }

    /// Whose memory `memory_kib` reads.
    fn memory_of(&self) -> &'static str {
        match self {
            Server::Echo(echo) if !echo.is_in_process() => "server process",
            _ => "bench process (client and server)",
        }
    }
}

/// Codes captured by an in-process mesh of this scenario's own.
pub(crate) struct MeshCodes<'a>(pub(crate) &'a TestMesh);

impl Codes for MeshCodes<'_> {
    async fn code_for(&self, phone: &str, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let code = self.0.otp.last_code(phone, OtpPurpose::Register);
            if code.is_some() || tokio::time::Instant::now() > deadline {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// What every phase works with.
struct Bench<'a> {
    args: &'a PresenceArgs,
    server: Server<'a>,
    /// Connections to the instance under load.
    pool: &'a Pool,
    /// Connections to a second instance sharing its backends, if there is one.
    other: Option<&'a Pool>,
    clock: Clock,
    progress: Progress,
}

/// Run the scenario.
pub async fn run(args: &PresenceArgs, global: &Global) -> anyhow::Result<Vec<Report>> {
    if args.watchers == 0 || args.watchers > MAX_WATCHERS {
        bail!(
            "--watchers must be 1-{MAX_WATCHERS} (the target adds each to its contacts, and \
             a user keeps at most {MAX_WATCHERS})"
        );
    }
    if args.devices == 0 || args.changes == 0 {
        bail!("--devices and --changes must be above zero");
    }
    let pair = global.backend == BackendKind::Real
        && global.target.is_none()
        && global.server.unwrap_or(ServerKind::InProcess) == ServerKind::InProcess
        && !args.no_cross;
    match all_phases(args, global, pair).await {
        Ok(report) => Ok(vec![report]),
        Err(error) => {
            // A report that says why there are no figures, in the summary and the JSON.
            let reason = format!("{error:#}");
            let setup = if pair {
                pair_setup()
            } else {
                ServerSpec::from_flags(global, ServerKind::InProcess).setup()
            };
            let what = format!("W={}", args.watchers);
            let figures = json!({ "args": args_json(args, global) });
            let report = Report::not_measured("presence", &setup, &what, figures, &reason);
            Err(Failed::new(vec![report], reason).into())
        }
    }
}

/// The baseline, the floor and the phases: the report.
async fn all_phases(args: &PresenceArgs, global: &Global, pair: bool) -> anyhow::Result<Report> {
    let baseline = super::baseline::run(&BaselineArgs::default(), global)
        .await?
        .into_iter()
        .next()
        .context("the baseline reported nothing")?;
    // The same fan-out on bare tonic: the floor this machine sets for the watchers' figures.
    let floor = super::stream_floor::run(
        &Floor {
            streams: args.watchers,
            connections: global.connections,
            streams_per_connection: global.streams_per_connection,
            changes: args.changes,
            every: FLOOR_EVERY,
        },
        global.quiet,
    )
    .await?;
    let (setup, figures) = if pair {
        with_pair(args, global).await?
    } else {
        Run::with(global, ServerKind::InProcess, async |run| {
            let users =
                users::sign_up(&run.echo, &run.pool, args.watchers + 1, &run.progress).await?;
            let bench = Bench {
                args,
                server: Server::Echo(&run.echo),
                pool: &run.pool,
                other: None,
                clock: run.clock,
                progress: run.progress,
            };
            Ok((run.setup.clone(), measure(&bench, users).await?))
        })
        .await?
    };
    Ok(report(args, global, &setup, &baseline, &floor, figures))
}

/// Two in-process instances on the real backends, sharing schemas, subjects, keys and the
/// signing key (the testkit's sibling: a second process of the same deployment).
async fn with_pair(
    args: &PresenceArgs,
    global: &Global,
) -> anyhow::Result<(Setup, serde_json::Value)> {
    let progress = Progress::new(global.quiet);
    let spinner = progress.spinner("starting two echo instances");
    let Some(first) = TestMesh::start_with(Backend::Real, "all", |_| {}).await else {
        bail!(
            "the real backends are not reachable (PostgreSQL 127.0.0.1:5432, NATS :4222, \
             Redis :6379; `just services` starts them)"
        );
    };
    let second = first.start_sibling().await;
    spinner.finish_and_clear();
    let outcome = async {
        let pool = Pool::connect(
            &format!("http://{}", first.addr()),
            global.connections,
            global.streams_per_connection,
        )
        .await?;
        let other = Pool::connect(
            &format!("http://{}", second.addr()),
            global.connections,
            global.streams_per_connection,
        )
        .await?;
        let users = users::sign_up(&MeshCodes(&first), &pool, args.watchers + 1, &progress).await?;
        let bench = Bench {
            args,
            server: Server::Mesh(&first),
            pool: &pool,
            other: Some(&other),
            clock: Clock::start(),
            progress,
        };
        measure(&bench, users).await
    }
    .await;
    let second_stopped = second.mesh.shutdown().await;
    let first_stopped = first.mesh.shutdown().await;
    let figures = outcome?;
    second_stopped?;
    first_stopped?;
    Ok((pair_setup(), figures))
}

/// How reports name two in-process instances on the real backends.
fn pair_setup() -> Setup {
    Setup {
        backend: "real".into(),
        server: "in-process ×2".into(),
    }
}

/// Every phase against one Echo (and its sibling, if any); the figures as JSON.
async fn measure(bench: &Bench<'_>, users: Vec<User>) -> anyhow::Result<serde_json::Value> {
    let (target, watchers) = users.split_first().context("no users signed up")?;
    let readers = &watchers[..watchers.len().min(GET_IDS)];
    let contacts = watchers::befriend(bench, target, watchers, readers).await?;
    let heartbeats = reads::heartbeats(bench).await?;
    let get = reads::get_presence(bench, target, readers).await?;
    let fanout = watchers::fan_out(bench, target, watchers).await?;
    Ok(json!({
        "contacts": contacts,
        "heartbeats": heartbeats,
        "get_presence": get,
        "fanout": fanout.same,
        "fanout_across": fanout.across,
    }))
}

/// The summary line and the JSON object.
fn report(
    args: &PresenceArgs,
    global: &Global,
    setup: &Setup,
    baseline: &Report,
    floor: &serde_json::Value,
    figures: serde_json::Value,
) -> Report {
    let baseline_calls = baseline.figure("calls_per_s").unwrap_or(0.0);
    let share = |rate: f64| share_of(rate, baseline_calls);
    let number = |path: &[&str]| {
        path.iter()
            .try_fold(&figures, |value, key| value.get(key))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    let max_rate = number(&["heartbeats", "max_per_s"]);
    let get_rate = number(&["get_presence", "calls_per_s"]);
    let items_rate = number(&["fanout", "items_per_s"]);
    let mut line = format!(
        "heartbeats: max {max_rate}/s ({} % of baseline {baseline_calls} calls/s; {} devices, \
         {} rate-limited), first {}/s | at {}/s: p50 {} p99 {} ms | GetPresence({GET_IDS}) at \
         {}/s: p50 {} p99 {} ms | fan-out W={} ×{}: p50 {} p99 {} max {} ms, {} lost, \
         {items_rate} items/s, {} KiB per watch ({})",
        share(max_rate),
        args.devices,
        number(&["heartbeats", "max_rate_limited"]),
        number(&["heartbeats", "first_per_s"]),
        args.heartbeat_rate,
        number(&["heartbeats", "at_rate", "p50_ms"]),
        number(&["heartbeats", "at_rate", "p99_ms"]),
        get_rate,
        number(&["get_presence", "latency", "p50_ms"]),
        number(&["get_presence", "latency", "p99_ms"]),
        args.watchers,
        args.changes,
        number(&["fanout", "latency", "p50_ms"]),
        number(&["fanout", "latency", "p99_ms"]),
        number(&["fanout", "latency", "max_ms"]),
        number(&["fanout", "lost"]),
        number(&["fanout", "per_watch_kib"]),
        figures["fanout"]["memory_of"].as_str().unwrap_or("?"),
    );
    let floor_p99 = floor["latency"]["p99_ms"].as_f64().unwrap_or(0.0);
    let times = |value: f64, of: f64| if of > 0.0 { round1(value / of) } else { 0.0 };
    let fanout_p99 = number(&["fanout", "latency", "p99_ms"]);
    let floor_rate = floor["items_per_s"].as_f64().unwrap_or(0.0);
    line.push_str(&format!(
        " | bare tonic floor of that fan-out: p50 {} p99 {floor_p99} ms, {floor_rate} items/s \
         (Echo's p99 ×{}, items/s {} %)",
        floor["latency"]["p50_ms"].as_f64().unwrap_or(0.0),
        times(fanout_p99, floor_p99),
        share_of(items_rate, floor_rate),
    ));
    if figures["fanout_across"].is_null() {
        if global.backend == BackendKind::Real && !args.no_cross {
            note("across instances: only with the real backends in-process (two instances)");
        }
    } else {
        line.push_str(&format!(
            " | across instances: p50 {} p99 {} max {} ms, {} lost",
            number(&["fanout_across", "latency", "p50_ms"]),
            number(&["fanout_across", "latency", "p99_ms"]),
            number(&["fanout_across", "latency", "max_ms"]),
            number(&["fanout_across", "lost"]),
        ));
    }
    let mut json = figures;
    json["args"] = args_json(args, global);
    json["baseline"] = baseline.json["figures"].clone();
    json["fanout_floor"] = floor.clone();
    json["fanout_p99_over_floor"] = json!(times(fanout_p99, floor_p99));
    json["fanout_items_share_of_floor_pct"] = json!(share_of(items_rate, floor_rate));
    json["heartbeats_max_share_of_baseline_pct"] = json!(share(max_rate));
    json["get_presence_share_of_baseline_pct"] = json!(share(get_rate));
    Report::new("presence", setup, line, json)
}

/// The parameters of a run, as its JSON's `args`.
fn args_json(args: &PresenceArgs, global: &Global) -> serde_json::Value {
    json!({
        "devices": args.devices,
        "heartbeat_callers": args.heartbeat_callers,
        "heartbeat_duration_s": args.heartbeat_duration,
        "heartbeat_rate": args.heartbeat_rate,
        "rate_duration_s": args.rate_duration,
        "get_rate": args.get_rate,
        "get_duration_s": args.get_duration,
        "watchers": args.watchers,
        "changes": args.changes,
        "change_every_ms": args.change_every_ms,
        "client_connections": global.connections,
        "streams_per_connection": global.streams_per_connection,
    })
}

/// `part` as a percentage of `whole` (0 when there is no whole).
fn share_of(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        round1(100.0 * part / whole)
    } else {
        0.0
    }
}
