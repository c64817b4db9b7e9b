//! The real `webhook` binary under a Lambda Runtime API, with its logs as
//! Lambda gets them: with metrics on and LogLevel WARN, each update and
//! each health check is still one line, carrying its metrics; without
//! metrics, WARN drops those INFO lines as before. Every line carries the
//! `level` and `timestamp` Lambda's own log-level filtering reads: without
//! them Lambda takes a line as INFO, and drops it at WARN or ERROR.

use crate::helpers::{event, update_in, SECRET};
use lambda_runtime_api::{Invocation, Options as RuntimeOptions, Report, RuntimeApi};
use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;
use telegram_lambda_bot::runtime::logging::rfc3339_millis;
use telegram_stand_in::StandIn;

/// Now, as the function writes its time: RFC 3339 in UTC, to the
/// millisecond (`src/runtime/logging.rs` checks the format itself).
fn now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    rfc3339_millis(u64::try_from(ms).unwrap())
}

/// Checks `line` is what Lambda's log-level filtering reads ("Log-level
/// filtering", AWS Lambda Developer Guide): a JSON object with a `level`
/// Lambda knows and a valid RFC 3339 `timestamp`, here written between
/// `before` and `after`. Returns it parsed.
fn assert_lambda_line(line: &str, before: &str, after: &str) -> Value {
    let parsed: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("JSON: {line}"));
    let level = parsed["level"].as_str().unwrap_or_else(|| panic!("{line}"));
    assert!(
        ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].contains(&level),
        "{line}"
    );
    let timestamp = parsed["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("a timestamp: {line}"));
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    assert!(
        timestamp.len() == shape.len()
            && timestamp
                .bytes()
                .zip(shape.bytes())
                .all(|(t, s)| if s == b'd' {
                    t.is_ascii_digit()
                } else {
                    t == s
                }),
        "RFC 3339, UTC, to the millisecond: {line}"
    );
    // The shape has a fixed width, so the text orders as the time does.
    assert!(
        (before..=after).contains(&timestamp),
        "{before} <= {timestamp} <= {after}"
    );
    parsed
}

/// Runs the function with `metrics` (a namespace or none) at LogLevel WARN
/// on the sample text update, then on the health check's sample event;
/// returns its log lines.
async fn log_lines(stand_in: &StandIn, metrics: Option<&str>) -> Vec<String> {
    let mut runtime_api = RuntimeApi::start(RuntimeOptions::default()).await.unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_webhook"));
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.addr().to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "telegram-bot-WebhookFunction-1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_LEVEL", "TRACE")
        .env("RUST_LOG", "WARN")
        .env("TELEGRAM_BOT_TOKEN", stand_in.token())
        .env("TELEGRAM_API_BASE_URL", stand_in.base_url())
        .env("TELEGRAM_WEBHOOK_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(namespace) = metrics {
        command.env("METRICS_NAMESPACE", namespace);
    }
    let mut child = command.spawn().unwrap();
    let text = event("text");
    stand_in.observe_update(&update_in(&text).unwrap());
    for (id, event) in [("update", text), ("check", event("health-check"))] {
        runtime_api
            .queue(Invocation::new(id, event.to_string()))
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match runtime_api.report().await.unwrap() {
                    Report::Response { request_id, .. } if request_id == id => break,
                    Report::Error { body, .. } | Report::InitError { body, .. } => {
                        panic!("the function failed: {}", String::from_utf8_lossy(&body))
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("the function answers");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut output = String::new();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut stream = stream;
        stream.read_to_string(&mut output).unwrap();
    }
    output.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_each_update_is_one_line_that_survives_warn() {
    let stand_in = StandIn::start(Default::default()).await.unwrap();
    let before = now();
    let lines = log_lines(&stand_in, Some("TelegramBot")).await;
    let after = now();
    assert_eq!(lines.len(), 2, "one line per invocation: {lines:#?}");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| assert_lambda_line(l, &before, &after))
        .collect();
    let update = &parsed[0];
    assert_eq!(update["outcome"], "answered", "{update}");
    assert_eq!(update["level"], "INFO");
    assert_eq!(update["function"], "telegram-bot-WebhookFunction-1");
    assert_eq!(update["Updates"], 1.0);
    assert!(update["BotApiLatency"].as_f64().unwrap() > 0.0, "{update}");
    assert_eq!(
        update["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "TelegramBot"
    );
    let check = &parsed[1];
    assert_eq!(
        (check["message"].as_str(), check["outcome"].as_str()),
        (Some("health check"), Some("wrong_url"))
    );
    assert_eq!(check["HealthCheckFailed"], 0.0);
    let all = lines.join("\n");
    let token_secret = stand_in.token().split(':').nth(1).unwrap();
    assert!(
        !all.contains(token_secret) && !all.contains(SECRET),
        "{all}"
    );
    assert!(!all.contains("Hi!"), "no message text: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metrics_warn_drops_the_info_lines_as_before() {
    let stand_in = StandIn::start(Default::default()).await.unwrap();
    let before = now();
    let lines = log_lines(&stand_in, None).await;
    let after = now();
    // The update's INFO line is filtered; the wrong URL is a warning.
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let check = assert_lambda_line(&lines[0], &before, &after);
    assert_eq!(
        (check["level"].as_str(), check["outcome"].as_str()),
        (Some("WARN"), Some("wrong_url"))
    );
    assert!(check.get("_aws").is_none(), "no metrics, nothing to bill");
}

#[test]
fn an_error_at_start_is_a_line_lambda_keeps_at_error() {
    let before = now();
    let output = Command::new(env!("CARGO_BIN_EXE_webhook"))
        .env_clear()
        // In Lambda (JSON lines), without a token: it cannot start.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_LOG_LEVEL", "ERROR")
        .output()
        .unwrap();
    let after = now();
    assert!(!output.status.success());
    let mut text = String::from_utf8(output.stdout).unwrap();
    text.push_str(&String::from_utf8(output.stderr).unwrap());
    // main's `Err` is then printed by std as text (`Error: ...`), which
    // Lambda counts as INFO; the JSON line before it says the same.
    let json: Vec<Value> = text
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| assert_lambda_line(line, &before, &after))
        .collect();
    assert_eq!(json.len(), 1, "{text}");
    assert_eq!(
        (json[0]["level"].as_str(), json[0]["message"].as_str()),
        (Some("ERROR"), Some("cannot start")),
        "{text}"
    );
    assert!(
        json[0]["error"]
            .as_str()
            .is_some_and(|error| error.contains("TELEGRAM_BOT_TOKEN")),
        "{text}"
    );
}
