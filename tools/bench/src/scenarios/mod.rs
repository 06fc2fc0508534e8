//! The scenarios of issue 7. Each starts its own Echo (so one scenario's data does not slow the
//! next), loads it, stops it, and reports.

pub mod baseline;
pub mod connections;
pub mod fanout;
pub mod latency;
pub mod presence;
pub mod push;
pub mod soak;
pub mod stream_floor;
pub mod throughput;

use std::collections::BTreeMap;

use crate::cli::{Global, Scenario, ServerKind};
use crate::client::Pool;
use crate::report::{Progress, Report, Setup};
use crate::server::{Echo, ServerSpec};
use crate::stats::Clock;

/// Run one scenario (`All` is expanded by the caller).
pub async fn run(scenario: &Scenario, global: &Global) -> anyhow::Result<Vec<Report>> {
    match scenario {
        Scenario::All => Ok(Vec::new()),
        Scenario::Latency(args) => latency::run(args, global).await,
        Scenario::Throughput(args) => throughput::run(args, global).await,
        Scenario::Fanout(args) => fanout::run(args, global).await,
        Scenario::Connections(args) => connections::run(args, global).await,
        Scenario::Baseline(args) => baseline::run(args, global).await,
        Scenario::Presence(args) => presence::run(args, global).await,
        Scenario::Push(args) => push::run(args, global).await,
        Scenario::Soak(args) => soak::run(args, global).await,
    }
}

/// A started Echo and what loading it takes.
pub struct Run {
    /// The Echo.
    pub echo: Echo,
    /// Client connections to it.
    pub pool: Pool,
    /// The run's clock (message stamps).
    pub clock: Clock,
    /// Progress bars.
    pub progress: Progress,
    /// How reports name the setup.
    pub setup: Setup,
    /// `--profile`: where `perf record` writes the measured window's profile.
    pub profile: Option<std::path::PathBuf>,
}

impl Run {
    /// Start the Echo the flags describe (`preferred` placement unless they say otherwise),
    /// run `body` against it, and stop it whatever `body` returned.
    pub async fn with<T>(
        global: &Global,
        preferred: ServerKind,
        body: impl AsyncFnOnce(&Run) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let spec = ServerSpec::from_flags(global, preferred);
        let progress = Progress::new(global.quiet);
        let spinner = progress.spinner("starting echo");
        let echo = Echo::start(&spec).await;
        spinner.finish_and_clear();
        let echo = echo?;
        let pool = match Pool::connect(
            &echo.endpoint,
            global.connections,
            global.streams_per_connection,
        )
        .await
        {
            Ok(pool) => pool,
            Err(error) => {
                let _ = echo.stop().await;
                return Err(error);
            }
        };
        let run = Run {
            echo,
            pool,
            clock: Clock::start(),
            progress,
            setup: spec.setup(),
            profile: global.profile.clone(),
        };
        let outcome = body(&run).await;
        let stopped = run.echo.stop().await;
        let value = outcome?;
        stopped?;
        Ok(value)
    }
}

/// Failed calls by code and reason.
#[derive(Debug, Default, Clone)]
pub struct Failures(BTreeMap<String, u64>);

impl Failures {
    /// Count one.
    pub fn add(&mut self, label: String) {
        *self.0.entry(label).or_default() += 1;
    }

    /// Take in another's counts.
    pub fn extend(&mut self, other: Failures) {
        for (label, count) in other.0 {
            *self.0.entry(label).or_default() += count;
        }
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// As JSON: `{label: count}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!(self.0)
    }

    /// ", 3 failed (Unavailable×3)" or nothing.
    pub fn suffix(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self.0.iter().map(|(l, c)| format!("{l}×{c}")).collect();
        format!(", {} failed ({})", self.total(), parts.join(" "))
    }
}

/// Issue `total` calls at `rate` a second, open loop on a 1 ms tick: call `i` starts when its
/// time comes whether or not earlier ones have answered, so a slow server shows as latency,
/// not as a lower rate. At most `max_in_flight` run at once; ticks that found the limit
/// reached are counted (the offered rate was then not held). Returns when all have answered.
pub async fn paced<F, Fut>(
    rate: u32,
    total: u64,
    max_in_flight: usize,
    bar: &indicatif::ProgressBar,
    mut issue: F,
) -> PacedRun
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(1));
    let mut issued = 0u64;
    let mut overflows = 0u64;
    while issued < total {
        ticks.tick().await;
        let due = ((started.elapsed().as_secs_f64() * f64::from(rate)) as u64).min(total);
        while issued < due {
            while tasks.try_join_next().is_some() {}
            if tasks.len() >= max_in_flight {
                overflows += 1;
                break;
            }
            tasks.spawn(issue(issued));
            issued += 1;
        }
        bar.set_position(issued);
    }
    while tasks.join_next().await.is_some() {}
    PacedRun {
        elapsed: started.elapsed(),
        overflows,
    }
}

/// How a paced run went.
#[derive(Debug, Clone, Copy)]
pub struct PacedRun {
    /// From the first call to the last answer.
    pub elapsed: std::time::Duration,
    /// Ticks that found `max_in_flight` calls still unanswered.
    pub overflows: u64,
}
