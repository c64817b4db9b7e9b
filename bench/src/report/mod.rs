//! Turns the raw timings into figures: a table for people (`table`), JSON
//! for tools (`json`), the targets the issue set, and what a million
//! messages would cost. The statistics themselves are in `stats`.

mod json;
mod stats;
mod table;

use crate::size::Sizes;
use crate::BenchError;
use stats::Summary;
use std::time::Duration;

pub use stats::{ColdRun, FunctionResults, Warm};

/// Lambda prices (USD), as of writing: per request, per GB-second.
const PRICE_PER_REQUEST: f64 = 0.20 / 1e6;
const PRICE_PER_GB_SECOND_ARM64: f64 = 0.000_013_333_4;
const PRICE_PER_GB_SECOND_X86_64: f64 = 0.000_016_666_7;
/// API Gateway HTTP API, per request (first 300 million a month).
const PRICE_PER_HTTP_API_REQUEST: f64 = 1.00 / 1e6;
const MIB: f64 = 1024.0 * 1024.0;

/// A limit from the issue: a figure and the most it may be.
struct Target {
    name: &'static str,
    value: f64,
    limit: f64,
    /// Whether reaching the limit exactly still meets it.
    inclusive: bool,
    unit: &'static str,
}

impl Target {
    fn met(&self) -> bool {
        if self.inclusive {
            self.value <= self.limit
        } else {
            self.value < self.limit
        }
    }

    fn verdict(&self) -> String {
        if self.met() {
            "met".to_owned()
        } else {
            let over = self.value / self.limit - 1.0;
            format!("MISSED by {:.1}%", over * 100.0)
        }
    }
}

/// How the run was made.
#[derive(Debug)]
pub struct Settings {
    pub cold_runs: usize,
    pub warm_invocations: usize,
    pub warm_up: usize,
    pub memory_mb: u32,
    pub rust_log: Option<String>,
    /// The one-minute load average before the run.
    pub load_at_start: Option<f64>,
}

pub struct Report {
    settings: Settings,
    webhook: Summary,
    baseline: Summary,
    results: Vec<FunctionResults>,
}

impl Report {
    pub fn new(settings: Settings, results: Vec<FunctionResults>) -> Result<Report, BenchError> {
        let find = |name: &str| {
            results
                .iter()
                .find(|r| r.name == name)
                .ok_or_else(|| BenchError::Other(format!("no results for {name}")))
                .and_then(Summary::of)
        };
        Ok(Report {
            settings,
            webhook: find("webhook")?,
            baseline: find("baseline")?,
            results,
        })
    }

    fn sizes(&self, name: &str) -> Option<&Sizes> {
        self.results
            .iter()
            .find(|r| r.name == name)
            .map(|r| &r.sizes)
    }

    fn targets(&self) -> Vec<Target> {
        let (w, b) = (&self.webhook, &self.baseline);
        let sizes = self.sizes("webhook");
        vec![
            Target {
                name: "init median, webhook/baseline",
                value: ratio(w.init.median, b.init.median),
                limit: 1.3,
                inclusive: true,
                unit: "x",
            },
            Target {
                name: "cold total median, webhook/baseline",
                value: ratio(w.total.median, b.total.median),
                limit: 3.0,
                inclusive: true,
                unit: "x",
            },
            Target {
                name: "warm p50, webhook/baseline",
                value: ratio(w.p50, b.p50),
                limit: 1.5,
                inclusive: true,
                unit: "x",
            },
            Target {
                name: "warm p99, webhook",
                value: w.p99.as_secs_f64() * 1e3,
                limit: 1.0,
                inclusive: false,
                unit: "ms",
            },
            Target {
                name: "peak RSS, webhook",
                value: w.peak_rss_kib as f64 / 1024.0,
                limit: 8.0,
                inclusive: false,
                unit: "MiB",
            },
            Target {
                name: "stripped binary, webhook",
                value: sizes.map_or(f64::NAN, |s| s.binary_bytes as f64 / MIB),
                limit: 8.0,
                inclusive: false,
                unit: "MiB",
            },
            Target {
                name: "zip, webhook",
                value: sizes.map_or(f64::NAN, |s| s.zip_bytes as f64 / MIB),
                limit: 4.0,
                inclusive: false,
                unit: "MiB",
            },
        ]
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_target_says_by_how_much() {
        let target = Target {
            name: "x",
            value: 1.5,
            limit: 1.0,
            inclusive: false,
            unit: "ms",
        };
        assert_eq!(target.verdict(), "MISSED by 50.0%");
    }
}
