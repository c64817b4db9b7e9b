//! Turns the raw timings into figures: a table for people, JSON for tools,
//! the targets the issue set, and what a million messages would cost.

use crate::size::Sizes;
use crate::BenchError;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Duration;

/// Lambda prices (USD), as of writing: per request, per GB-second.
const PRICE_PER_REQUEST: f64 = 0.20 / 1e6;
const PRICE_PER_GB_SECOND_ARM64: f64 = 0.000_013_333_4;
const PRICE_PER_GB_SECOND_X86_64: f64 = 0.000_016_666_7;
/// API Gateway HTTP API, per request (first 300 million a month).
const PRICE_PER_HTTP_API_REQUEST: f64 = 1.00 / 1e6;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Copy)]
pub struct ColdRun {
    /// From creating the process to its first `/next` request.
    pub init: Duration,
    /// From creating the process to its answer to the first event.
    pub total: Duration,
}

#[derive(Debug)]
pub struct Warm {
    /// Per invocation, from handing out the event to the answer arriving.
    pub latencies: Vec<Duration>,
    /// CPU time (user + system, all threads) over the measured invocations.
    pub cpu_ticks: u64,
    pub clock_ticks_per_second: u64,
    /// New TLS connections to the stand-in during the measured invocations.
    pub tls_handshakes: u64,
    /// How much resident anonymous memory grew over them.
    pub anon_growth_kib: u64,
}

#[derive(Debug)]
pub struct FunctionResults {
    pub name: &'static str,
    pub sizes: Sizes,
    pub cold: Vec<ColdRun>,
    pub warm: Option<Warm>,
    pub peak_rss_kib: u64,
}

impl FunctionResults {
    pub fn new(name: &'static str, sizes: Sizes) -> Self {
        FunctionResults {
            name,
            sizes,
            cold: Vec::new(),
            warm: None,
            peak_rss_kib: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Spread {
    median: Duration,
    min: Duration,
    max: Duration,
}

/// One function's figures.
#[derive(Debug)]
struct Summary {
    init: Spread,
    total: Spread,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    mean: Duration,
    /// Mean of each invocation's duration rounded up to whole milliseconds,
    /// as Lambda bills it.
    billed_ms: f64,
    cpu_per_update: Duration,
    /// The CPU figure's resolution: one clock tick over the invocations.
    cpu_resolution: Duration,
    tls_handshakes: u64,
    /// Resident anonymous memory gained per update, in bytes.
    growth_per_update: f64,
    peak_rss_kib: u64,
}

impl Summary {
    fn of(results: &FunctionResults) -> Result<Summary, BenchError> {
        let missing = |what: &str| BenchError::Other(format!("{}: no {what}", results.name));
        let warm = results.warm.as_ref().ok_or_else(|| missing("warm run"))?;
        let init: Vec<Duration> = results.cold.iter().map(|run| run.init).collect();
        let total: Vec<Duration> = results.cold.iter().map(|run| run.total).collect();
        let mut latencies = warm.latencies.clone();
        latencies.sort_unstable();
        let count = latencies.len() as u32;
        if count == 0 {
            return Err(missing("warm invocations"));
        }
        let seconds_per_tick = 1.0 / warm.clock_ticks_per_second.max(1) as f64;
        let billed_ms = latencies
            .iter()
            .map(|d| d.as_micros().div_ceil(1000).max(1) as f64)
            .sum::<f64>()
            / f64::from(count);
        Ok(Summary {
            init: spread(&init).ok_or_else(|| missing("cold runs"))?,
            total: spread(&total).ok_or_else(|| missing("cold runs"))?,
            p50: percentile(&latencies, 50.0),
            p90: percentile(&latencies, 90.0),
            p99: percentile(&latencies, 99.0),
            max: latencies.last().copied().unwrap_or_default(),
            mean: latencies.iter().sum::<Duration>() / count,
            billed_ms,
            cpu_per_update: Duration::from_secs_f64(
                warm.cpu_ticks as f64 * seconds_per_tick / f64::from(count),
            ),
            cpu_resolution: Duration::from_secs_f64(seconds_per_tick / f64::from(count)),
            tls_handshakes: warm.tls_handshakes,
            growth_per_update: warm.anon_growth_kib as f64 * 1024.0 / f64::from(count),
            peak_rss_kib: results.peak_rss_kib,
        })
    }

    /// Cost per million updates on arm64 (or x86_64) at `memory_mb`.
    fn cost_per_million(&self, memory_mb: u32, price_per_gb_second: f64) -> f64 {
        let gb_seconds = f64::from(memory_mb) / 1024.0 * self.billed_ms / 1000.0;
        1e6 * (PRICE_PER_REQUEST + gb_seconds * price_per_gb_second)
    }
}

fn spread(values: &[Duration]) -> Option<Spread> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let (min, max) = (*sorted.first()?, *sorted.last()?);
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 0 {
        (sorted[middle - 1] + sorted[middle]) / 2
    } else {
        sorted[middle]
    };
    Some(Spread { median, min, max })
}

/// Nearest-rank percentile of sorted, non-empty `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or_default()
}

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

