//! The real `webhook` binary under a Lambda Runtime API, with its logs as
//! Lambda gets them: with metrics on and LogLevel WARN, each update and
//! each health check is still one line, carrying its metrics; without
//! metrics, WARN drops those INFO lines as before.

use crate::helpers::{event, update_in, SECRET};
use lambda_runtime_api::{Invocation, Options as RuntimeOptions, Report, RuntimeApi};
use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;
use telegram_stand_in::StandIn;

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
    let lines = log_lines(&stand_in, Some("TelegramBot")).await;
    assert_eq!(lines.len(), 2, "one line per invocation: {lines:#?}");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
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
    let lines = log_lines(&stand_in, None).await;
    // The update's INFO line is filtered; the wrong URL is a warning.
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let check: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        (check["level"].as_str(), check["outcome"].as_str()),
        (Some("WARN"), Some("wrong_url"))
    );
    assert!(check.get("_aws").is_none(), "no metrics, nothing to bill");
}
