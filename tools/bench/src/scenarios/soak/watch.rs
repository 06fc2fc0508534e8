//! What the soak watches on the server and how it judges what it saw: a sample is resident
//! memory and open descriptors from /proc, live tasks and buffered stream items from /metrics;
//! the verdict turns the samples (and the delivery check) into the bars of `--check` and
//! `--strict`.

use anyhow::{Context as _, bail};

use crate::check::DeliveryCheck;
use crate::cli::SoakArgs;
use crate::report::round1;
use crate::stats::Latencies;

/// Descriptors a sample may show above the base under load: a churning stream's new
/// connection may be open before its old one is closed (plus one per two users).
const FD_SLACK: i64 = 8;

/// One look at the server.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(super) struct Sample {
    /// Seconds since the load began.
    pub(super) at_s: f64,
    pub(super) rss_kib: u64,
    pub(super) fds: u64,
    pub(super) tasks: u64,
    pub(super) buffered_items: u64,
    /// SendMessage p99 of the window that ends here, ms.
    pub(super) send_p99_ms: f64,
    pub(super) sends: u64,
}

/// What the samples say.
pub(super) struct Verdict {
    pub(super) base: Sample,
    pub(super) peak_fds: u64,
    pub(super) peak_tasks: u64,
    pub(super) rss_growth_pct: f64,
    pub(super) p99_min_ms: f64,
    pub(super) p99_max_ms: f64,
    pub(super) p99_spread: f64,
    /// SendMessage p99 of each `--segment` of the measured time, ms.
    pub(super) segment_p99s_ms: Vec<f64>,
    /// Slowest segment p99 over the fastest: what `--strict` judges.
    pub(super) segment_spread: f64,
    pub(super) problems: Vec<String>,
}

/// The SendMessage p99 of each segment of `segment` seconds after the warm-up, from the
/// windows' latencies merged (a final segment shorter than half the others joins the one
/// before it).
fn segment_p99s(args: &SoakArgs, windows: &[(f64, Latencies)]) -> Vec<f64> {
    let segment = args.segment.max(1) as f64;
    let count = ((args.duration as f64 / segment).round() as usize).max(1);
    let mut merged: Vec<Latencies> = (0..count).map(|_| Latencies::new()).collect();
    for (at_s, window) in windows {
        // A window that ends at `at_s` was taken over the `--sample-every` before it.
        let since = at_s - args.warmup as f64 - args.sample_every as f64;
        if since < 0.0 {
            continue;
        }
        let index = ((since / segment) as usize).min(count - 1);
        merged[index].merge(window);
    }
    merged
        .iter()
        .filter(|m| m.count() > 0)
        .map(|m| m.summary().p99_ms)
        .collect()
}

fn spread(values: &[f64]) -> (f64, f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    let spread = if values.is_empty() || min <= 0.0 {
        1.0
    } else {
        max / min
    };
    (if min.is_finite() { min } else { 0.0 }, max, spread)
}

/// What the sampler saw: before the load, each sample under it with the SendMessage latencies
/// of its window, and after it.
pub(super) struct Seen<'a> {
    pub(super) before: &'a Sample,
    pub(super) samples: &'a [Sample],
    pub(super) windows: &'a [(f64, Latencies)],
    pub(super) after: &'a Sample,
}

impl Verdict {
    pub(super) fn of(
        args: &SoakArgs,
        seen: Seen<'_>,
        check: &DeliveryCheck,
        endings: &[String],
        users: usize,
    ) -> Self {
        let Seen {
            before,
            samples,
            windows,
            after,
        } = seen;
        let steady: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at_s >= args.warmup as f64)
            .collect();
        let base = steady.first().copied().copied().unwrap_or_default();
        let last = steady.last().copied().copied().unwrap_or(base);
        let peak_fds = steady.iter().map(|s| s.fds).max().unwrap_or(base.fds);
        let peak_tasks = steady.iter().map(|s| s.tasks).max().unwrap_or(base.tasks);
        let rss_growth_pct = if base.rss_kib == 0 {
            0.0
        } else {
            100.0 * (last.rss_kib as f64 - base.rss_kib as f64) / base.rss_kib as f64
        };
        let p99s: Vec<f64> = steady
            .iter()
            .filter(|s| s.sends > 0)
            .map(|s| s.send_p99_ms)
            .collect();
        let (p99_min_ms, p99_max_ms, p99_spread) = spread(&p99s);
        let segment_p99s_ms = segment_p99s(args, windows);
        let (_, _, segment_spread) = spread(&segment_p99s_ms);

