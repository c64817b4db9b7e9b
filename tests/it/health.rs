//! The scheduled health check against the stand-in: the schedule's event
//! through the real handler, and what getWebhookInfo tells it about a
//! healthy webhook, a growing backlog, a recent delivery error, a wrong URL,
//! and a Telegram it cannot reach in time.

use crate::helpers::{api_for, serve_function, spawn, spawn_with, webhook_for, Setup, SECRET};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::runtime::client::BotApi;
use telegram_lambda_bot::runtime::health::{Health, HealthCheck};
use telegram_lambda_bot::runtime::metrics::Target;
use telegram_lambda_bot::telegram::SetWebhook;
use telegram_stand_in::{Fault, StandIn};
use tokio::time::Instant;

fn event(expected_url: &str) -> Value {
    json!({"health_check": {"expected_url": expected_url}})
}

fn check(expected_url: &str) -> HealthCheck {
    HealthCheck::of_event(&event(expected_url)).unwrap()
}

async fn set_webhook(api: &BotApi, url: &str) {
    api.set_webhook(&SetWebhook {
        url: url.to_owned(),
        secret_token: Some(SECRET.to_owned()),
        ..SetWebhook::default()
    })
    .await
    .unwrap();
}

/// A loopback URL nothing listens on: every delivery to it fails.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/webhook")
}

fn reported(health: &Health) -> (u64, Option<u64>, Option<bool>) {
    match health {
        Health::Reported {
            pending_updates,
            seconds_since_last_error,
            url_matches,
            ..
        } => (*pending_updates, *seconds_since_last_error, *url_matches),
        Health::Failed(error) => panic!("the check failed: {error}"),
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[tokio::test]
async fn a_healthy_webhook_is_reported_through_the_function() {
    let t = spawn().await;
    let url = serve_function(Arc::new(webhook_for(&t.stand_in))).await;
    set_webhook(&api_for(&t.stand_in), &url).await;
    let response = t.invoke(event(&url)).await;
    assert_eq!((response.status, response.body.as_str()), (200, "reported"));
    let lines = t.logs.outcome_lines();
    assert_eq!(lines.len(), 1, "one line per check: {lines:?}");
    let line = &lines[0];
    assert_eq!(line["message"], "health check");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["pending_update_count"], 0);
    assert_eq!(line["url_matches"], true);
    assert!(line.get("seconds_since_last_error").is_none(), "{line}");
    assert_eq!(
        t.stand_in.calls_to("getWebhookInfo").len(),
        1,
        "one call, no retry"
    );
    t.assert_token_not_logged();
}

#[tokio::test]
async fn the_sample_event_is_a_health_check() {
    let t = spawn().await;
    let sample = crate::helpers::event("health-check");
    let expected = sample["health_check"]["expected_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(HealthCheck::of_event(&sample), Some(check(&expected)));
    let response = t.invoke(sample).await;
    // No webhook is set at the stand-in: Telegram delivers nowhere.
    assert_eq!(response.body, "wrong_url");
}

#[tokio::test]
async fn a_growing_backlog_is_reported_as_pending_updates() {
    let stand_in = StandIn::start(Default::default()).await.unwrap();
    let api = api_for(&stand_in);
    let url = dead_url().await;
    set_webhook(&api, &url).await;
    for n in 0..2 {
        stand_in.enqueue_text(42, &format!("hi {n}"));
    }
    let first = check(&url).run(&api, soon()).await;
    for n in 2..5 {
        stand_in.enqueue_text(43, &format!("hi {n}"));
    }
    let second = check(&url).run(&api, soon()).await;
    assert_eq!(reported(&first).0, 2);
    assert_eq!(reported(&second).0, 5);
    assert_eq!(second.outcome(), "reported");
    let line = second.line().to_json(&target(), 1_700_000_000_000);
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (
            line["PendingUpdates"].as_f64(),
            line["HealthCheckFailed"].as_f64()
        ),
        (Some(5.0), Some(0.0))
    );
    assert!(
        !line.to_string().contains("hi 4"),
        "no update's text in the line"
    );
}

#[tokio::test]
async fn a_recent_delivery_error_is_reported_with_its_age() {
    let stand_in = StandIn::start(Default::default()).await.unwrap();
    let api = api_for(&stand_in);
    set_webhook(&api, "https://bot.example/webhook").await;
    stand_in.record_delivery_error("Wrong response from the webhook: 502 Bad Gateway", 30);
    let health = check("https://bot.example/webhook").run(&api, soon()).await;
    let (_, age, matches) = reported(&health);
    assert!((30..=32).contains(&age.unwrap()), "{age:?}");
    assert_eq!(matches, Some(true));
    let Health::Reported {
        last_error_message, ..
    } = &health
    else {
        unreachable!()
    };
    assert_eq!(
        last_error_message.as_deref(),
        Some("Wrong response from the webhook: 502 Bad Gateway")
    );
    let line: Value =
        serde_json::from_str(&health.line().to_json(&target(), 1_700_000_000_000)).unwrap();
    assert!((30.0..=32.0).contains(&line["SecondsSinceLastError"].as_f64().unwrap()));
}

#[tokio::test]
async fn another_url_or_no_webhook_is_reported_as_wrong() {
    let stand_in = StandIn::start(Default::default()).await.unwrap();
    let api = api_for(&stand_in);
    let expected = "https://bot.example/webhook";
    let none = check(expected).run(&api, soon()).await;
    assert_eq!(
        (none.outcome(), reported(&none).2),
        ("wrong_url", Some(false))
    );
    set_webhook(&api, "https://someone-else.example/webhook").await;
    let other = check(expected).run(&api, soon()).await;
    assert_eq!(
        (other.outcome(), reported(&other).2),
        ("wrong_url", Some(false))
    );
    let line: Value =
        serde_json::from_str(&other.line().to_json(&target(), 1_700_000_000_000)).unwrap();
    assert_eq!(
        (line["level"].as_str(), line["WebhookUrlMatches"].as_f64()),
        (Some("WARN"), Some(0.0))
    );
}

#[tokio::test]
async fn telegram_unreachable_is_a_failed_check_and_a_metric() {
    let t = spawn_with(Setup {
        base_url: Some(dead_url().await.trim_end_matches("/webhook").to_owned()),
        ..Setup::default()
    })
    .await;
    let started = Instant::now();
    let response = t.invoke(event("https://bot.example/webhook")).await;
    assert_eq!(response.body, "failed");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let lines = t.logs.outcome_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "failed");
    assert_eq!(lines[0]["level"], "WARN");
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{}",
        lines[0]
    );
    t.assert_token_not_logged();
}

