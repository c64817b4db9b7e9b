//! The statistics: the raw timings a run collects per function, and the
//! figures made of them (medians, percentiles, CPU and memory per update,
//! the billed duration).

use super::PRICE_PER_REQUEST;
use crate::size::Sizes;
use crate::BenchError;
use std::collections::BTreeMap;
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
    /// For a function with the store: what each measured update cost in it.
    pub store: Option<StoreLog>,
}

/// The store requests of the measured warm invocations, per update.
#[derive(Debug, Default)]
pub struct StoreLog {
    /// Store requests of each update, in order.
    pub requests: Vec<usize>,
    /// Per update, from the stand-in carrying out its sendMessage to the
    /// answer to its last store request (the finish) reaching the function.
    pub windows: Vec<Duration>,
    /// Requests per DynamoDB operation, over all the updates.
    pub operations: BTreeMap<String, usize>,
    /// Connections the function opened to the store meanwhile.
    pub connections: u64,
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
    pub(super) store: Option<StoreSummary>,
}

/// What the updates cost in the store.
#[derive(Debug)]
pub(super) struct StoreSummary {
    /// Store requests during the measured invocations.
    pub(super) requests: usize,
    /// `requests` over the invocations.
    pub(super) per_update: f64,
    /// The fewest and most requests of one update.
    pub(super) fewest: usize,
    pub(super) most: usize,
    pub(super) operations: BTreeMap<String, usize>,
    pub(super) connections: u64,
    /// The window in which the reply is out but not recorded.
    pub(super) window_p50: Duration,
    pub(super) window_p99: Duration,
    pub(super) window_max: Duration,
}

impl StoreSummary {
    /// The figures of `log`, over `invocations` measured invocations.
    pub(super) fn of(log: &StoreLog, invocations: usize) -> Option<StoreSummary> {
        let mut windows = log.windows.clone();
        windows.sort_unstable();
        let requests = log.requests.iter().sum();
        Some(StoreSummary {
            requests,
            per_update: per_update(requests, invocations)?,
            fewest: *log.requests.iter().min()?,
            most: *log.requests.iter().max()?,
            operations: log.operations.clone(),
            connections: log.connections,
            window_p50: percentile(&windows, 50.0),
            window_p99: percentile(&windows, 99.0),
            window_max: *windows.last()?,
        })
    }
}

/// `count` over `invocations`, or `None` without invocations.
fn per_update(count: usize, invocations: usize) -> Option<f64> {
    (invocations > 0).then(|| count as f64 / invocations as f64)
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
            store: match &warm.store {
                Some(log) => Some(
                    StoreSummary::of(log, latencies.len())
                        .ok_or_else(|| missing("store requests"))?,
                ),
                None => None,
            },
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
    fn store_requests_are_counted_per_update() {
        let log = StoreLog {
            requests: vec![3, 3, 4, 2],
            windows: us(&[40, 10, 30, 20]),
            operations: BTreeMap::from([("GetItem".to_owned(), 4), ("UpdateItem".to_owned(), 8)]),
            connections: 0,
        };
        let summary = StoreSummary::of(&log, 4).unwrap();
        assert_eq!(summary.requests, 12);
        assert_eq!(summary.per_update, 3.0);
        assert_eq!((summary.fewest, summary.most), (2, 4));
        assert_eq!(summary.window_p50, Duration::from_micros(20));
        assert_eq!(summary.window_p99, Duration::from_micros(40));
        assert_eq!(summary.window_max, Duration::from_micros(40));
        assert!(StoreSummary::of(&StoreLog::default(), 0).is_none());
        assert_eq!(per_update(7, 2), Some(3.5));
        assert_eq!(per_update(7, 0), None);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_middle_pair_mean() {
        let spread = spread(&us(&[4, 1, 3, 2])).unwrap();
        assert_eq!(spread.median, Duration::from_nanos(2500));
        assert_eq!((spread.min, spread.max), (us(&[1])[0], us(&[4])[0]));
        assert!(super::spread(&[]).is_none());
    }
}