        let mut problems = Vec::new();
        if steady.len() < 2 {
            problems.push(format!(
                "{} samples after the warm-up: run longer than --warmup + 2 × --sample-every",
                steady.len()
            ));
        }
        if !check.is_clean() {
            problems.push(format!(
                "delivery: {} lost, {} gaps, {} duplicated, {} out of order",
                check.lost, check.gaps, check.duplicated, check.out_of_order
            ));
        }
        if !endings.is_empty() {
            problems.push(format!("streams ended: {}", endings.join(", ")));
        }
        if peak_fds as i64 > base.fds as i64 + FD_SLACK + users as i64 / 2 {
            problems.push(format!(
                "file descriptors grew under the load: {} → {}",
                base.fds, peak_fds
            ));
        }
        // Tasks under the load include every call in flight, which a slower moment raises:
        // reported, and judged once the load has stopped (below).
        // Once every stream is closed there must be fewer descriptors and tasks than under
        // the load. Not as few as before it: the database pools grew to the load's
        // concurrency and keep their connections (`before` is reported, not judged).
        if after.fds > base.fds {
            problems.push(format!(
                "file descriptors left after the load: {} (under it: {}, before it: {})",
                after.fds, base.fds, before.fds
            ));
        }
        if after.tasks > base.tasks {
            problems.push(format!(
                "tasks left after the load: {} (under it: {}, before it: {})",
                after.tasks, base.tasks, before.tasks
            ));
        }
        if after.buffered_items > 0 {
            problems.push(format!(
                "{} stream items still buffered after the load",
                after.buffered_items
            ));
        }
        if args.strict {
            if rss_growth_pct >= 5.0 {
                problems.push(format!(
                    "resident memory grew {rss_growth_pct:.1} % after the warm-up"
                ));
            }
            if segment_spread > 1.2 {
                problems.push(format!(
                    "SendMessage p99 moved ×{segment_spread:.2} between {} s segments",
                    args.segment
                ));
            }
        }
        Self {
            base,
            peak_fds,
            peak_tasks,
            rss_growth_pct,
            p99_min_ms,
            p99_max_ms,
            p99_spread,
            segment_p99s_ms,
            segment_spread,
            problems,
        }
    }
}

/// The server's memory and descriptors (/proc) and its tasks and buffered items (/metrics).
pub(super) async fn sample(pid: u32, admin: &str, at_s: f64) -> anyhow::Result<Sample> {
    let rss_kib = crate::server::memory_kib(pid).context("the server's /proc/<pid>/status")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .context("the server's /proc/<pid>/fd")?
        .count() as u64;
    let text = scrape(admin).await.context("the server's /metrics")?;
    Ok(Sample {
        at_s: round1(at_s),
        rss_kib,
        fds,
        tasks: gauge(&text, "echo_runtime_alive_tasks"),
        buffered_items: gauge(&text, "echo_live_buffered_items"),
        ..Sample::default()
    })
}

/// GET `/metrics` of `admin` (`http://host:port`) over HTTP/1.0: the whole body.
async fn scrape(admin: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let host = admin.strip_prefix("http://").unwrap_or(admin);
    let mut socket = tokio::net::TcpStream::connect(host).await?;
    socket
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        bail!("no HTTP response");
    };
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!("{}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}

/// The sum of a gauge's series in a Prometheus exposition (0 when absent).
fn gauge(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn gauges_are_read_from_an_exposition() {
        let text = "# TYPE echo_runtime_alive_tasks gauge\necho_runtime_alive_tasks 42\n\
                    echo_live_buffered_items{shard=\"a\"} 3\necho_live_buffered_items{shard=\"b\"} 4\n\
                    echo_runtime_alive_tasks_other 9\n";
        assert_eq!(gauge(text, "echo_runtime_alive_tasks"), 42);
        assert_eq!(gauge(text, "echo_live_buffered_items"), 7);
        assert_eq!(gauge(text, "echo_missing"), 0);
    }

    fn args(duration: u64, segment: u64) -> SoakArgs {
        SoakArgs {
            duration,
            warmup: 10,
            rate: 200,
            sample_every: 5,
            churn_every: 5,
            check: true,
            strict: true,
            segment,
        }
    }

    fn window(ms: u64, calls: u32) -> Latencies {
        let mut latencies = Latencies::new();
        for _ in 0..calls {
            latencies.record(Duration::from_millis(ms));
        }
        latencies
    }

    /// Windows every 5 s after a 10 s warm-up, the first half at `early` ms, the rest at `late`.
    fn windows(duration: u64, early: u64, late: u64) -> Vec<(f64, Latencies)> {
        (1..=((10 + duration) / 5))
            .map(|n| {
                let at = (n * 5) as f64;
                let ms = if at <= 10.0 + duration as f64 / 2.0 {
                    early
                } else {
                    late
                };
                (at, window(ms, 100))
            })
            .collect()
    }

    #[test]
    fn one_slow_window_is_noise_but_a_slower_half_is_drift() {
        let args = args(600, 300);
        let mut steady = windows(600, 10, 10);
        // One window 30× slower: its segment's p99 (1 % of 6,000 calls = 60) stays at 10 ms.
        steady[20] = (steady[20].0, window(300, 50));
        let p99s = segment_p99s(&args, &steady);
        assert_eq!(p99s.len(), 2);
        assert!(spread(&p99s).2 < 1.2, "{p99s:?}");

        let drifting = windows(600, 10, 15);
        let p99s = segment_p99s(&args, &drifting);
        assert_eq!(p99s.len(), 2);
        assert!(spread(&p99s).2 > 1.4, "{p99s:?}");
    }

    #[test]
    fn warm_up_windows_are_left_out() {
        let args = args(600, 300);
        let mut all = windows(600, 10, 10);
        all[0] = (5.0, window(500, 100));
        all[1] = (10.0, window(500, 100));
        let p99s = segment_p99s(&args, &all);
        assert!(spread(&p99s).2 < 1.2, "{p99s:?}");
    }
}
