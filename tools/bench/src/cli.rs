//! The command line: global flags (which Echo to load, where JSON goes) and one subcommand
//! per scenario, each with defaults sized so `just bench` finishes in a few minutes on the
//! 2-core machines here.
//!
//! One piece past 400 lines: it is the whole command line, one `Args` struct per scenario
//! with its defaults beside it, read top to bottom like `echo-bench --help`; the parsing tests
//! are in cli/tests.rs.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// echo-bench: load Echo and print what it does under it. With no scenario it runs them all.
#[derive(Debug, Clone, Parser)]
#[command(name = "echo-bench", version, about, long_about = None)]
pub struct Cli {
    /// The scenario to run (default: all of them, in the order of `just bench`).
    #[command(subcommand)]
    pub scenario: Option<Scenario>,
    /// Flags every scenario shares.
    #[command(flatten)]
    pub global: Global,
}

/// Flags every scenario shares.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Backends of an Echo the bench starts: embedded (SQLite, in-process bus, in-memory
    /// cache) or real (the local PostgreSQL, NATS and Redis, isolated by a fresh schema,
    /// subject and key prefix).
    #[arg(long, global = true, value_enum, default_value_t = BackendKind::Embedded)]
    pub backend: BackendKind,
    /// How an Echo the bench starts runs: inside this process, or as a child process (the
    /// `--echo-bin` binary). Default: in-process, except `connections`, which measures the
    /// server's memory and so prefers a child.
    #[arg(long, global = true, value_enum)]
    pub server: Option<ServerKind>,
    /// Load a running Echo at this URL (e.g. http://127.0.0.1:8080) instead of starting one.
    /// Its auth.otp_sender must post to `--otp-webhook` so the bench can sign users up.
    #[arg(long, global = true)]
    pub target: Option<String>,
    /// The server binary for `--server child` (build it with `cargo build --release`).
    #[arg(long, global = true, default_value = "target/release/echo")]
    pub echo_bin: PathBuf,
    /// With `--target`: where the bench receives OTP codes (point the target's
    /// ECHO_AUTH__OTP_SENDER at http://ADDR/otp).
    #[arg(long, global = true, default_value = "127.0.0.1:7979")]
    pub otp_webhook: SocketAddr,
    /// With `--target`: the target's JWT signing key (PKCS#8 PEM file), to mint the tokens of
    /// the `connections` scenario's idle streams instead of signing up thousands of users.
    #[arg(long, global = true)]
    pub signing_key: Option<PathBuf>,
    /// With `--target`: the `iss` the target's tokens carry (its auth.jwt_issuer).
    #[arg(long, global = true)]
    pub jwt_issuer: Option<String>,
    /// With `--target`: the server's process id, to read its memory from /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Client HTTP/2 connections carrying the RPCs and streams of latency, throughput,
    /// fanout, presence and baseline: at least this many, more where the streams a scenario
    /// holds open need them (`--streams-per-connection`).
    #[arg(long, global = true, default_value_t = 4)]
    pub connections: usize,
    /// Most long-lived streams (Subscribe, WatchPresence) the bench holds on one connection;
    /// more streams open more connections. Keep it below the server's streams per connection
    /// (Echo's public.max_concurrent_streams, default 100): a stream past it waits for a free
    /// one, and the bench gives up after 30 s.
    #[arg(long, global = true, default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    pub streams_per_connection: usize,
    /// Write every scenario's JSON object to FILE (an array).
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Record where the server's time goes over the measured window of latency, throughput
    /// and fanout: `perf record -F 499 -g -p PID -o FILE`, PID this process for an in-process
    /// server, the child's for a child (with --target: --server-pid). Later windows go to
    /// FILE.2, FILE.3, …; read one with `perf report -i FILE`. Fails at once without perf.
    #[arg(long, global = true, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// `send.queue` of an Echo the bench starts: sends waiting to be stored before OVERLOADED
    /// (default: the server's, 2048). Never applied to a --target, which keeps its own.
    #[arg(long, global = true, help_heading = SERVER_SETTINGS)]
    pub send_queue: Option<usize>,
    /// `send.max_batch` of an Echo the bench starts: most sends in one transaction (default:
    /// the server's, 128). Not applied to a --target.
    #[arg(long, global = true, help_heading = SERVER_SETTINGS)]
    pub send_max_batch: Option<usize>,
    /// `send.committers` of an Echo the bench starts: batches stored at once on PostgreSQL
    /// (default: the server's, 4; SQLite has one writer). Not applied to a --target.
    #[arg(long, global = true, help_heading = SERVER_SETTINGS)]
    pub send_committers: Option<usize>,
    /// `send.commit_timeout` of an Echo the bench starts, in seconds (default: the
    /// server's, 10). Not applied to a --target.
    #[arg(long, global = true, help_heading = SERVER_SETTINGS, value_name = "SECONDS")]
    pub send_commit_timeout: Option<f64>,
}

