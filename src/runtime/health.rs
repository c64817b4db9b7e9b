//! The scheduled health check: every few minutes the schedule invokes the
//! function with `{"health_check": {"expected_url": "..."}}`, and it asks
//! Telegram (getWebhookInfo) how delivery to it goes. What it finds is one
//! log line with metrics: the updates waiting at Telegram, the age of the
//! last delivery error, whether Telegram delivers to the expected URL, and
//! whether the check itself could ask.
//!
//! The same binary as the webhook, told apart by the event's shape (API
//! Gateway and Function URL events always have `requestContext`): nothing
//! more to build or deploy, no second copy of the configuration, and the
//! Bot API client is already there. One call, bounded in time, never
//! retried: the next run is the retry.

use crate::client::{ApiError, BotApi, Failure};
use crate::error::Chain;
use crate::metrics::{self, Line};
use crate::telegram::WebhookInfo;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::Level;

/// The most a check takes, well inside the function's timeout and the
/// schedule's period.
pub const BUDGET: Duration = Duration::from_secs(10);

/// What the schedule asks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HealthCheck {
    /// The URL Telegram should deliver to: the stack's webhook URL. Passed
    /// in the event because the function cannot know its own endpoint's
    /// URL from its configuration (the endpoint refers to the function).
    #[serde(default)]
    pub expected_url: Option<String>,
}

impl HealthCheck {
    /// The check `event` asks for; `None` for any other event.
    pub fn of_event(event: &Value) -> Option<Self> {
        if event.get("requestContext").is_some() {
            return None;
        }
        serde_json::from_value(event.get("health_check")?.clone()).ok()
    }

    /// Asks Telegram, once, giving up at `deadline` or after [`BUDGET`].
    pub async fn run(&self, api: &BotApi, deadline: Instant) -> Health {
        let deadline = deadline.min(Instant::now() + BUDGET);
        match api.get_webhook_info_before(deadline).await {
            Ok(info) => Health::of(&info, self.expected_url.as_deref(), now_secs()),
            Err(error) => Health::Failed(error),
        }
    }
}

/// What a check found.
#[derive(Debug)]
pub enum Health {
    /// Telegram answered.
    Reported {
        pending_updates: u64,
        /// Seconds since Telegram's last failed delivery; `None` when it
        /// reports none.
        seconds_since_last_error: Option<u64>,
        /// Telegram's words for that failure (never a user's text).
        last_error_message: Option<String>,
        /// Whether the webhook is the expected URL; `None` when none was
        /// given to compare with.
        url_matches: Option<bool>,
    },
    /// Telegram could not be asked: unreachable, too slow, or refusing the
    /// token.
    Failed(ApiError),
}

impl Health {
    /// Reads getWebhookInfo's answer, at `now` (Unix seconds).
    pub fn of(info: &WebhookInfo, expected_url: Option<&str>, now: i64) -> Self {
        Health::Reported {
            pending_updates: info.pending_update_count,
            seconds_since_last_error: info
                .last_error_date
                .filter(|date| *date > 0)
                .map(|date| u64::try_from(now.saturating_sub(date)).unwrap_or(0)),
            last_error_message: info.last_error_message.clone(),
            url_matches: expected_url.map(|expected| info.url == expected),
        }
    }

