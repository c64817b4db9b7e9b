//! Metrics without an API call: CloudWatch's embedded metric format (EMF).
//! A JSON log line with an `_aws` block is turned into metrics by CloudWatch
//! Logs as it is ingested, so the function needs no `PutMetricData` call, no
//! permission and no client for them.
//!
//! Metrics are on when the logs are JSON and `METRICS_NAMESPACE` is set (the
//! template sets it with `Monitoring=On`). Then the lines that carry them
//! (one per update, one per health check) are written here, past tracing's
//! level filter, so that a WARN level keeps every one; every other line still
//! goes through tracing. Off, those lines go through tracing as before, with
//! no `_aws` block: CloudWatch would bill each metric it extracts.
//!
//! Dimensions are the line's own `function` and `outcome` fields, so no value
//! is written twice and none can be a chat, a user or a text.

use crate::logging::{now_millis, rfc3339_millis};
use serde::Serialize;
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use tracing::Level;

/// The variable naming the metrics' namespace; empty or unset is no metrics.
pub const NAMESPACE_VAR: &str = "METRICS_NAMESPACE";
/// The most values one metric may carry in one line (the format's limit).
const MAX_VALUES: usize = 100;

/// CloudWatch units used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
    None,
}

/// A metric's name and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
}

/// One per update (or refused request), by outcome: their sum is the count.
pub const UPDATES: Metric = Metric {
    name: "Updates",
    unit: Unit::Count,
};
/// Each Bot API call's time, one value per call.
pub const BOT_API_LATENCY: Metric = Metric {
    name: "BotApiLatency",
    unit: Unit::Milliseconds,
};
/// Each store call's time, one value per call.
pub const STORE_LATENCY: Metric = Metric {
    name: "StoreLatency",
    unit: Unit::Milliseconds,
};
/// One per chat record set aside because it could not be read or grew
/// past the store's limit (see [`crate::memory`]).
pub const RECORDS_SET_ASIDE: Metric = Metric {
    name: "RecordsSetAside",
    unit: Unit::Count,
};
/// Telegram's `pending_update_count`, from the health check.
pub const PENDING_UPDATES: Metric = Metric {
    name: "PendingUpdates",
    unit: Unit::Count,
};
/// Age of Telegram's last delivery error; absent when it reports none.
pub const SECONDS_SINCE_LAST_ERROR: Metric = Metric {
    name: "SecondsSinceLastError",
    unit: Unit::Seconds,
};
/// 1 when Telegram delivers to the expected URL, 0 when not.
pub const WEBHOOK_URL_MATCHES: Metric = Metric {
    name: "WebhookUrlMatches",
    unit: Unit::None,
};
/// 1 when the health check could not ask Telegram, 0 when it could: every
/// run reports it, so its absence means the check did not run.
pub const HEALTH_CHECK_FAILED: Metric = Metric {
    name: "HealthCheckFailed",
    unit: Unit::Count,
};

/// The line's fields that are also dimensions.
const FUNCTION: &str = "function";
const OUTCOME: &str = "outcome";

/// Every field a [`Line`] may have, as [`Line::trace`] records them.
pub const TRACED: [&str; 13] = [
    "update_id",
    "kind",
    "chat_type",
    "outcome",
    "duration_ms",
    "method",
    "reason",
    "aside_key",
    "pending_update_count",
    "seconds_since_last_error",
    "last_error_message",
    "url_matches",
    "error",
];

/// A log line that may carry metrics: a level, a message, fields, and
/// metric values, counted per function or per function and outcome.
#[derive(Debug, Clone)]
pub struct Line {
    level: Level,
    message: &'static str,
    fields: Map<String, Value>,
    by_outcome: Vec<(Metric, Vec<f64>)>,
    by_function: Vec<(Metric, Vec<f64>)>,
}

impl Line {
    pub fn new(level: Level, message: &'static str) -> Self {
        Line {
            level,
            message,
            fields: Map::new(),
            by_outcome: Vec::new(),
            by_function: Vec::new(),
        }
    }

    /// A field of the log line; `None` leaves it out. Its name is one of
    /// [`TRACED`], so that the line reads the same through tracing.
    pub fn field(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        debug_assert!(TRACED.contains(&name), "{name} is not in TRACED");
        match value.into() {
            Value::Null => {}
            value => {
                self.fields.insert(name.to_owned(), value);
            }
        }
        self
    }

