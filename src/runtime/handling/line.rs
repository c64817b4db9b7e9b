//! The one line logged per update, with its metrics.

use super::*;

/// The one line logged per update, the same in both delivery modes, with the
/// error that decided the outcome, if any, and what its calls took. Never
/// the message text. With metrics on it carries them (see
/// [`crate::metrics`]) and is written whatever the log level.
pub fn log_update(
    update: &Update,
    outcome: Outcome,
    started: Instant,
    error: Option<&dyn std::error::Error>,
    spent: &Spent,
) {
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let error = error.map(|e| Chain(e).to_string());
    metrics::emit(&update_line(update, outcome, duration_ms, error, spent));
}

/// The level of an update's line: what needs a look is a warning, what
/// needs the operator an error.
fn level_of(outcome: Outcome) -> Level {
    match outcome {
        Outcome::ConfigurationFailure { .. } => Level::ERROR,
        Outcome::PermanentFailure | Outcome::RetryableFailure { .. } => Level::WARN,
        _ => Level::INFO,
    }
}

fn message_of(outcome: Outcome) -> &'static str {
    match level_of(outcome) {
        Level::ERROR => "update failed: the configuration needs a fix (the token, the base URL, the table or its permissions: see error)",
        Level::WARN => "update failed",
        _ => "update handled",
    }
}

/// An update's line with its metrics: one count by outcome, and each Bot API
/// and store call's time.
pub fn update_line(
    update: &Update,
    outcome: Outcome,
    duration_ms: u64,
    error: Option<String>,
    spent: &Spent,
) -> Line {
    Line::new(level_of(outcome), message_of(outcome))
        .field("update_id", update.id.0)
        .field("kind", update.kind_name())
        .field(
            "chat_type",
            update.chat().map(|c| c.kind.as_str()).unwrap_or("none"),
        )
        .field("outcome", outcome.as_str())
        .field("duration_ms", duration_ms)
        .field("error", error)
        .by_outcome(metrics::UPDATES, 1.0)
        .by_function(metrics::BOT_API_LATENCY, spent.bot_api.clone())
        .by_function(metrics::STORE_LATENCY, spent.store.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{assert_valid_emf, target, Buffer};
    use crate::metrics::Sink;
    use serde_json::{json, Value};

    const TEXT: &str = "my bank PIN is 4321";
    const TOKEN: &str = "123456789:AAStandIn-token_for-unit-tests-only";

    fn text_update() -> Update {
        Update::from_value(json!({"update_id": 77, "message": {
            "message_id": 5, "date": 1_700_000_000, "text": TEXT,
            "from": {"id": 42, "is_bot": false, "first_name": "Ali", "username": "ali_user"},
            "chat": {"id": 42, "type": "private", "first_name": "Ali"}}}))
        .unwrap()
    }

    fn line_json(outcome: Outcome, error: Option<String>, spent: &Spent) -> Value {
        let line = update_line(&text_update(), outcome, 31, error, spent);
        assert_valid_emf(&line.to_json(&target(), 1_700_000_000_000))
    }

    #[test]
    fn an_update_line_counts_it_by_outcome_and_times_each_call() {
        let spent = Spent {
            bot_api: vec![48.5, 12.0],
            store: vec![4.0, 5.5, 6.25],
        };
        let line = line_json(Outcome::Answered, None, &spent);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["outcome"], "answered");
        assert_eq!(line["update_id"], 77);
        assert_eq!(line["kind"], "message");
        assert_eq!(line["chat_type"], "private");
        assert_eq!(line["duration_ms"], 31);
        assert_eq!(line["Updates"], 1.0);
        assert_eq!(line["BotApiLatency"], json!([48.5, 12.0]));
        assert_eq!(line["StoreLatency"], json!([4.0, 5.5, 6.25]));
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(
            directives[0]["Dimensions"],
            json!([["function", "outcome"]])
        );
        assert_eq!(
            directives[0]["Metrics"],
            json!([{"Name": "Updates", "Unit": "Count"}])
        );
        assert_eq!(directives[1]["Dimensions"], json!([["function"]]));
        assert_eq!(
            directives[1]["Metrics"],
            json!([{"Name": "BotApiLatency", "Unit": "Milliseconds"}, {"Name": "StoreLatency", "Unit": "Milliseconds"}])
        );
    }

    #[test]
    fn each_outcome_has_its_level_and_a_dimension_value() {
        let cases = [
            (Outcome::Answered, "INFO"),
            (Outcome::Duplicate, "INFO"),
            (Outcome::Ignored, "INFO"),
            (
                Outcome::InProgress {
                    retry_after: Duration::from_secs(1),
                },
                "INFO",
            ),
            (Outcome::PermanentFailure, "WARN"),
            (Outcome::RetryableFailure { retry_after: None }, "WARN"),
            (Outcome::ConfigurationFailure { told: false }, "ERROR"),
            (Outcome::ConfigurationFailure { told: true }, "ERROR"),
        ];
        for (outcome, level) in cases {
            let line = line_json(outcome, None, &Spent::default());
            assert_eq!(line["level"], level, "{outcome:?}");
            assert_eq!(line["outcome"], outcome.as_str());
            assert!(line.get("BotApiLatency").is_none(), "no call, no latency");
        }
    }

    #[test]
    fn an_update_line_holds_no_text_no_user_and_no_token() {
        // An error as the client words it: no URL, so no token.
        let error = ApiError::Telegram {
            method: "sendMessage",
            code: 403,
            description: "Forbidden: bot was blocked by the user".to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        };
        let line = update_line(
            &text_update(),
            Outcome::PermanentFailure,
            9,
            Some(Chain(&error).to_string()),
            &Spent::default(),
        )
        .to_json(&target(), 1_700_000_000_000);
        assert_valid_emf(&line);
        for private in [TEXT, "ali_user", "Ali", TOKEN, "AAStandIn"] {
            assert!(!line.contains(private), "{private} in {line}");
        }
    }

    #[test]
    fn with_metrics_on_an_update_is_one_line_whatever_the_log_level() {
        let buffer = Buffer::default();
        let sink = Sink::new(target(), Box::new(buffer.clone()));
        // A subscriber that drops everything below WARN, as LogLevel=WARN.
        let (logs, _guard) = testkit_like_capture();
        // A WARN outcome: a tracing line, if one were written too, would
        // pass the filter and be seen.
        let failed = update_line(
            &text_update(),
            Outcome::PermanentFailure,
            1,
            None,
            &Spent::default(),
        );
        metrics::emit_to(Some(&sink), &failed);
        assert_eq!(buffer.lines().len(), 1);
        assert!(
            logs.lock().unwrap().is_empty(),
            "and nothing through tracing"
        );
        let answered = update_line(
            &text_update(),
            Outcome::Answered,
            1,
            None,
            &Spent::default(),
        );
        metrics::emit_to(None, &answered);
        assert!(
            logs.lock().unwrap().is_empty(),
            "off, the INFO line is filtered"
        );
        assert_eq!(buffer.lines().len(), 1);
    }

    type Captured = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

    fn testkit_like_capture() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = {
            let captured = captured.clone();
            move || Buffer(captured.clone())
        };
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_filter(crate::logging::filter(Some("WARN")));
        let subscriber = tracing_subscriber::registry().with(layer);
        (captured, tracing::subscriber::set_default(subscriber))
    }
}
