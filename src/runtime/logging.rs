//! Structured logs: JSON lines in Lambda (CloudWatch indexes their fields),
//! human-readable text elsewhere.
//!
//! Each JSON line carries `level` and `timestamp` as Lambda's log-level
//! filtering reads them ("Log-level filtering", AWS Lambda Developer Guide):
//! a line whose `level` is missing or invalid, or whose timestamp is not
//! valid RFC 3339, is taken as INFO, and dropped when the function's
//! `ApplicationLogLevel` is WARN or ERROR.

use std::fmt;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Libraries that log requests, events or responses whole at debug or trace:
/// the runtime (the raw event, with the webhook secret header and the
/// message text), the HTTP stack (headers), the AWS SDK (the decrypted
/// parameter). They stay at info whatever level is asked for: no directive,
/// however specific (`lambda_runtime::layers::api_response=trace`, a span
/// filter), lifts the cap, since it is a second filter and not a directive.
const CAPPED: &[&str] = &[
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "aws_config",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sdk_sts",
    "aws_sdk_dynamodb",
    "aws_runtime",
];

/// Whether `target` belongs to a capped library: the crate itself or any of
/// its modules.
fn is_capped(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    CAPPED.contains(&krate)
}

fn under_cap(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= Level::INFO || !is_capped(metadata.target())
}

/// The filter for `level` (a level or `RUST_LOG`-style directives), with the
/// libraries above capped at info. An unusable value means `info`.
pub fn filter<S>(level: Option<&str>) -> impl Filter<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let directives = level
        .and_then(|level| EnvFilter::try_new(level.to_lowercase()).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let cap: fn(&Metadata<'_>) -> bool = under_cap;
    directives.and(filter_fn(cap))
}

/// Installs the global subscriber. The level comes from `RUST_LOG`, else from
/// Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`. JSON is used when running in
/// Lambda or when `LOG_FORMAT=json`; `LOG_FORMAT=text` forces text. With
/// JSON and `METRICS_NAMESPACE`, metrics are on (see [`crate::metrics`]).
pub fn init() {
    init_with_default("info");
}

/// As [`init`], with `default` as the level when neither variable is set.
pub fn init_with_default(default: &str) {
    let level = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok())
        .or_else(|| Some(default.to_owned()));
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let json = match std::env::var("LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("text") => false,
        _ => in_lambda,
    };
    // Metric lines need JSON: CloudWatch reads `_aws` from a JSON object.
    if json {
        if let Some(target) = crate::metrics::Target::from_lookup(|name| std::env::var(name).ok()) {
            crate::metrics::install(crate::metrics::Sink::stderr(target));
        }
    }
    let result = if json {
        tracing_subscriber::registry()
            .with(json_layer(std::io::stderr).with_filter(filter(level.as_deref())))
            .try_init()
    } else {
        let layer = tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_ansi(!in_lambda);
        tracing_subscriber::registry()
            .with(layer.with_filter(filter(level.as_deref())))
            .try_init()
    };
    // Already installed (tests, embedding): keep the existing one.
    drop(result);
}

/// The JSON lines, to `writer`: one object per line, the event's fields at
/// the top level beside `timestamp` and `level` (`TRACE` ... `ERROR`), as
/// Lambda's log-level filtering expects them.
pub fn json_layer<S, W>(writer: W) -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_timer(LambdaTime)
}

/// The time of a line as Lambda writes its own: RFC 3339, UTC, to the
/// millisecond (`2024-11-02T16:51:31.587Z`). From std's clock: no date
/// library for one format.
#[derive(Debug, Clone, Copy, Default)]
pub struct LambdaTime;

impl FormatTime for LambdaTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        w.write_str(&rfc3339_millis(now_millis()))
    }
}