    /// A metric by function and the line's `outcome` field.
    pub fn by_outcome(mut self, metric: Metric, value: f64) -> Self {
        self.by_outcome.push((metric, vec![value]));
        self
    }

    /// A metric by function; without values it is left out.
    pub fn by_function(mut self, metric: Metric, mut values: Vec<f64>) -> Self {
        values.truncate(MAX_VALUES);
        if !values.is_empty() {
            self.by_function.push((metric, values));
        }
        self
    }

    /// The line through tracing, for when metrics are off: the same level,
    /// message and fields. tracing's field names are constants at the call
    /// site, so the names any line may have are listed here, once for
    /// every line ([`TRACED`]); one it does not have is left out.
    pub fn trace(&self) {
        let text = |name: &str| self.fields.get(name).and_then(Value::as_str);
        let number = |name: &str| self.fields.get(name).and_then(Value::as_i64);
        let flag = |name: &str| self.fields.get(name).and_then(Value::as_bool);
        let message = self.message;
        macro_rules! at {
            ($event:ident) => {
                tracing::$event!(
                    update_id = number("update_id"),
                    kind = text("kind"),
                    chat_type = text("chat_type"),
                    outcome = text("outcome"),
                    duration_ms = number("duration_ms"),
                    method = text("method"),
                    reason = text("reason"),
                    aside_key = text("aside_key"),
                    pending_update_count = number("pending_update_count"),
                    seconds_since_last_error = number("seconds_since_last_error"),
                    last_error_message = text("last_error_message"),
                    url_matches = flag("url_matches"),
                    error = text("error"),
                    "{message}"
                )
            };
        }
        match self.level {
            Level::ERROR => at!(error),
            Level::WARN => at!(warn),
            Level::INFO => at!(info),
            Level::DEBUG => at!(debug),
            _ => at!(trace),
        }
    }

    /// The line as one JSON object, with the `_aws` block that tells
    /// CloudWatch which members are metrics (`timestamp_ms`: when they were
    /// measured). The members tracing's JSON lines have (`timestamp`,
    /// `level`, `message`, the fields), so both read alike in CloudWatch
    /// and Lambda filters both by level.
    pub fn to_json(&self, target: &Target, timestamp_ms: u64) -> String {
        let mut root = Map::new();
        root.insert("message".into(), self.message.into());
        root.extend(self.fields.clone());
        // What Lambda's log-level filtering reads (see [`crate::logging`]),
        // after the fields so that none can take their place.
        root.insert("timestamp".into(), rfc3339_millis(timestamp_ms).into());
        root.insert("level".into(), self.level.as_str().into());
        root.insert(FUNCTION.into(), target.function.clone().into());
        // A count by outcome needs the `outcome` member its dimension names.
        let by_outcome: &[_] = match root.get(OUTCOME) {
            Some(Value::String(_)) => &self.by_outcome,
            _ => &[],
        };
        let mut directives = Vec::new();
        for (dimensions, metrics) in [
            (&[FUNCTION, OUTCOME][..], by_outcome),
            (&[FUNCTION][..], &self.by_function[..]),
        ] {
            if metrics.is_empty() {
                continue;
            }
            for (metric, values) in metrics {
                let value = match values.as_slice() {
                    [one] => Value::from(*one),
                    many => Value::from(many.to_vec()),
                };
                root.insert(metric.name.into(), value);
            }
            directives.push(Directive {
                namespace: &target.namespace,
                dimensions: vec![dimensions],
                metrics: metrics
                    .iter()
                    .map(|(metric, _)| Definition {
                        name: metric.name,
                        unit: metric.unit,
                    })
                    .collect(),
            });
        }
        if !directives.is_empty() {
            let aws = Metadata {
                timestamp: timestamp_ms,
                cloud_watch_metrics: directives,
            };
            if let Ok(aws) = serde_json::to_value(aws) {
                root.insert("_aws".into(), aws);
            }
        }
        Value::Object(root).to_string()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata<'a> {
    timestamp: u64,
    #[serde(rename = "CloudWatchMetrics")]
    cloud_watch_metrics: Vec<Directive<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive<'a> {
    namespace: &'a str,
    dimensions: Vec<&'static [&'static str]>,
    metrics: Vec<Definition>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Definition {
    name: &'static str,
    unit: Unit,
}

/// Where metrics go: the namespace, and the function they are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub function: String,
}

