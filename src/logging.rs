//! Structured logs: JSON lines in Lambda (CloudWatch indexes their fields),
//! human-readable text elsewhere.

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{filter_fn, FilterExt};
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
    "aws_sdk_ssm",
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
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    // Metric lines need JSON: CloudWatch reads `_aws` from a JSON object.
    if json {
        if let Some(target) = crate::metrics::Target::from_lookup(|name| std::env::var(name).ok()) {
            crate::metrics::install(crate::metrics::Sink::stderr(target));
        }
    }
    let result = if json {
        let layer = layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time();
        tracing_subscriber::registry()
            .with(layer.with_filter(filter(level.as_deref())))
            .try_init()
    } else {
        let layer = layer.with_ansi(!in_lambda);
        tracing_subscriber::registry()
            .with(layer.with_filter(filter(level.as_deref())))
            .try_init()
    };
    // Already installed (tests, embedding): keep the existing one.
    drop(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

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