/// The help heading of the flags that configure an Echo the bench starts.
const SERVER_SETTINGS: &str = "Settings of an Echo the bench starts (never a --target)";

impl Global {
    /// The server settings the flags set.
    pub fn tuning(&self) -> crate::tuning::ServerTuning {
        crate::tuning::ServerTuning {
            send_queue: self.send_queue,
            send_max_batch: self.send_max_batch,
            send_committers: self.send_committers,
            send_commit_timeout: self.send_commit_timeout,
        }
    }
}

/// Which backends an Echo started by the bench uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// SQLite, the in-process bus and the in-memory cache.
    Embedded,
    /// The local PostgreSQL, NATS JetStream and Redis.
    Real,
}

impl BackendKind {
    /// How reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Real => "real",
        }
    }
}

/// Where an Echo started by the bench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerKind {
    /// In this process, on the same runtime as the load (client and server share the cores).
    InProcess,
    /// A child process running `--echo-bin`.
    Child,
}

/// One scenario (issue 7 names them).
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// Every scenario with its defaults.
    All,
    /// Senders → 1 recipient at a fixed rate: send→deliver and SendMessage latency.
    Latency(LatencyArgs),
    /// Many senders in many conversations, as fast as they may: sends/s, deliveries/s, loss.
    Throughput(ThroughputArgs),
    /// 1 sender into groups of G subscribed members: deliveries/s and latency.
    Fanout(FanoutArgs),
    /// K idle Subscribe streams, one connection each and multiplexed: server memory per stream.
    Connections(ConnectionsArgs),
    /// A bare tonic unary echo RPC in this process: calls/s and latency of the RPC stack.
    Baseline(BaselineArgs),
    /// Heartbeats/s and latency, GetPresence of 100 ids, and one status change reaching W
    /// watchers (on the same instance and, on the real backends, on another).
    Presence(PresenceArgs),
    /// Pushes against the in-process fake push service: MessageCreated → provider request
    /// latency for offline recipients, and provider requests/s draining a group's fan-out.
    Push(PushArgs),
    /// A steady mixed load for a long time (sends, history, Subscribe churn on new
    /// connections, heartbeats): the server's memory, descriptors, tasks, buffered items and
    /// p99 over time. Not part of `all`.
    Soak(SoakArgs),
}

impl Scenario {
    /// The scenarios `all` runs, each with its defaults, cheapest first.
    pub fn every() -> Vec<Scenario> {
        vec![
            Scenario::Baseline(BaselineArgs::default()),
            Scenario::Latency(LatencyArgs::default()),
            Scenario::Throughput(ThroughputArgs::default()),
            Scenario::Fanout(FanoutArgs::default()),
            Scenario::Connections(ConnectionsArgs::default()),
            Scenario::Presence(PresenceArgs::default()),
            Scenario::Push(PushArgs::default()),
        ]
    }

    /// The scenario's name, as in issue 7 and the reports.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::All => "all",
            Scenario::Latency(_) => "latency",
            Scenario::Throughput(_) => "throughput",
            Scenario::Fanout(_) => "fanout",
            Scenario::Connections(_) => "connections",
            Scenario::Baseline(_) => "baseline",
            Scenario::Presence(_) => "presence",
            Scenario::Push(_) => "push",
            Scenario::Soak(_) => "soak",
        }
    }
}