#[tokio::test]
async fn a_slow_telegram_is_given_up_inside_the_deadline_without_retrying() {
    let stand_in = StandIn::start(Default::default()).await.unwrap();
    let api = api_for(&stand_in);
    stand_in.inject("getWebhookInfo", Fault::slow(5_000));
    let started = Instant::now();
    let health = check("https://bot.example/webhook")
        .run(&api, Instant::now() + Duration::from_millis(400))
        .await;
    let took = started.elapsed();
    assert!(matches!(health, Health::Failed(_)), "{health:?}");
    assert!(took < Duration::from_millis(1_000), "{took:?}");
    let line: Value =
        serde_json::from_str(&health.line().to_json(&target(), 1_700_000_000_000)).unwrap();
    assert_eq!(line["HealthCheckFailed"], 1.0);
    assert_eq!(stand_in.calls_to("getWebhookInfo").len(), 1, "no retry");
}

#[tokio::test]
async fn a_refused_token_is_a_failed_check_logged_as_an_error() {
    let t = spawn_with(Setup {
        token: Some("123:wrong-token".to_owned()),
        ..Setup::default()
    })
    .await;
    let response = t.invoke(event("https://bot.example/webhook")).await;
    assert_eq!(response.body, "failed");
    let lines = t.logs.outcome_lines();
    assert_eq!(
        (lines[0]["outcome"].as_str(), lines[0]["level"].as_str()),
        (Some("failed"), Some("ERROR"))
    );
}

fn target() -> Target {
    Target {
        namespace: "TelegramBot".to_owned(),
        function: "bot".to_owned(),
    }
}
