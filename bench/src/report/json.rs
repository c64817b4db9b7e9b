//! The report for tools: every figure, raw run and setting as JSON, in
//! `target/bench/results.json` unless told otherwise.

use super::stats::{Spread, StoreSummary, Summary};
use super::{
    cpus, ratio, round, FunctionResults, Report, StoreRun, PRICE_PER_GB_SECOND_ARM64,
    PRICE_PER_GB_SECOND_X86_64, PRICE_PER_HTTP_API_REQUEST,
};
use crate::size::Sizes;
use serde_json::{json, Value};
use std::time::Duration;

impl Report {
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
            if let Some(summary) = self.summary(results.name) {
                functions.insert(results.name.to_owned(), function(results, summary));
            }
        }
        let store_figures = |s: &StoreSummary| {
            json!({
                "requests_warm": s.requests,
                "requests_per_update": round(s.per_update, 3),
                "requests_per_update_min": s.fewest,
                "requests_per_update_max": s.most,
                "operations": s.operations,
                "connections_warm": s.connections,
                "unrecorded_window_us": {
                    "p50": us(s.window_p50), "p99": us(s.window_p99), "max": us(s.window_max),
                },
            })
        };
        let store = match (&self.settings.store, &self.store) {
            (
                StoreRun::Measured {
                    moto_server,
                    latency,
                },
                Some(store),
            ) => {
                let (s, w) = (store, &self.webhook);
                let mut figures = store.store.as_ref().map_or(json!({}), store_figures);
                figures["moto_server"] = json!(moto_server.display().to_string());
                figures["latency_ms"] = json!(latency.as_millis() as u64);
                figures["ratios_to_webhook"] = json!({
                    "init_median": round(ratio(s.init.median, w.init.median), 3),
                    "cold_total_median": round(ratio(s.total.median, w.total.median), 3),
                    "warm_p50": round(ratio(s.p50, w.p50), 3),
                    "warm_p99": round(ratio(s.p99, w.p99), 3),
                    "cpu_per_update": round(ratio(s.cpu_per_update, w.cpu_per_update), 3),
                });
                figures
            }
            (StoreRun::Skipped(why), _) => json!({"skipped": why}),
            (StoreRun::Measured { .. }, None) => json!({"skipped": "no results"}),
        };
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
            "store": store,
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
