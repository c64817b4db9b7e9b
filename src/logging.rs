//! Structured logs: JSON lines in Lambda (CloudWatch indexes their fields),
//! human-readable text elsewhere.

use tracing_subscriber::EnvFilter;

/// Libraries that log requests, events or responses whole at debug or trace:
/// the runtime (the raw event, with the webhook secret header and the
/// message text), the HTTP stack (headers), the AWS SDK (the decrypted
/// parameter). They stay at info whatever level is asked for.
const CAPPED: &[&str] = &[
    "lambda_runtime=info",
    "lambda_runtime_api_client=info",
    "lambda_http=info",
    "reqwest=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "rustls=info",
    "aws_config=info",
    "aws_smithy_runtime=info",
    "aws_smithy_runtime_api=info",
    "aws_smithy_http_client=info",
    "aws_sdk_ssm=info",
    "aws_sdk_sts=info",
    "aws_runtime=info",
];

/// The filter for `level` (a level or `RUST_LOG`-style directives), with the
/// libraries above capped at info. An unusable value means `info`.
pub fn filter(level: Option<&str>) -> EnvFilter {
    let mut filter = level
        .and_then(|level| EnvFilter::try_new(level.to_lowercase()).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    for directive in CAPPED {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level.as_deref()))
        .with_target(false)
        .with_writer(std::io::stderr);
    // Metric lines need JSON: CloudWatch reads `_aws` from a JSON object.
    if json {
        if let Some(target) = crate::metrics::Target::from_lookup(|name| std::env::var(name).ok()) {
            crate::metrics::install(crate::metrics::Sink::stderr(target));
        }
    }
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.with_ansi(!in_lambda).try_init()
    };
    // Already installed (tests, embedding): keep the existing one.
    drop(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn enabled_at_trace(level: &str) -> (bool, bool) {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(Some(level)))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            (
                tracing::event_enabled!(target: "lambda_runtime::layers::api_response", Level::TRACE),
                tracing::event_enabled!(target: "telegram_lambda_bot::webhook", Level::TRACE),
            )
        })
    }

    #[test]
    fn trace_never_reaches_the_runtimes_raw_event_log() {
        assert_eq!(enabled_at_trace("TRACE"), (false, true));
        assert_eq!(
            enabled_at_trace("trace,lambda_runtime=trace"),
            (false, true)
        );
        assert_eq!(enabled_at_trace("not a level"), (false, false));
    }
}