/// `soak`: pairs of users in direct conversations under a steady mixed load.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Seconds measured after the warm-up (3600 for the hour; CI runs 45).
    #[arg(long, default_value_t = 300)]
    pub duration: u64,
    /// Seconds of load before the base sample.
    #[arg(long, default_value_t = 15)]
    pub warmup: u64,
    /// SendMessage calls per second (half the measured maximum is the level: see
    /// `throughput`); every fourth is followed by a ListMessages.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Seconds between samples of the server.
    #[arg(long, default_value_t = 5)]
    pub sample_every: u64,
    /// Seconds between a stream's close-and-resume on a new connection.
    #[arg(long, default_value_t = 5)]
    pub churn_every: u64,
    /// Fail (exit status) on lost messages, descriptor or task growth, or leftovers.
    #[arg(long)]
    pub check: bool,
    /// With --check, also fail on memory growth ≥ 5 % or a p99 moving more than ×1.2
    /// between segments of `--segment` seconds.
    #[arg(long)]
    pub strict: bool,
    /// Seconds of each segment whose SendMessage p99 `--strict` compares (the measured time
    /// is cut into segments of this length; a 5 s window's p99 is its ~10th-slowest call,
    /// noise rather than drift).
    #[arg(long, default_value_t = 300)]
    pub segment: u64,
}

/// `latency`: a pool of sender accounts (one would hit the per-user send limit) each in a
/// direct conversation with one recipient whose single stream receives everything.
#[derive(Debug, Clone, Args)]
pub struct LatencyArgs {
    /// Messages per second, spread over the sender pool.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Seconds measured.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds sent at the same rate before measuring (connections, caches, JIT-free but
    /// not allocation-free).
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Sender accounts (default: as few as the send limit of 100 + 10/s per user allows).
    #[arg(long)]
    pub senders: Option<usize>,
}

impl Default for LatencyArgs {
    fn default() -> Self {
        Self {
            rate: 1000,
            duration: 10,
            warmup: 1,
            senders: None,
        }
    }
}

/// `throughput`: senders paired in direct conversations, both sides subscribed.
#[derive(Debug, Clone, Args)]
pub struct ThroughputArgs {
    /// Sender accounts (pairs share a direct conversation; each has one stream).
    #[arg(long, default_value_t = 200)]
    pub senders: usize,
    /// Messages each sender sends back to back (100 is the per-user burst; more waits for
    /// the 10/s refill).
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
}

impl Default for ThroughputArgs {
    fn default() -> Self {
        Self {
            senders: 200,
            messages: 100,
        }
    }
}

/// `fanout`: one owner posting into groups whose every member has a stream.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Group sizes (members besides the sender), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000])]
    pub members: Vec<usize>,
    /// Messages the sender posts into each group.
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Messages per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Sustained: send at --rate for this many seconds (instead of --messages), from as
    /// many senders as the per-user send limit (a burst of 100, then 10/s) needs; they are
    /// members of the group without streams. Deliveries/s and send→deliver cover the whole
    /// window. E.g. `fanout --members 1000 --rate 300 --duration 10`.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// With --duration: senders (default: as few as the per-user send limit allows).
    #[arg(long, requires = "duration")]
    pub senders: Option<usize>,
}

impl Default for FanoutArgs {
    fn default() -> Self {
        Self {
            members: vec![100, 1000],
            messages: 100,
            rate: 200,
            duration: None,
            senders: None,
        }
    }
}

/// `connections`: idle streams; server memory before and after.
#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    /// Idle streams (K) in each of the two layouts.
    #[arg(long, default_value_t = 15_000)]
    pub streams: usize,
    /// Connections per 127.0.0.x source address in the one-connection-per-stream layout.
    #[arg(long, default_value_t = 2_000)]
    pub per_address: usize,
    /// Connections carrying the K streams in the multiplexed layout (at least; more if K
    /// needs them at `--streams-per-connection` a connection).
    #[arg(long, default_value_t = 4)]
    pub mux_connections: usize,
    /// Streams being opened at once.
    #[arg(long, default_value_t = 200)]
    pub open_concurrency: usize,
    /// Seconds to wait after opening before reading the server's memory.
    #[arg(long, default_value_t = 3)]
    pub settle: u64,
}

impl Default for ConnectionsArgs {
    fn default() -> Self {
        Self {
            streams: 15_000,
            per_address: 2_000,
            mux_connections: 4,
            open_concurrency: 200,
            settle: 3,
        }
    }
}

/// `baseline`: closed-loop callers of a bare tonic unary echo RPC.
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    /// Concurrent callers (the same as throughput's senders by default).
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
    /// Payload bytes per call (about a SendMessage request).
    #[arg(long, default_value_t = 120)]
    pub payload: usize,
}

impl Default for BaselineArgs {
    fn default() -> Self {
        Self {
            concurrency: 200,
            duration: 5,
            payload: 120,
        }
    }
}

