//! The report for people: a fixed-width table of the functions' figures
//! (the webhook, with its store when measured, and the baseline), the
//! store's requests and unrecorded window, the targets met or missed, and
//! the cost per million updates.

use super::stats::{StoreSummary, Summary};
use super::{
    cpus, ratio, Report, StoreRun, MIB, PRICE_PER_GB_SECOND_ARM64, PRICE_PER_GB_SECOND_X86_64,
    PRICE_PER_HTTP_API_REQUEST, WEBHOOK_STORE,
};
use crate::size::Sizes;
use std::fmt::Write as _;
use std::time::Duration;

/// One duration of a function's figures.
type DurationFigure = fn(&Summary) -> Duration;
/// One size, in bytes.
type SizeFigure = fn(&Sizes) -> u64;

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let (w, b) = (&self.webhook, &self.baseline);
        // The columns: webhook, webhook+store when measured, baseline; then
        // the ratio webhook/baseline.
        let mut columns: Vec<(&str, &Summary, Option<&Sizes>)> =
            vec![("webhook", w, self.sizes("webhook"))];
        if let Some(store) = &self.store {
            columns.push((WEBHOOK_STORE, store, self.sizes(WEBHOOK_STORE)));
        }
        columns.push(("baseline", b, self.sizes("baseline")));
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut row =
            |label: &str, show: &dyn Fn(&Summary, Option<&Sizes>) -> String, ratio: String| {
                let mut cells = vec![label.to_owned()];
                cells.extend(columns.iter().map(|(_, s, sizes)| show(s, *sizes)));
                cells.push(ratio);
                rows.push(cells);
            };
        let durations: [(&str, DurationFigure, Unit); 12] = [
            (
                "init median (spawn -> 1st /next)",
                |s| s.init.median,
                Unit::Ms,
            ),
            ("init min", |s| s.init.min, Unit::Ms),
            ("init max", |s| s.init.max, Unit::Ms),
            (
                "cold total median (spawn -> 1st response)",
                |s| s.total.median,
                Unit::Ms,
            ),
            ("cold total min", |s| s.total.min, Unit::Ms),
            ("cold total max", |s| s.total.max, Unit::Ms),
            ("warm p50 (event out -> response in)", |s| s.p50, Unit::Us),
            ("warm p90", |s| s.p90, Unit::Us),
            ("warm p99", |s| s.p99, Unit::Us),
            ("warm max", |s| s.max, Unit::Us),
            ("warm mean", |s| s.mean, Unit::Us),
            ("CPU per update (user+sys)", |s| s.cpu_per_update, Unit::Us),
        ];
        for (label, figure, unit) in durations {
            row(
                label,
                &|s, _| unit.show(figure(s)),
                format!("{:.2}", ratio(figure(w), figure(b))),
            );
        }
        row(
            "heap growth per update (RssAnon)",
            &|s, _| format!("{:.0} B", s.growth_per_update),
            format!("{:.2}", w.growth_per_update / b.growth_per_update),
        );
        let mib = |kib: u64| kib as f64 / 1024.0;
        row(
            "peak RSS (VmHWM)",
            &|s, _| format!("{:.2} MiB", mib(s.peak_rss_kib)),
            format!("{:.2}", mib(w.peak_rss_kib) / mib(b.peak_rss_kib)),
        );
        let size_in_mib =
            |s: Option<&Sizes>, f: fn(&Sizes) -> u64| s.map_or(f64::NAN, |s| f(s) as f64 / MIB);
        let sizes: [(&str, SizeFigure); 2] = [
            ("stripped binary", |s| s.binary_bytes),
            ("zip (deflate -6)", |s| s.zip_bytes),
        ];
        for (label, f) in sizes {
            let (ws, bs) = (
                size_in_mib(self.sizes("webhook"), f),
                size_in_mib(self.sizes("baseline"), f),
            );
            row(
                label,
                &|_, sizes| format!("{:.2} MiB", size_in_mib(sizes, f)),
                format!("{:.2}", ws / bs),
            );
        }
        let store_row = |label: &str, figure: &dyn Fn(&StoreSummary) -> String| {
            let mut cells = vec![label.to_owned()];
            cells.extend(
                columns
                    .iter()
                    .map(|(_, s, _)| s.store.as_ref().map_or_else(|| "-".to_owned(), figure)),
            );
            cells.push(String::new());
            cells
        };
        if self.store.is_some() {
            rows.push(store_row("store requests per update (warm)", &|s| {
                format!("{:.2}", s.per_update)
            }));
            rows.push(store_row("unrecorded window p50 (sent -> finish)", &|s| {
                Unit::Us.show(s.window_p50)
            }));
            rows.push(store_row("unrecorded window p99", &|s| {
                Unit::Us.show(s.window_p99)
            }));
        }

        let mut out = String::new();
        let mut widths = vec![44];
        widths.extend(columns.iter().map(|(name, _, _)| name.len().max(13)));
        widths.push(9);
        let mut header = vec!["figure".to_owned()];
        header.extend(columns.iter().map(|(name, _, _)| (*name).to_owned()));
        header.push("ratio w/b".to_owned());
        let line = |out: &mut String, cells: &[String]| {
            let mut text = String::new();
            for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if index == 0 {
                    let _ = write!(text, "{cell:<width$}");
                } else {
                    let _ = write!(text, " {cell:>width$}");
                }
            }
            let _ = writeln!(out, "{}", text.trim_end());
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
        line(&mut out, &header);
        let _ = writeln!(
            out,
            "{}",
            "-".repeat(widths.iter().sum::<usize>() + widths.len() - 1)
        );
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
        match (&self.settings.store, &self.store) {
            (
                StoreRun::Measured {
                    moto_server,
                    latency,
                },
                Some(store),
            ) => {
                let _ = writeln!(
                    out,
                    "{WEBHOOK_STORE}: the webhook as deployed, with BOT_STORE_TABLE and its token \
                     and secret read from Parameter Store, on moto ({}) on loopback through a \
                     counting proxy, {} ms emulated latency per request (twice that per new \
                     connection); moto is Python, not DynamoDB. TLS handshakes during its warm \
                     run: {}.",
                    moto_server.display(),
                    latency.as_millis(),
                    store.tls_handshakes
                );
                if let Some(s) = &store.store {
                    let operations: Vec<String> = s
                        .operations
                        .iter()
                        .map(|(operation, count)| format!("{count} {operation}"))
                        .collect();
                    let _ = writeln!(
                        out,
                        "  store requests: {} over {} warm updates = {:.2} per update \
                         ({} to {} each; {}), on {} new connections (0 = one kept throughout).",
                        s.requests,
                        self.settings.warm_invocations,
                        s.per_update,
                        s.fewest,
                        s.most,
                        operations.join(", "),
                        s.connections
                    );
                    let _ = writeln!(
                        out,
                        "  unrecorded window: from the stand-in carrying out sendMessage to the \
                         proxy relaying moto's answer to the update's last store request (the \
                         finish); an instance that dies inside it has replied without recording \
                         it, and the redelivery replies again. p50 {}, p99 {}, max {}.",
                        Unit::Us.show(s.window_p50),
                        Unit::Us.show(s.window_p99),
                        Unit::Us.show(s.window_max)
                    );
                }
            }
            (StoreRun::Skipped(why), _) => {
                let _ = writeln!(out, "{WEBHOOK_STORE}: not measured: {why}.");
            }
            (StoreRun::Measured { .. }, None) => {}
        }
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
