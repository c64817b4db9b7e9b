//! Turns the raw timings into figures: a table for people (`table`), JSON
//! for tools (`json`), the targets the issue set, and what a million
//! messages would cost. The statistics themselves are in `stats`.

mod json;
mod stats;
mod table;

use crate::size::Sizes;
use crate::BenchError;
use stats::Summary;
use std::path::PathBuf;
use std::time::Duration;

pub use stats::{ColdRun, FunctionResults, StoreLog, Warm};

/// The webhook with its store (DynamoDB, on moto), when measured.
pub const WEBHOOK_STORE: &str = "webhook+store";

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
    pub store: StoreRun,
}

/// Whether `webhook+store` was measured.
#[derive(Debug)]
pub enum StoreRun {
    /// With this moto server, and this latency added to each request.
    Measured {
        moto_server: PathBuf,
        latency: std::time::Duration,
    },
    /// Not, for this reason.
    Skipped(String),
}

pub struct Report {
    settings: Settings,
    webhook: Summary,
    baseline: Summary,
    /// `webhook+store`, when measured.
    store: Option<Summary>,
    results: Vec<FunctionResults>,
}

impl Report {
    pub fn new(settings: Settings, results: Vec<FunctionResults>) -> Result<Report, BenchError> {
        let find = |name: &str| results.iter().find(|r| r.name == name).map(Summary::of);
        let need = |name: &str| {
            find(name).unwrap_or_else(|| Err(BenchError::Other(format!("no results for {name}"))))
        };
        Ok(Report {
            webhook: need("webhook")?,
            baseline: need("baseline")?,
            store: find(WEBHOOK_STORE).transpose()?,
            settings,
            results,
        })
    }

    /// The figures of the function called `name`.
    fn summary(&self, name: &str) -> Option<&Summary> {
        match name {
            "webhook" => Some(&self.webhook),
            "baseline" => Some(&self.baseline),
            WEBHOOK_STORE => self.store.as_ref(),
            _ => None,
        }
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
            // 6.9 MiB before the store; the DynamoDB client and redb add
            // about 1.1 MiB (zip 3.0 -> 3.5 MiB).
            Target {
                name: "stripped binary, webhook",
                value: sizes.map_or(f64::NAN, |s| s.binary_bytes as f64 / MIB),
                limit: 9.0,
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
    use std::collections::BTreeMap;

    fn function(name: &'static str, warm_us: u64, store: Option<StoreLog>) -> FunctionResults {
        let sizes = Sizes {
            binary_bytes: 1 << 20,
            built_bytes: 1 << 20,
            zip_bytes: 1 << 19,
            zip_tool: "zip",
        };
        let mut results = FunctionResults::new(name, sizes);
        results.cold = vec![ColdRun {
            init: Duration::from_millis(2),
            total: Duration::from_millis(5),
        }];
        results.warm = Some(Warm {
            latencies: vec![Duration::from_micros(warm_us); 4],
            cpu_ticks: 1,
            clock_ticks_per_second: 100,
            tls_handshakes: 0,
            anon_growth_kib: 0,
            store,
        });
        results.peak_rss_kib = 4096;
        results
    }

    fn settings(store: StoreRun) -> Settings {
        Settings {
            cold_runs: 1,
            warm_invocations: 4,
            warm_up: 20,
            memory_mb: 128,
            rust_log: None,
            load_at_start: None,
            store,
        }
    }

    #[test]
    fn without_the_store_its_column_is_left_out_and_the_reason_given() {
        let results = vec![
            function("webhook", 300, None),
            function("baseline", 200, None),
        ];
        let report =
            Report::new(settings(StoreRun::Skipped("--no-store".into())), results).unwrap();
        let table = report.table();
        assert!(!table.contains("webhook+store "), "{table}");
        assert!(!table.contains("store requests per update"), "{table}");
        assert!(
            table.contains("webhook+store: not measured: --no-store."),
            "{table}"
        );
        let json = report.json();
        assert_eq!(json["store"]["skipped"], "--no-store");
        assert!(json["functions"].get(WEBHOOK_STORE).is_none());
    }

    #[test]
    fn with_the_store_it_has_a_column_and_its_requests_per_update() {
        let log = StoreLog {
            requests: vec![3; 4],
            windows: [900, 1000, 1100, 5000].map(Duration::from_micros).to_vec(),
            operations: BTreeMap::from([("GetItem".to_owned(), 4), ("UpdateItem".to_owned(), 8)]),
            connections: 1,
        };
        let results = vec![
            function("webhook", 300, None),
            function(WEBHOOK_STORE, 3000, Some(log)),
            function("baseline", 200, None),
        ];
        let moto_server = PathBuf::from("/opt/moto_server");
        let report = Report::new(
            settings(StoreRun::Measured {
                moto_server,
                latency: std::time::Duration::ZERO,
            }),
            results,
        )
        .unwrap();
        let table = report.table();
        let header = table.lines().find(|l| l.starts_with("figure")).unwrap();
        let columns: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(
            columns,
            [
                "figure",
                "webhook",
                WEBHOOK_STORE,
                "baseline",
                "ratio",
                "w/b"
            ]
        );
        let row = |label: &str| -> Vec<String> {
            let line = table.lines().find(|l| l.starts_with(label)).unwrap();
            line[label.len()..]
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            row("warm p50 (event out -> response in)"),
            ["300", "us", "3000", "us", "200", "us", "1.50"]
        );
        assert_eq!(row("store requests per update (warm)"), ["-", "3.00", "-"]);
        assert_eq!(
            row("unrecorded window p50 (sent -> finish)"),
            ["-", "1000", "us", "-"]
        );
        assert!(
            table.contains("12 over 4 warm updates = 3.00 per update"),
            "{table}"
        );
        let json = report.json();
        assert_eq!(json["store"]["requests_per_update"], 3.0);
        assert_eq!(json["store"]["requests_warm"], 12);
        assert_eq!(json["store"]["unrecorded_window_us"]["p99"], 5000.0);
        assert_eq!(json["store"]["operations"]["UpdateItem"], 8);
        assert_eq!(json["store"]["connections_warm"], 1);
        assert_eq!(json["store"]["ratios_to_webhook"]["warm_p50"], 10.0);
        assert_eq!(json["functions"][WEBHOOK_STORE]["warm_us"]["p50"], 3000.0);
    }

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