impl Target {
    /// From `METRICS_NAMESPACE` and Lambda's `AWS_LAMBDA_FUNCTION_NAME`;
    /// `None` when no namespace is set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let namespace = lookup(NAMESPACE_VAR)?.trim().to_owned();
        if namespace.is_empty() {
            return None;
        }
        let function = lookup("AWS_LAMBDA_FUNCTION_NAME")
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "bot".to_owned());
        Some(Target {
            namespace,
            function,
        })
    }
}

/// Writes metric lines, one whole line per write.
pub struct Sink {
    target: Target,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Sink {
    pub fn new(target: Target, out: Box<dyn Write + Send>) -> Self {
        Sink {
            target,
            out: Mutex::new(out),
        }
    }

    /// To stderr, where tracing writes the other lines.
    pub fn stderr(target: Target) -> Self {
        Self::new(target, Box::new(std::io::stderr()))
    }

    pub fn write(&self, line: &Line) {
        let mut text = line.to_json(&self.target, now_millis());
        text.push('\n');
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // A log line that cannot be written has nowhere to be reported.
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Turns metrics on for the process (at start, with the logs).
pub fn install(sink: Sink) {
    let _ = SINK.set(sink);
}

/// The process's sink, when metrics are on.
pub fn sink() -> Option<&'static Sink> {
    SINK.get()
}

/// Writes `line` to `sink` when metrics are on; otherwise logs it through
/// tracing. Either way one line, built once.
pub fn emit_to(sink: Option<&Sink>, line: &Line) {
    match sink {
        Some(sink) => sink.write(line),
        None => line.trace(),
    }
}

/// [`emit_to`] the process's sink.
pub fn emit(line: &Line) {
    emit_to(sink(), line)
}

/// The calls timed while an update is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    BotApi,
    Store,
}

/// What one update's calls took, in milliseconds, one value per call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spent {
    pub bot_api: Vec<f64>,
    pub store: Vec<f64>,
}

tokio::task_local! {
    // Per task, not passed along: the calls are made deep in the Bot API
    // and store paths, and a parameter through each would only carry this.
    static SPENT: std::cell::RefCell<Spent>;
}

/// Runs `work`, returning with it what its timed calls took.
pub async fn measured<T>(work: impl std::future::Future<Output = T>) -> (T, Spent) {
    SPENT
        .scope(Default::default(), async {
            let result = work.await;
            (result, SPENT.with(|spent| spent.take()))
        })
        .await
}

/// Runs `call`, adding its time to the update being measured, if any.
pub async fn timed<T>(kind: Call, call: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let result = call.await;
    let took = millis_of(started.elapsed());
    let _ = SPENT.try_with(|spent| {
        let mut spent = spent.borrow_mut();
        match kind {
            Call::BotApi => spent.bot_api.push(took),
            Call::Store => spent.store.push(took),
        }
    });
    result
}