/// Milliseconds since the Unix epoch, now; 0 for a clock set before it.
pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `ms` since the Unix epoch as RFC 3339 in UTC, to the millisecond:
/// `1970-01-01T00:00:00.000Z` for 0.
pub fn rfc3339_millis(ms: u64) -> String {
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    // Howard Hinnant's civil_from_days, for days on or after the epoch.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};

    /// The levels Lambda's log-level filtering knows; any other `level`,
    /// or none, is read as INFO.
    const LAMBDA_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

    /// Milliseconds since the epoch of an RFC 3339 `date-time` (section
    /// 5.6: any fraction, `Z` or a numeric offset) from 1970 on; `None` when
    /// `text` is not one. Written apart from [`rfc3339_millis`], to check it.
    pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
        let b = text.as_bytes();
        let number = |from: usize, to: usize| -> Option<i64> {
            let digits = b.get(from..to)?;
            digits.iter().all(u8::is_ascii_digit).then_some(())?;
            std::str::from_utf8(digits).ok()?.parse().ok()
        };
        let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
        if b.len() < 20
            || separators.iter().any(|&(at, c)| b[at] != c)
            || !matches!(b[10], b'T' | b't')
        {
            return None;
        }
        let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
        let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
        let mut rest = &text[19..];
        let mut millis = 0;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            millis = format!("{:0<3}", &fraction[..digits.min(3)]).parse().ok()?;
            rest = &fraction[digits..];
        }
        let offset_minutes = match rest.as_bytes() {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let hours = std::str::from_utf8(&[*h1, *h2]).ok()?.parse::<i64>().ok()?;
                let minutes = std::str::from_utf8(&[*m1, *m2]).ok()?.parse::<i64>().ok()?;
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let offset = hours * 60 + minutes;
                if *sign == b'-' {
                    -offset
                } else {
                    offset
                }
            }
            _ => return None,
        };
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_days = [
            31,
            if leap(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if year < 1970
            || !(1..=12).contains(&month)
            || day < 1
            || day > month_days[month as usize - 1]
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let days = (1970..year)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<i64>()
            + month_days[..month as usize - 1].iter().sum::<i64>()
            + day
            - 1;
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
        Some(seconds * 1000 + millis)
    }

    /// Checks `line` against what Lambda's log-level filtering reads: one
    /// JSON object with a `level` it knows and a valid RFC 3339
    /// `timestamp`, here in UTC to the millisecond as Lambda writes its own.
    /// Returns it parsed.
    pub(crate) fn assert_lambda_line(line: &str) -> Value {
        assert!(!line.contains('\n'), "one line: {line}");
        let parsed: Value = serde_json::from_str(line).expect("a JSON object and nothing else");
        assert!(parsed.is_object(), "{line}");
        let level = parsed["level"].as_str().expect("a `level` string");
        assert!(LAMBDA_LEVELS.contains(&level), "{level}: {line}");
        let timestamp = parsed["timestamp"].as_str().expect("a `timestamp` string");
        assert!(parse_rfc3339(timestamp).is_some(), "RFC 3339: {line}");
        assert!(
            timestamp.len() == 24 && timestamp.ends_with('Z') && &timestamp[19..20] == ".",
            "UTC, to the millisecond: {timestamp}"
        );
        parsed
    }

    #[test]
    fn the_time_is_rfc3339_in_utc_to_the_millisecond() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (1_730_566_291_587, "2024-11-02T16:51:31.587Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(rfc3339_millis(ms), text, "{ms}");
        }
        // AWS's own example, to the microsecond, and an offset.
        assert_eq!(
            parse_rfc3339("2024-11-02T16:51:31.587199Z"),
            Some(1_730_566_291_587)
        );
        assert_eq!(
            parse_rfc3339("2024-11-02T17:51:31.587+01:00"),
            Some(1_730_566_291_587)
        );
        for not in [
            "2024-11-02",
            "2024-02-30T00:00:00Z",
            "2024-11-02T16:51:31.Z",
        ] {
            assert_eq!(parse_rfc3339(not), None, "{not}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_time_reads_back(ms in 0u64..=253_402_300_799_999) {
            let text = rfc3339_millis(ms);
            proptest::prop_assert_eq!(text.len(), 24);
            proptest::prop_assert_eq!(parse_rfc3339(&text), i64::try_from(ms).ok(), "{}", text);
        }
    }

    /// The lines the JSON layer writes, at each level, with the filter's
    /// lowest level; and the time before and after, in milliseconds.
    fn json_lines() -> (Vec<String>, i64, i64) {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = json_layer(move || writer.clone()).with_filter(filter(Some("trace")));
        let subscriber = tracing_subscriber::registry().with(layer);
        let before = i64::try_from(now_millis()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("invoke", request_id = "r-1");
            let _entered = span.enter();
            tracing::trace!(update_id = 1, "a trace");
            tracing::debug!(update_id = 2, "a debug");
            tracing::info!(update_id = 3, outcome = "answered", "update handled");
            tracing::warn!(update_id = 4, outcome = "wrong_url", "health check");
            tracing::error!(update_id = 5, error = "refused", "cannot start");
        });
        let after = i64::try_from(now_millis()).unwrap();
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (text.lines().map(str::to_owned).collect(), before, after)
    }

    #[test]
    fn json_lines_carry_the_level_and_timestamp_lambda_filters_by() {
        let (lines, before, after) = json_lines();
        let levels: Vec<_> = lines
            .iter()
            .map(|line| {
                let parsed = assert_lambda_line(line);
                let at = parse_rfc3339(parsed["timestamp"].as_str().unwrap()).unwrap();
                assert!((before..=after).contains(&at), "{before} {at} {after}");
                parsed["level"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(levels, ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]);
        // The other fields stay, at the top level.
        let warn: Value = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(
            (&warn["message"], &warn["outcome"], &warn["update_id"]),
            (&"health check".into(), &"wrong_url".into(), &4.into())
        );
        let error: Value = serde_json::from_str(&lines[4]).unwrap();
        assert_eq!(error["error"], "refused");
        assert!(error.get("target").is_none(), "{error}");
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What gets written at `level` of a trace event from the runtime's
    /// raw-event log, one from deep in the SDK, and one of ours, each inside
    /// a span as the runtime opens one per invocation.
    fn written_at(level: &str) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_filter(filter(Some(level)));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("invoke");
            let _entered = span.enter();
            tracing::trace!(target: "lambda_runtime::layers::api_response", "raw event");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "sdk body");
            tracing::trace!(target: "telegram_lambda_bot::webhook", "ours");
        });
        let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
        text
    }

    #[test]
    fn no_directive_lifts_the_cap_on_the_libraries_that_log_raw_events() {
        for level in [
            "TRACE",
            "trace,lambda_runtime=trace",
            "lambda_runtime::layers::api_response=trace,telegram_lambda_bot=trace",
            "lambda_runtime::layers=trace,aws_smithy_runtime::client=debug,telegram_lambda_bot=trace",
            "[invoke]=trace",
        ] {
            let written = written_at(level);
            assert!(!written.contains("raw event"), "{level}: {written}");
            assert!(!written.contains("sdk body"), "{level}: {written}");
            assert!(written.contains("ours"), "{level}: {written}");
        }
    }

    #[test]
    fn an_unusable_level_means_info() {
        assert!(!written_at("not a level").contains("ours"));
    }

    #[test]
    fn a_capped_crate_is_matched_by_name_not_by_prefix() {
        assert!(is_capped("hyper"));
        assert!(is_capped("hyper::proto::h1"));
        assert!(!is_capped("hyperactive"));
        assert!(!is_capped("telegram_lambda_bot::client"));
    }
}