    /// `reported`, `wrong_url` or `failed`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Health::Reported {
                url_matches: Some(false),
                ..
            } => "wrong_url",
            Health::Reported { .. } => "reported",
            Health::Failed(_) => "failed",
        }
    }

    fn level(&self) -> Level {
        match self {
            Health::Failed(error) if error.failure() == Failure::Configuration => Level::ERROR,
            Health::Failed(_)
            | Health::Reported {
                url_matches: Some(false),
                ..
            } => Level::WARN,
            Health::Reported { .. } => Level::INFO,
        }
    }

    /// The check's one line and its metrics.
    pub fn line(&self) -> Line {
        let line = Line::new(self.level(), "health check").field("outcome", self.outcome());
        match self {
            Health::Reported {
                pending_updates,
                seconds_since_last_error,
                last_error_message,
                url_matches,
            } => line
                .field("pending_update_count", *pending_updates)
                .field("seconds_since_last_error", *seconds_since_last_error)
                .field("last_error_message", last_error_message.clone())
                .field("url_matches", *url_matches)
                .by_function(metrics::PENDING_UPDATES, vec![*pending_updates as f64])
                .by_function(
                    metrics::SECONDS_SINCE_LAST_ERROR,
                    seconds_since_last_error
                        .map(|s| s as f64)
                        .into_iter()
                        .collect(),
                )
                .by_function(
                    metrics::WEBHOOK_URL_MATCHES,
                    url_matches
                        .map(|m| f64::from(u8::from(m)))
                        .into_iter()
                        .collect(),
                )
                .by_function(metrics::HEALTH_CHECK_FAILED, vec![0.0]),
            Health::Failed(error) => line
                .field("error", Chain(error).to_string())
                .by_function(metrics::HEALTH_CHECK_FAILED, vec![1.0]),
        }
    }

    /// Logs the line: with its metrics when they are on, else through
    /// tracing.
    pub fn log(&self) {
        metrics::emit(&self.line());
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{assert_valid_emf, target};
    use serde_json::json;

    fn info(value: Value) -> WebhookInfo {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_a_health_check_event_is_one() {
        let event = json!({"health_check": {"expected_url": "https://x/webhook"}});
        assert_eq!(
            HealthCheck::of_event(&event),
            Some(HealthCheck {
                expected_url: Some("https://x/webhook".to_owned())
            })
        );
        assert_eq!(
            HealthCheck::of_event(&json!({"health_check": {}})),
            Some(HealthCheck { expected_url: None })
        );
        let request = json!({"requestContext": {"http": {"method": "POST"}}, "health_check": {}});
        assert_eq!(HealthCheck::of_event(&request), None);
        assert_eq!(HealthCheck::of_event(&json!({"update_id": 1})), None);
        assert_eq!(HealthCheck::of_event(&json!([1])), None);
    }

    #[test]
    fn a_report_becomes_metrics_by_function() {
        let found = Health::of(
            &info(
                json!({"url": "https://x/webhook", "pending_update_count": 12,
                         "last_error_date": 1_000, "last_error_message": "Wrong response from the webhook: 502 Bad Gateway"}),
            ),
            Some("https://x/webhook"),
            1_090,
        );
        assert_eq!(found.outcome(), "reported");
        let line = assert_valid_emf(&found.line().to_json(&target(), 1_700_000_000_000));
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["PendingUpdates"], 12.0);
        assert_eq!(line["SecondsSinceLastError"], 90.0);
        assert_eq!(line["WebhookUrlMatches"], 1.0);
        assert_eq!(line["HealthCheckFailed"], 0.0);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["function"]])
        );
    }

    #[test]
    fn another_url_or_none_is_wrong() {
        for url in ["https://other/webhook", ""] {
            let found = Health::of(&info(json!({"url": url})), Some("https://x/webhook"), 0);
            assert_eq!(found.outcome(), "wrong_url");
            let line = assert_valid_emf(&found.line().to_json(&target(), 1_700_000_000_000));
            assert_eq!(
                (line["level"].as_str(), line["WebhookUrlMatches"].as_f64()),
                (Some("WARN"), Some(0.0))
            );
            assert!(
                line.get("SecondsSinceLastError").is_none(),
                "no error, no age"
            );
        }
    }

    #[test]
    fn a_failed_check_is_a_metric_too() {
        let failed = Health::Failed(ApiError::Timeout {
            method: "getWebhookInfo",
            waited: Duration::from_secs(10),
        });
        let line = assert_valid_emf(&failed.line().to_json(&target(), 1_700_000_000_000));
        assert_eq!(line["outcome"], "failed");
        assert_eq!(line["HealthCheckFailed"], 1.0);
        assert!(line.get("PendingUpdates").is_none());
    }
}
