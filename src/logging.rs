//! Structured logs: JSON lines in Lambda (CloudWatch indexes their fields),
//! human-readable text elsewhere.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. The level comes from `RUST_LOG`, else from
/// Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`. JSON is used when running in
/// Lambda or when `LOG_FORMAT=json`; `LOG_FORMAT=text` forces text.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok())
        .and_then(|level| EnvFilter::try_new(level.to_lowercase()).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let json = match std::env::var("LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("text") => false,
        _ => in_lambda,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
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