    /// The human-readable table.
    pub fn table(&self) -> String {
        let (w, b) = (&self.webhook, &self.baseline);
        let (ws, bs) = (self.sizes("webhook"), self.sizes("baseline"));
        let mut rows: Vec<[String; 4]> = Vec::new();
        let mut duration_row = |label: &str, w: Duration, b: Duration, unit: Unit| {
            rows.push([
                label.to_owned(),
                unit.show(w),
                unit.show(b),
                format!("{:.2}", ratio(w, b)),
            ]);
        };
        duration_row(
            "init median (spawn -> 1st /next)",
            w.init.median,
            b.init.median,
            Unit::Ms,
        );
        duration_row("init min", w.init.min, b.init.min, Unit::Ms);
        duration_row("init max", w.init.max, b.init.max, Unit::Ms);
        duration_row(
            "cold total median (spawn -> 1st response)",
            w.total.median,
            b.total.median,
            Unit::Ms,
        );
        duration_row("cold total min", w.total.min, b.total.min, Unit::Ms);
        duration_row("cold total max", w.total.max, b.total.max, Unit::Ms);
        duration_row(
            "warm p50 (event out -> response in)",
            w.p50,
            b.p50,
            Unit::Us,
        );
        duration_row("warm p90", w.p90, b.p90, Unit::Us);
        duration_row("warm p99", w.p99, b.p99, Unit::Us);
        duration_row("warm max", w.max, b.max, Unit::Us);
        duration_row("warm mean", w.mean, b.mean, Unit::Us);
        duration_row(
            "CPU per update (user+sys)",
            w.cpu_per_update,
            b.cpu_per_update,
            Unit::Us,
        );
        rows.push([
            "heap growth per update (RssAnon)".to_owned(),
            format!("{:.0} B", w.growth_per_update),
            format!("{:.0} B", b.growth_per_update),
            format!("{:.2}", w.growth_per_update / b.growth_per_update),
        ]);
        let mut size_row = |label: &str, w: f64, b: f64| {
            rows.push([
                label.to_owned(),
                format!("{w:.2} MiB"),
                format!("{b:.2} MiB"),
                format!("{:.2}", w / b),
            ]);
        };
        size_row(
            "peak RSS (VmHWM)",
            w.peak_rss_kib as f64 / 1024.0,
            b.peak_rss_kib as f64 / 1024.0,
        );
        let mib =
            |s: Option<&Sizes>, f: fn(&Sizes) -> u64| s.map_or(f64::NAN, |s| f(s) as f64 / MIB);
        size_row(
            "stripped binary",
            mib(ws, |s| s.binary_bytes),
            mib(bs, |s| s.binary_bytes),
        );
        size_row(
            "zip (deflate -6)",
            mib(ws, |s| s.zip_bytes),
            mib(bs, |s| s.zip_bytes),
        );

        let mut out = String::new();
        let widths = [44, 13, 13, 9];
        let header = ["figure", "webhook", "baseline", "ratio"];
        let line = |out: &mut String, cells: &[String; 4]| {
            let _ = writeln!(
                out,
                "{:<w0$} {:>w1$} {:>w2$} {:>w3$}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            );
        };
        let settings = &self.settings;
        let _ = writeln!(
            out,
            "\n{} cold starts per function, {} warm invocations after {} warm-up; {} CPUs, \
             load average {} at start{}",
            settings.cold_runs,
            settings.warm_invocations,
            settings.warm_up,
            cpus(),
            settings
                .load_at_start
                .map_or_else(|| "unknown".to_owned(), |load| format!("{load:.2}")),
            settings
                .rust_log
                .as_ref()
                .map_or_else(String::new, |filter| format!("; RUST_LOG={filter}")),
        );
        line(&mut out, &header.map(str::to_owned));
        let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 3));
        for row in &rows {
            line(&mut out, row);
        }
        let _ = writeln!(
            out,
            "CPU figures resolve to {:.1} us (one clock tick over the run). TLS handshakes \
             during the warm run: {} (0 = one connection reused throughout).",
            w.cpu_resolution.as_secs_f64() * 1e6,
            w.tls_handshakes
        );
        let _ = writeln!(out, "\ntargets");
        for target in self.targets() {
            let _ = writeln!(
                out,
                "  {:<38} {:>8.2} {:<3} (limit {} {}) {}",
                target.name,
                target.value,
                target.unit,
                if target.inclusive { "<=" } else { "<" },
                target.limit,
                target.verdict()
            );
        }
        let _ = writeln!(
            out,
            "\ncost per million updates at the measured duration (billed {:.2} ms on average, {} MB)",
            w.billed_ms, self.settings.memory_mb
        );
        let arm = w.cost_per_million(self.settings.memory_mb, PRICE_PER_GB_SECOND_ARM64);
        let x86 = w.cost_per_million(self.settings.memory_mb, PRICE_PER_GB_SECOND_X86_64);
        let gateway = PRICE_PER_HTTP_API_REQUEST * 1e6;
        let _ = writeln!(out, "  arm64 + HTTP API        ${:.4}", arm + gateway);
        let _ = writeln!(out, "  arm64 + Function URL    ${arm:.4}");
        let _ = writeln!(out, "  x86_64 + HTTP API       ${:.4}", x86 + gateway);
        let _ = write!(
            out,
            "  (against api.telegram.org the duration is the reply's round trip, tens of ms)"
        );
        out
    }

    /// Everything, for tools.
    pub fn json(&self) -> Value {
        let ms = |d: Duration| round(d.as_secs_f64() * 1e3, 3);
        let us = |d: Duration| round(d.as_secs_f64() * 1e6, 1);
        let function = |results: &FunctionResults, s: &Summary| {
            let spread =
                |s: Spread| json!({"median": ms(s.median), "min": ms(s.min), "max": ms(s.max)});
            json!({
                "init_ms": spread(s.init),
                "cold_total_ms": spread(s.total),
                "cold_runs_ms": results.cold.iter()
                    .map(|r| json!({"init": ms(r.init), "total": ms(r.total)}))
                    .collect::<Vec<_>>(),
                "warm_us": {
                    "p50": us(s.p50), "p90": us(s.p90), "p99": us(s.p99),
                    "max": us(s.max), "mean": us(s.mean),
                },
                "billed_ms_mean": round(s.billed_ms, 3),
                "cpu_per_update_us": us(s.cpu_per_update),
                "cpu_resolution_us": us(s.cpu_resolution),
                "tls_handshakes_warm": s.tls_handshakes,
                "heap_growth_per_update_bytes": round(s.growth_per_update, 1),
                "peak_rss_kib": s.peak_rss_kib,
                "binary_bytes": results.sizes.binary_bytes,
                "built_binary_bytes": results.sizes.built_bytes,
                "zip_bytes": results.sizes.zip_bytes,
                "zip_tool": results.sizes.zip_tool,
            })
        };
        let mut functions = serde_json::Map::new();
        for results in &self.results {
            let summary = if results.name == "webhook" {
                &self.webhook
            } else {
                &self.baseline
            };
            functions.insert(results.name.to_owned(), function(results, summary));
        }
        let (w, b) = (&self.webhook, &self.baseline);
        let size_ratio =
            |f: fn(&Sizes) -> u64| match (self.sizes("webhook"), self.sizes("baseline")) {
                (Some(ws), Some(bs)) => round(f(ws) as f64 / f(bs) as f64, 3),
                _ => f64::NAN,
            };
        let gateway = PRICE_PER_HTTP_API_REQUEST * 1e6;
        let arm = w.cost_per_million(self.settings.memory_mb, PRICE_PER_GB_SECOND_ARM64);
        let x86 = w.cost_per_million(self.settings.memory_mb, PRICE_PER_GB_SECOND_X86_64);
        json!({
            "settings": {
                "cold_runs": self.settings.cold_runs,
                "warm_invocations": self.settings.warm_invocations,
                "warm_up_invocations": self.settings.warm_up,
                "memory_mb": self.settings.memory_mb,
                "rust_log": self.settings.rust_log,
                "load_average_at_start": self.settings.load_at_start,
                "cpus": cpus(),
                "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .map(|s| s.trim().to_owned()).unwrap_or_default(),
            },
            "functions": functions,
            "ratios": {
                "init_median": round(ratio(w.init.median, b.init.median), 3),
                "cold_total_median": round(ratio(w.total.median, b.total.median), 3),
                "warm_p50": round(ratio(w.p50, b.p50), 3),
                "warm_p99": round(ratio(w.p99, b.p99), 3),
                "cpu_per_update": round(ratio(w.cpu_per_update, b.cpu_per_update), 3),
                "peak_rss": round(w.peak_rss_kib as f64 / b.peak_rss_kib as f64, 3),
                "binary": size_ratio(|s| s.binary_bytes),
                "zip": size_ratio(|s| s.zip_bytes),
            },
            "targets": self.targets().iter().map(|t| json!({
                "name": t.name, "value": round(t.value, 3), "unit": t.unit,
                "limit": t.limit, "inclusive": t.inclusive, "met": t.met(),
            })).collect::<Vec<_>>(),
            "cost_per_million_usd": {
                "arm64_http_api": round(arm + gateway, 4),
                "arm64_function_url": round(arm, 4),
                "x86_64_http_api": round(x86 + gateway, 4),
                "x86_64_function_url": round(x86, 4),
            },
        })
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Ms,
    Us,
}

impl Unit {
    fn show(self, d: Duration) -> String {
        match self {
            Unit::Ms => format!("{:.2} ms", d.as_secs_f64() * 1e3),
            Unit::Us => format!("{:.0} us", d.as_secs_f64() * 1e6),
        }
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

    fn us(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_micros(*v)).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted = us(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&sorted, 99.0), Duration::from_micros(99));
        assert_eq!(percentile(&sorted, 100.0), Duration::from_micros(100));
        assert_eq!(percentile(&us(&[7]), 99.0), Duration::from_micros(7));
    }

    #[test]
    fn the_median_of_an_even_count_is_the_middle_pair_mean() {
        let spread = spread(&us(&[4, 1, 3, 2])).unwrap();
        assert_eq!(spread.median, Duration::from_nanos(2500));
        assert_eq!((spread.min, spread.max), (us(&[1])[0], us(&[4])[0]));
        assert!(super::spread(&[]).is_none());
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
