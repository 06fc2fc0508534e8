//! echo-bench: Echo's load generator (issue 7, DESIGN §12: benchmarks print figures; tests
//! assert behaviour). Starts an Echo (in this process or as a child, on the embedded or the
//! real backends) or loads a running one, runs the scenarios, prints one summary line per
//! scenario and optionally writes them all as JSON.

mod check;
mod cli;
mod client;
mod report;
mod scenarios;
mod server;
mod stats;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Scenario};
use crate::report::Report;

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
    let scenarios = match cli.scenario.clone() {
        None | Some(Scenario::All) => Scenario::every(),
        Some(one) => vec![one],
    };
    let mut reports: Vec<Report> = Vec::new();
    let mut failed = Vec::new();
    for scenario in &scenarios {
        eprintln!("== {}", scenario.name());
        match scenarios::run(scenario, &cli.global).await {
            Ok(done) => {
                for report in done {
                    println!("{}", report.line);
                    reports.push(report);
                }
            }
            Err(error) => {
                eprintln!("{} failed: {error:#}", scenario.name());
                failed.push(scenario.name());
            }
        }
    }
    if let Some(line) = against_baseline(&reports) {
        println!("{line}");
    }
    if let Some(path) = &cli.global.json {
        let all: Vec<&serde_json::Value> = reports.iter().map(|r| &r.json).collect();
        let written = serde_json::to_string_pretty(&all)
            .map_err(std::io::Error::other)
            .and_then(|text| std::fs::write(path, text + "\n"));
        if let Err(error) = written {
            eprintln!("could not write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failed: {}", failed.join(", "));
        ExitCode::FAILURE
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
