//! The report for people: a fixed-width table of both functions' figures,
//! the targets met or missed, and the cost per million updates.

use super::{
    cpus, ratio, Report, MIB, PRICE_PER_GB_SECOND_ARM64, PRICE_PER_GB_SECOND_X86_64,
    PRICE_PER_HTTP_API_REQUEST,
};
use crate::size::Sizes;
use std::fmt::Write as _;
use std::time::Duration;

impl Report {
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