/// `presence`: heartbeats of many devices, GetPresence of 100 ids, and a status change fanned
/// out to W watch streams of one user.
#[derive(Debug, Clone, Args)]
pub struct PresenceArgs {
    /// Devices that heartbeat (tokens minted with the server's key; each device may heartbeat
    /// once a second after a burst of 2, so this bounds the rate at devices/s).
    #[arg(long, default_value_t = 20_000)]
    pub devices: usize,
    /// Closed-loop heartbeat callers.
    #[arg(long, default_value_t = 200)]
    pub heartbeat_callers: usize,
    /// Seconds of closed-loop heartbeats (the maximum rate).
    #[arg(long, default_value_t = 10)]
    pub heartbeat_duration: u64,
    /// Heartbeats per second of the open-loop latency run.
    #[arg(long, default_value_t = 5_000)]
    pub heartbeat_rate: u32,
    /// Seconds of the open-loop heartbeat run.
    #[arg(long, default_value_t = 10)]
    pub rate_duration: u64,
    /// GetPresence calls (100 ids each) per second.
    #[arg(long, default_value_t = 200)]
    pub get_rate: u32,
    /// Seconds of GetPresence calls.
    #[arg(long, default_value_t = 5)]
    pub get_duration: u64,
    /// Watchers (W): signed-up users, each with one WatchPresence stream of the target, who
    /// adds them all to its contacts (so at most 10,000, the contact limit).
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    /// Status changes of the target (AWAY and ONLINE alternately).
    #[arg(long, default_value_t = 10)]
    pub changes: usize,
    /// Milliseconds between changes (ONLINE↔AWAY is damped to once per 2 s per user).
    #[arg(long, default_value_t = 2_500)]
    pub change_every_ms: u64,
    /// Watch streams being opened at once.
    #[arg(long, default_value_t = 64)]
    pub open_concurrency: usize,
    /// Seconds to wait after opening the watches before reading memory.
    #[arg(long, default_value_t = 3)]
    pub settle: u64,
    /// Skip the second instance (real backends, in-process only).
    #[arg(long)]
    pub no_cross: bool,
}

/// `push`: notification's delivery pipeline against the in-process fake push service (FCM).
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Offline recipients, each with an FCM token and a direct conversation with the sender.
    #[arg(long, default_value_t = 200)]
    pub recipients: usize,
    /// Messages of the latency run (round robin over the recipients).
    #[arg(long, default_value_t = 400)]
    pub messages: usize,
    /// Messages per second of the latency run.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// Members (besides the sender) of the group whose fan-out measures requests/s.
    #[arg(long, default_value_t = 1_000)]
    pub group: usize,
    /// Messages sent into the group (after one probe whose pushes are awaited first).
    #[arg(long, default_value_t = 10)]
    pub group_messages: usize,
    /// Messages per second into the group (0: as fast as the sender may). The issue's
    /// figure is 5: a 1,000-member group at 5 messages/s is 5,000 pushes/s.
    #[arg(long, default_value_t = 5)]
    pub group_rate: u32,
    /// Members of a channel seeded straight into notification's database, then one post
    /// while direct messages go on at `--rate` (0: skip; 100000 for the figure).
    #[arg(long, default_value_t = 0)]
    pub channel: usize,
    /// The dispatcher's `notification.dispatch_batch` (unset: the configuration default).
    #[arg(long)]
    pub dispatch_batch: Option<usize>,
    /// The dispatcher's `notification.dispatch_concurrency` (unset: the default).
    #[arg(long)]
    pub dispatch_concurrency: Option<usize>,
}

impl Default for PushArgs {
    fn default() -> Self {
        Self {
            recipients: 200,
            messages: 400,
            rate: 20,
            group: 1_000,
            group_messages: 10,
            group_rate: 5,
            channel: 0,
            dispatch_batch: None,
            dispatch_concurrency: None,
        }
    }
}

impl Default for PresenceArgs {
    fn default() -> Self {
        Self {
            devices: 20_000,
            heartbeat_callers: 200,
            heartbeat_duration: 10,
            heartbeat_rate: 5_000,
            rate_duration: 10,
            get_rate: 200,
            get_duration: 5,
            watchers: 10_000,
            changes: 10,
            change_every_ms: 2_500,
            open_concurrency: 64,
            settle: 3,
            no_cross: false,
        }
    }
}

#[cfg(test)]
mod tests;
