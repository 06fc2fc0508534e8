//! echo-bench: Echo's load generator (issue 7, DESIGN §12: benchmarks print figures; tests
//! assert behaviour). Starts an Echo (in this process or as a child, on the embedded or the
//! real backends) or loads a running one, runs the scenarios, prints one summary line per
//! scenario and optionally writes them all as JSON.

mod check;
mod cli;
mod client;
mod profile;
mod report;
mod scenarios;
mod server;
mod stats;
mod tuning;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Scenario};
use crate::report::{Failed, Report};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The in-process server's logs, when asked for (`RUST_LOG=echo_notification=debug`): how
    // a figure is taken apart. Off by default, so logging costs the figures nothing.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let server_default = echo_config::PublicPortSettings::default().max_concurrent_streams;
    if cli.global.streams_per_connection >= server_default as usize {
        report::note(&format!(
            "--streams-per-connection {} is not below Echo's default public.max_concurrent_streams \
             ({server_default}): past the server's own, streams and calls wait for a free slot, \
             and a stream not open after {} s fails the scenario",
            cli.global.streams_per_connection,
            client::live::OPEN_WITHIN.as_secs(),
        ));
    }
    if cli.global.profile.is_some()
        && let Err(error) = profile::check_available()
    {
        eprintln!("{error:#}");
        return ExitCode::FAILURE;
    }
    let tuning = cli.global.tuning().describe();
    if !tuning.is_empty() {
        if cli.global.target.is_some() {
            report::note(&format!(
                "{tuning}: not applied to --target {}, which runs with its own configuration",
                cli.global.target.as_deref().unwrap_or_default()
            ));
        } else {
            report::note(&format!("the server the bench starts runs with {tuning}"));
        }
    }
    let scenarios = match cli.scenario.clone() {
        None | Some(Scenario::All) => Scenario::every(),
        Some(one) => vec![one],
    };
    let mut reports: Vec<Report> = Vec::new();
    let mut failed = Vec::new();
    let interrupt = interrupted();
    tokio::pin!(interrupt);
    for scenario in &scenarios {
        eprintln!("== {}", scenario.name());
        // A signal drops the scenario's future, and with it the server it started: a child is
        // killed and its isolation dropped on the way (server/child.rs).
        let outcome = tokio::select! {
            outcome = scenarios::run(scenario, &cli.global) => outcome,
            signal = &mut interrupt => {
                eprintln!("interrupted by {}: stopped what the bench started", signal.name);
                write_json(&cli.global.json, &reports);
                return ExitCode::from(signal.exit_code);
            }
        };
        let error = match outcome {
            Ok(done) => {
                for report in done {
                    println!("{}", report.line);
                    reports.push(report);
                }
                continue;
            }
            Err(error) => error,
        };
        failed.push(scenario.name());
        match error.downcast::<Failed>() {
            Ok(Failed {
                reports: measured,
                reason,
            }) => {
                for report in measured {
                    println!("{}", report.line);
                    reports.push(report);
                }
                eprintln!("{} failed: {reason}", scenario.name());
            }
            Err(error) => eprintln!("{} failed: {error:#}", scenario.name()),
        }
    }
    if let Some(line) = against_baseline(&reports) {
        println!("{line}");
    }
    if !write_json(&cli.global.json, &reports) {
        return ExitCode::FAILURE;
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// Write every report's JSON to `path` (if asked); false if that failed.
fn write_json(path: &Option<std::path::PathBuf>, reports: &[Report]) -> bool {
    let Some(path) = path else {
        return true;
    };
    let all: Vec<&serde_json::Value> = reports.iter().map(|r| &r.json).collect();
    let written = serde_json::to_string_pretty(&all)
        .map_err(std::io::Error::other)
        .and_then(|text| std::fs::write(path, text + "\n"));
    if let Err(error) = &written {
        eprintln!("could not write {}: {error}", path.display());
    }
    written.is_ok()
}

/// A signal that ends the bench early.
struct Signal {
    name: &'static str,
    /// 128 + its number, as a shell reports a process it ended.
    exit_code: u8,
}

/// Ctrl-C (SIGINT) or SIGTERM. Once this is first polled the signals no longer end the
/// process by themselves, so the bench gets to clean up.
async fn interrupted() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    const SIGINT: Signal = Signal {
        name: "SIGINT",
        exit_code: 130,
    };
    const SIGTERM: Signal = Signal {
        name: "SIGTERM",
        exit_code: 143,
    };
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("warning: cannot watch for SIGINT/SIGTERM: a signal will leave the child's data");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => SIGINT,
        _ = term.recv() => SIGTERM,
    }
}

/// SendMessage throughput as a share of the bare tonic baseline of the same run (issue 7: the
/// embedded default should reach half of it).
fn against_baseline(reports: &[Report]) -> Option<String> {
    let scenario = |name: &str| {
        reports
            .iter()
            .find(|r| r.json.get("scenario").and_then(|s| s.as_str()) == Some(name))
    };
    let baseline = scenario("baseline")?.figure("calls_per_s")?;
    let sends = scenario("throughput")?.figure("sends_per_s")?;
    if baseline <= 0.0 {
        return None;
    }
    Some(format!(
        "{:<12} durable sends/s = {:.1} % of the bare tonic calls/s ({sends} / {baseline})",
        "vs baseline",
        100.0 * sends / baseline
    ))
}
