//! The statistics: the raw timings a run collects per function, and the
//! figures made of them (medians, percentiles, CPU and memory per update,
//! the billed duration).

use super::PRICE_PER_REQUEST;
use crate::size::Sizes;
use crate::BenchError;
use std::time::Duration;

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
pub(super) struct Spread {
    pub(super) median: Duration,
    pub(super) min: Duration,
    pub(super) max: Duration,
}

/// One function's figures.
#[derive(Debug)]
pub(super) struct Summary {
    pub(super) init: Spread,
    pub(super) total: Spread,
    pub(super) p50: Duration,
    pub(super) p90: Duration,
    pub(super) p99: Duration,
    pub(super) max: Duration,
    pub(super) mean: Duration,
    /// Mean of each invocation's duration rounded up to whole milliseconds,
    /// as Lambda bills it.
    pub(super) billed_ms: f64,
    pub(super) cpu_per_update: Duration,
    /// The CPU figure's resolution: one clock tick over the invocations.
    pub(super) cpu_resolution: Duration,
    pub(super) tls_handshakes: u64,
    /// Resident anonymous memory gained per update, in bytes.
    pub(super) growth_per_update: f64,
    pub(super) peak_rss_kib: u64,
}

impl Summary {
    pub(super) fn of(results: &FunctionResults) -> Result<Summary, BenchError> {
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
    pub(super) fn cost_per_million(&self, memory_mb: u32, price_per_gb_second: f64) -> f64 {
        let gb_seconds = f64::from(memory_mb) / 1024.0 * self.billed_ms / 1000.0;
        1e6 * (PRICE_PER_REQUEST + gb_seconds * price_per_gb_second)
    }
}

fn spread(values: &[Duration]) -> Option<Spread> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let (min, max) = (*sorted.first()?, *sorted.last()?);
    let middle = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
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
}
