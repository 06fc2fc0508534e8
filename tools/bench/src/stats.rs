//! Latency histograms (HdrHistogram, microsecond resolution) and the figures reports print.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency a histogram can hold (longer ones are clamped to it).
const MAX_MICROS: u64 = 10 * 60 * 1_000_000;

/// Latencies of one kind (send→deliver, SendMessage, a baseline call), in microseconds.
#[derive(Clone)]
pub struct Latencies(Histogram<u64>);

impl std::fmt::Debug for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Latencies({})", self.summary())
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram: 1 µs to 10 min at 3 significant digits.
    pub fn new() -> Self {
        match Histogram::new_with_bounds(1, MAX_MICROS, 3) {
            Ok(histogram) => Self(histogram),
            // The bounds are constants within HdrHistogram's range.
            Err(error) => unreachable!("constant histogram bounds refused: {error}"),
        }
    }

    /// Record one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_micros(u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS));
    }

    /// Record one latency given in microseconds (0 counts as 1: below the resolution).
    pub fn record_micros(&mut self, micros: u64) {
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Add everything `other` recorded.
    pub fn merge(&mut self, other: &Latencies) {
        if self.0.add(&other.0).is_err() {
            // Only when the ranges differ, and ours are all alike; keep the samples anyway, at
            // the top of their buckets.
            for value in other.0.iter_recorded() {
                self.0
                    .saturating_record_n(value.value_iterated_to(), value.count_at_value());
            }
        }
    }

    /// How many were recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The percentiles reports print.
    pub fn summary(&self) -> Percentiles {
        let at = |quantile: f64| millis(self.0.value_at_quantile(quantile));
        if self.0.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: self.0.len(),
            mean_ms: round3(self.0.mean() / 1000.0),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: millis(self.0.max()),
        }
    }
}

fn millis(micros: u64) -> f64 {
    round3(micros as f64 / 1000.0)
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Latency percentiles in milliseconds (HdrHistogram: each within 0.1 % of the exact value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {} p90 {} p99 {} p99.9 {} max {} ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }
}

/// Events per second over `elapsed` (0 when nothing elapsed).
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    (count as f64 / seconds).round()
}

/// One clock for a run: timestamps carried in message bodies are microseconds since its start,
/// so a receiver in the same process turns them into latencies without clock skew.
#[derive(Clone, Copy, Debug)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Microseconds since the start.
    pub fn now_micros(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_thousand_milliseconds() {
        let mut latencies = Latencies::new();
        for ms in 1..=1000 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 1000);
        // HdrHistogram at 3 significant digits answers within 0.1 % of the exact rank.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(summary.p50_ms, 500.0), "{summary:?}");
        assert!(close(summary.p90_ms, 900.0), "{summary:?}");
        assert!(close(summary.p99_ms, 990.0), "{summary:?}");
        assert!(close(summary.p999_ms, 999.0), "{summary:?}");
        assert!(close(summary.max_ms, 1000.0), "{summary:?}");
        assert!(close(summary.mean_ms, 500.5), "{summary:?}");
    }

    #[test]
    fn a_slow_tail_shows_in_the_high_percentiles_only() {
        let mut latencies = Latencies::new();
        for _ in 0..990 {
            latencies.record_micros(800);
        }
        for _ in 0..10 {
            latencies.record_micros(50_000);
        }
        let summary = latencies.summary();
        assert_eq!(summary.p50_ms, 0.8);
        assert_eq!(summary.p90_ms, 0.8);
        assert_eq!(summary.p99_ms, 0.8);
        assert!((summary.p999_ms - 50.0).abs() < 0.05, "{summary:?}");
        assert!((summary.max_ms - 50.0).abs() < 0.05, "{summary:?}");
    }

    #[test]
    fn merging_adds_the_samples() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        for _ in 0..100 {
            a.record_micros(1_000);
            b.record_micros(3_000);
        }
        a.merge(&b);
        let summary = a.summary();
        assert_eq!(summary.count, 200);
        assert_eq!(summary.p50_ms, 1.0);
        // Within HdrHistogram's resolution (3 significant digits).
        assert!((summary.max_ms - 3.0).abs() < 0.005, "{summary:?}");
        assert!((summary.mean_ms - 2.0).abs() < 0.01, "{summary:?}");
    }

    #[test]
    fn empty_zero_and_huge_values_are_safe() {
        assert_eq!(Latencies::new().summary(), Percentiles::default());
        let mut latencies = Latencies::new();
        latencies.record(Duration::ZERO);
        latencies.record(Duration::from_secs(3600));
        let summary = latencies.summary();
        assert_eq!(summary.count, 2);
        assert_eq!(summary.p50_ms, 0.001);
        assert!(summary.max_ms <= 600_000.0 * 1.001, "{summary:?}");
    }

    #[test]
    fn rates_per_second() {
        assert_eq!(per_second(5_000, Duration::from_millis(500)), 10_000.0);
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
    }

    #[test]
    fn the_clock_counts_up_in_microseconds() {
        let clock = Clock::start();
        let first = clock.now_micros();
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.now_micros() >= first + 2_000);
    }
}
