//! What a scenario hands back: one summary line for people, one JSON object for tools; and the
//! progress bars shown while it runs.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

/// One scenario's (or one variant's, e.g. a fan-out size) figures.
#[derive(Debug, Clone)]
pub struct Report {
    /// The summary line.
    pub line: String,
    /// The same figures and the parameters that produced them.
    pub json: Value,
}

impl Report {
    /// A report for `scenario` on `setup`, with `figures` (a JSON object).
    pub fn new(scenario: &str, setup: &Setup, line: String, figures: Value) -> Self {
        let json = json!({
            "scenario": scenario,
            "backend": setup.backend,
            "server": setup.server,
            "figures": figures,
        });
        Self {
            line: format!("{scenario:<12} [{} {}] {line}", setup.backend, setup.server),
            json,
        }
    }

    /// This report, marked as the figures of a failed run: `"failed": reason` in its JSON, and
    /// its line says so.
    pub fn failed(mut self, reason: &str) -> Self {
        self.json["failed"] = json!(reason);
        self.line.push_str(" | FAILED");
        self
    }

    /// The report of a part that failed before it measured anything: its line says `what`
    /// was not measured, its JSON holds `figures` (the parameters) and `"failed": reason`.
    pub fn not_measured(
        scenario: &str,
        setup: &Setup,
        what: &str,
        figures: Value,
        reason: &str,
    ) -> Self {
        Self::new(scenario, setup, format!("{what}: not measured"), figures).failed(reason)
    }

    /// A figure of the JSON object, by key (for comparisons between scenarios).
    pub fn figure(&self, key: &str) -> Option<f64> {
        self.json.get("figures")?.get(key)?.as_f64()
    }
}

/// The error of a scenario that failed after measuring: what it measured still reaches the
/// summary and the JSON (a failed verdict is when the figures matter most). Any scenario may
/// return it (`Err(Failed::new(reports, reason).into())`, or built with only the failed
/// parts' reports marked, e.g. [`Report::not_measured`]); `main` finds it in the error.
#[derive(Debug)]
pub struct Failed {
    /// The reports ([`Failed::new`] marks each failed).
    pub reports: Vec<Report>,
    /// Why the scenario failed.
    pub reason: String,
}

impl Failed {
    /// `reports` of a run that failed for `reason`.
    pub fn new(reports: Vec<Report>, reason: String) -> Self {
        let reports = reports.into_iter().map(|r| r.failed(&reason)).collect();
        Self { reports, reason }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Failed {}

/// Which Echo a report measured.
#[derive(Debug, Clone)]
pub struct Setup {
    /// embedded, real, or the target URL.
    pub backend: String,
    /// in-process, child, or target.
    pub server: String,
}

/// Progress bars, or none with `--quiet` (indicatif also hides them when stderr is no
/// terminal).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    quiet: bool,
}

impl Progress {
    /// Bars unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self { quiet }
    }

    /// A bar counting `len` steps of `what`.
    pub fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        let style = ProgressStyle::with_template(
            "{prefix:>22} [{bar:32}] {pos:>7}/{len:7} {per_sec:>12} {elapsed:>4}",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A spinner for a step without a count.
    pub fn spinner(&self, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// Print a note about the run (progress aside) to stderr.
pub fn note(text: &str) {
    eprintln!("  · {text}");
}

/// Round to one decimal, for figures that are not counts.
pub fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_carry_their_setup_and_figures() {
        let setup = Setup {
            backend: "embedded".into(),
            server: "in-process".into(),
        };
        let report = Report::new(
            "baseline",
            &setup,
            "42 calls/s".into(),
            json!({"calls_per_s": 42.0}),
        );
        assert!(report.line.starts_with("baseline"));
        assert!(report.line.contains("[embedded in-process] 42 calls/s"));
        assert_eq!(report.figure("calls_per_s"), Some(42.0));
        assert_eq!(report.figure("missing"), None);
        assert_eq!(report.json["backend"], "embedded");
    }

    #[test]
    fn a_failed_run_keeps_its_figures_and_says_why() {
        let setup = Setup {
            backend: "real".into(),
            server: "child".into(),
        };
        let report = Report::new("soak", &setup, "steady".into(), json!({"samples": [1, 2]}));
        let error = anyhow::Error::from(Failed::new(vec![report], "check failed: x".into()))
            .context("soak");
        let failed = error.downcast::<Failed>().expect("found under the context");
        assert_eq!(failed.reason, "check failed: x");
        let [report] = failed.reports.as_slice() else {
            panic!("one report")
        };
        assert_eq!(report.json["failed"], "check failed: x");
        assert_eq!(report.json["figures"]["samples"], json!([1, 2]));
        assert!(report.line.ends_with("steady | FAILED"));
    }

    #[test]
    fn a_part_not_measured_says_so_and_why() {
        let setup = Setup {
            backend: "embedded".into(),
            server: "in-process".into(),
        };
        let report = Report::not_measured(
            "fanout",
            &setup,
            "G=1000",
            json!({"members": 1000}),
            "stream did not open",
        );
        assert!(report.line.ends_with("G=1000: not measured | FAILED"));
        assert_eq!(report.json["failed"], "stream did not open");
        assert_eq!(report.json["figures"]["members"], 1000);
    }

    #[test]
    fn rounding() {
        assert_eq!(round1(12.345), 12.3);
        assert_eq!(round1(0.06), 0.1);
    }
}