/// Milliseconds, to the microsecond.
pub fn millis_of(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    pub(crate) fn target() -> Target {
        Target {
            namespace: "TelegramBot".to_owned(),
            function: "telegram-bot-WebhookFunction-abc".to_owned(),
        }
    }

    /// Checks `line` against the format's rules (CloudWatch's "Specification:
    /// Embedded metric format"), and returns it parsed.
    pub(crate) fn assert_valid_emf(line: &str) -> Value {
        assert!(!line.contains('\n'), "one line: {line}");
        let root: Value = serde_json::from_str(line).expect("a JSON object and nothing else");
        let root = root.as_object().expect("the root is an object");
        let aws = root["_aws"].as_object().expect("_aws is an object");
        let timestamp = aws["Timestamp"]
            .as_u64()
            .expect("Timestamp: ms since the epoch");
        assert!(timestamp > 1_600_000_000_000, "{timestamp}");
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .expect("an array of directives");
        assert!(!directives.is_empty());
        for directive in directives {
            let directive = directive.as_object().unwrap();
            let keys: Vec<_> = directive.keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                ["Dimensions", "Metrics", "Namespace"],
                "no other members"
            );
            let namespace = directive["Namespace"].as_str().unwrap();
            assert!((1..=1024).contains(&namespace.len()) && !namespace.starts_with("AWS/"));
            for set in directive["Dimensions"].as_array().unwrap() {
                let set = set.as_array().unwrap();
                assert!((1..=30).contains(&set.len()));
                for name in set {
                    let value = &root[name.as_str().unwrap()];
                    let value = value
                        .as_str()
                        .unwrap_or_else(|| panic!("dimension {name} is a string member"));
                    assert!((1..=1024).contains(&value.len()));
                }
            }
            let metrics = directive["Metrics"].as_array().unwrap();
            assert!((1..=100).contains(&metrics.len()));
            for metric in metrics {
                let name = metric["Name"].as_str().unwrap();
                assert!((1..=1024).contains(&name.len()));
                let unit = metric["Unit"].as_str().unwrap();
                assert!(
                    ["Count", "Milliseconds", "Seconds", "None"].contains(&unit),
                    "{unit}"
                );
                match &root[name] {
                    Value::Number(_) => {}
                    Value::Array(values) => {
                        assert!((1..=100).contains(&values.len()));
                        assert!(values.iter().all(Value::is_number), "{name}: numbers");
                    }
                    other => panic!("metric {name} is a number or numbers, got {other}"),
                }
            }
        }
        Value::Object(root.clone())
    }

    #[derive(Clone, Default)]
    pub(crate) struct Buffer(pub Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        pub(crate) fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    fn dimensions_of(line: &Value, metric: &str) -> Vec<Vec<String>> {
        line["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["Name"] == metric)
            })
            .flat_map(|d| {
                serde_json::from_value::<Vec<Vec<String>>>(d["Dimensions"].clone()).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_line_names_its_metrics_units_and_dimensions() {
        let line = Line::new(Level::INFO, "update handled")
            .field("outcome", "answered")
            .field("update_id", 7)
            .by_outcome(UPDATES, 1.0)
            .by_function(BOT_API_LATENCY, vec![12.5, 3.25])
            .by_function(STORE_LATENCY, vec![]);
        let json = line.to_json(&target(), 1_700_000_000_000);
        let parsed = assert_valid_emf(&json);
        crate::logging::tests::assert_lambda_line(&json);
        assert_eq!(parsed["level"], "INFO");
        assert_eq!(parsed["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(parsed["message"], "update handled");
        assert_eq!(parsed["Updates"], 1.0);
        assert_eq!(parsed["BotApiLatency"], serde_json::json!([12.5, 3.25]));
        assert!(parsed.get("StoreLatency").is_none(), "no values, no metric");
        assert_eq!(parsed["function"], "telegram-bot-WebhookFunction-abc");
        assert_eq!(dimensions_of(&parsed, "Updates"), [["function", "outcome"]]);
        assert_eq!(dimensions_of(&parsed, "BotApiLatency"), [["function"]]);
        assert_eq!(parsed["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(
            parsed["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "TelegramBot"
        );
        let units: Vec<_> = parsed["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["Metrics"].as_array().unwrap().clone())
            .map(|m| {
                (
                    m["Name"].as_str().unwrap().to_owned(),
                    m["Unit"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            units,
            [
                ("Updates".to_owned(), "Count".to_owned()),
                ("BotApiLatency".to_owned(), "Milliseconds".to_owned())
            ]
        );
    }

    #[test]
    fn a_line_without_metrics_has_no_aws_block() {
        let json = Line::new(Level::WARN, "x")
            .field("outcome", "y")
            .to_json(&target(), 1);
        let parsed = crate::logging::tests::assert_lambda_line(&json);
        assert!(parsed.get("_aws").is_none(), "{json}");
        assert_eq!(parsed["level"], "WARN");
        assert_eq!(parsed["timestamp"], "1970-01-01T00:00:00.001Z");
    }

    #[test]
    fn no_field_takes_the_place_of_the_level_or_the_time() {
        // Not names `field` takes (TRACED), but the JSON must not depend
        // on that.
        let mut line = Line::new(Level::ERROR, "x");
        line.fields.insert("level".into(), "debug".into());
        line.fields.insert("timestamp".into(), "yesterday".into());
        let json = line.to_json(&target(), 1_700_000_000_000);
        let parsed = crate::logging::tests::assert_lambda_line(&json);
        assert_eq!(
            (&parsed["level"], &parsed["timestamp"]),
            (&"ERROR".into(), &"2023-11-14T22:13:20.000Z".into())
        );
    }

    #[test]
    fn a_count_by_outcome_needs_an_outcome_field() {
        let json = Line::new(Level::INFO, "x")
            .by_outcome(UPDATES, 1.0)
            .to_json(&target(), 1_700_000_000_000);
        let parsed: Value = serde_json::from_str(&json).unwrap();
        assert!(
            parsed.get("_aws").is_none(),
            "a dimension without its member is invalid: {json}"
        );
    }

    #[test]
    fn a_metric_carries_at_most_100_values() {
        let json = Line::new(Level::INFO, "x")
            .by_function(STORE_LATENCY, vec![1.0; 250])
            .to_json(&target(), 1_700_000_000_000);
        let parsed = assert_valid_emf(&json);
        assert_eq!(parsed["StoreLatency"].as_array().unwrap().len(), 100);
    }

    /// What tracing writes while `work` runs, as JSON lines.
    fn traced(work: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let writer = {
            let buffer = buffer.clone();
            move || buffer.clone()
        };
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(Level::TRACE)
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, work);
        buffer
            .lines()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn a_line_through_tracing_has_its_level_message_and_every_field() {
        let mut line = Line::new(Level::WARN, "every field");
        for (n, name) in TRACED.iter().enumerate() {
            line = match *name {
                "url_matches" => line.field(name, true),
                "update_id"
                | "duration_ms"
                | "pending_update_count"
                | "seconds_since_last_error" => line.field(name, n as i64),
                _ => line.field(name, format!("text {n}")),
            };
        }
        let lines = traced(|| line.trace());
        assert_eq!(lines.len(), 1);
        let written = &lines[0];
        assert_eq!(written["level"], "WARN");
        assert_eq!(written["message"], "every field");
        for (name, value) in &line.fields {
            assert_eq!(&written[name], value, "{name}");
        }
        assert_eq!(line.fields.len(), TRACED.len());
        // A field the line lacks is left out, not written empty.
        let lines = traced(|| {
            Line::new(Level::INFO, "few")
                .field("kind", "message")
                .trace()
        });
        let names: Vec<&String> = lines[0].as_object().unwrap().keys().collect();
        assert!(!names.iter().any(|n| n.as_str() == "error"), "{names:?}");
        assert_eq!(lines[0]["kind"], "message");
    }

    #[test]
    fn metrics_on_write_one_line_and_nothing_through_tracing() {
        let buffer = Buffer::default();
        let sink = Sink::new(target(), Box::new(buffer.clone()));
        let line = Line::new(Level::INFO, "m")
            .field("outcome", "answered")
            .by_outcome(UPDATES, 1.0);
        let before = now_millis();
        let through_tracing = traced(|| emit_to(Some(&sink), &line));
        let after = now_millis();
        assert!(through_tracing.is_empty());
        let lines = buffer.lines();
        assert_eq!(lines.len(), 1);
        let parsed = assert_valid_emf(&lines[0]);
        crate::logging::tests::assert_lambda_line(&lines[0]);
        // One time for Lambda and for the metrics, written now.
        let at = parsed["_aws"]["Timestamp"].as_u64().unwrap();
        assert!((before..=after).contains(&at), "{before} {at} {after}");
        let timestamp = parsed["timestamp"].as_str().unwrap();
        assert_eq!(
            crate::logging::tests::parse_rfc3339(timestamp),
            i64::try_from(at).ok()
        );
        let through_tracing = traced(|| emit_to(None, &line));
        assert_eq!((through_tracing.len(), buffer.lines().len()), (1, 1));
        assert_eq!(through_tracing[0]["outcome"], "answered");
    }

    #[test]
    fn the_target_comes_from_the_namespace_and_the_function_name() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(Target::from_lookup(vars(&[])), None);
        assert_eq!(
            Target::from_lookup(vars(&[("METRICS_NAMESPACE", " ")])),
            None
        );
        assert_eq!(
            Target::from_lookup(vars(&[
                ("METRICS_NAMESPACE", "TelegramBot"),
                ("AWS_LAMBDA_FUNCTION_NAME", "f")
            ])),
            Some(Target {
                namespace: "TelegramBot".to_owned(),
                function: "f".to_owned()
            })
        );
    }

    #[tokio::test]
    async fn calls_are_timed_within_the_measured_work_only() {
        timed(Call::Store, async {}).await; // outside: counted nowhere
        let ((), spent) = measured(async {
            timed(
                Call::BotApi,
                tokio::time::sleep(std::time::Duration::from_millis(20)),
            )
            .await;
            timed(Call::Store, async {}).await;
            timed(Call::Store, async {}).await;
        })
        .await;
        assert_eq!((spent.bot_api.len(), spent.store.len()), (1, 2));
        assert!(spent.bot_api[0] >= 20.0, "{spent:?}");
    }

    #[test]
    fn milliseconds_keep_microseconds() {
        assert_eq!(millis_of(std::time::Duration::from_micros(12_345)), 12.345);
    }
}
