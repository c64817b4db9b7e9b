//! `bot doctor`: whether the deployed bot works, seen from outside as
//! Telegram and a user see it. The checks are pure functions from what was
//! observed to a [`Finding`]; [`run`] only gathers the observations (the
//! stack through the `aws` command, Telegram through the Bot API, the
//! endpoint through two POSTs) and prints one line per finding.

use serde_json::Value;
use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use telegram_lambda_bot::bot::ALLOWED_UPDATES;
use telegram_lambda_bot::client::{ApiError, BotApi};
use telegram_lambda_bot::config::{Config, ConfigError, InitError, WebhookSecret};
use telegram_lambda_bot::error::Chain;
use telegram_lambda_bot::ssm::Ssm;
use telegram_lambda_bot::telegram::{BotCommand, BotCommandError, Me, WebhookInfo};
use telegram_lambda_bot::webhook::SECRET_HEADER;

use crate::{human_age, menu_line};

/// A delivery error younger than this is a problem now; an older one is
/// history, since Telegram keeps the last error after delivery recovered.
const RECENT_ERROR_SECS: i64 = 600;
/// The endpoint's whole answer, cold start included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One `aws` call; the CLI retries throttling itself within this.
const AWS_TIMEOUT: Duration = Duration::from_secs(60);
/// The authenticated probe's body: JSON without `update_id`, which the
/// function acknowledges without sending anything, and which names its
/// sender for whoever reads the function's log.
const PROBE_BODY: &str = r#"{"bot_doctor":"a health check, not an update"}"#;

/// Exit status when the only problem is that the endpoint was not reached.
pub const EXIT_UNREACHABLE: u8 = 3;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The CloudFormation stack scripts/deploy created.
    #[arg(long, default_value = "telegram-bot")]
    stack_name: String,
    /// The stack's region; the AWS CLI's default otherwise.
    #[arg(long)]
    region: Option<String>,
    /// Check this webhook URL instead of reading a stack (the secret then
    /// comes from TELEGRAM_WEBHOOK_SECRET only).
    #[arg(long, conflicts_with = "stack_name")]
    url: Option<String>,
    /// With --url: the bot has no store, so its menu leaves out the
    /// commands that need memory.
    #[arg(long, requires = "url")]
    no_memory: bool,
    /// Count only delivery errors dated at or after this time (Unix
    /// seconds) as failures: scripts/deploy passes its setWebhook's time,
    /// since Telegram keeps an older error across a setWebhook that
    /// changes nothing. Without it, an error of the last 10 minutes fails.
    #[arg(long, value_name = "UNIX_SECONDS")]
    errors_since: Option<i64>,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    /// Worth knowing, not wrong.
    Note,
    Fail,
    /// The endpoint could not be reached: wrong too, but possibly only not
    /// yet (a new API's name takes a while to resolve everywhere).
    Unreachable,
}

impl Mark {
    fn label(self) -> &'static str {
        match self {
            Mark::Ok => "ok",
            Mark::Note => "note",
            Mark::Fail | Mark::Unreachable => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub mark: Mark,
    pub check: &'static str,
    pub detail: String,
}

impl Finding {
    fn new(mark: Mark, check: &'static str, detail: impl Into<String>) -> Self {
        Finding {
            mark,
            check,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4}  {}: {}",
            self.mark.label(),
            self.check,
            self.detail
        )
    }
}

/// 0 when nothing failed, [`EXIT_UNREACHABLE`] when the only failure is an
/// endpoint not reached, 1 otherwise.
pub fn exit_status(findings: &[Finding]) -> u8 {
    if findings.iter().any(|f| f.mark == Mark::Fail) {
        1
    } else if findings.iter().any(|f| f.mark == Mark::Unreachable) {
        EXIT_UNREACHABLE
    } else {
        0
    }
}

/// What the deployed stack says about the bot (its Outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub webhook_url: String,
    pub function_name: Option<String>,
    pub memory: bool,
    /// The bot's DynamoDB table, with memory on.
    pub memory_table: Option<String>,
    pub bot_username: Option<String>,
    pub token_parameter: Option<String>,
    pub secret_parameter: Option<String>,
    /// Deployed with `Monitoring=On`: it has alarms.
    pub monitoring: bool,
}

/// Why the stack's description is not usable.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("aws answered something other than the stack's JSON")]
    Json(#[from] serde_json::Error),
    #[error("no such stack in the answer")]
    NoStack,
    #[error("the stack has no {0} output (is it deployed by scripts/deploy, and finished?)")]
    NoOutput(&'static str),
}

/// Reads `aws cloudformation describe-stacks --output json`. Empty outputs
/// count as absent: BotUsername is empty when the deploy was not told it.
pub fn parse_stack(json: &[u8]) -> Result<Stack, StackError> {
    let answer: Value = serde_json::from_slice(json)?;
    let stack = answer
        .get("Stacks")
        .and_then(|s| s.get(0))
        .ok_or(StackError::NoStack)?;
    let empty = Vec::new();
    let outputs = stack
        .get("Outputs")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let output = |key: &str| {
        outputs
            .iter()
            .find(|o| o.get("OutputKey").and_then(Value::as_str) == Some(key))
            .and_then(|o| o.get("OutputValue").and_then(Value::as_str))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(Stack {
        webhook_url: output("WebhookUrl").ok_or(StackError::NoOutput("WebhookUrl"))?,
        function_name: output("FunctionName"),
        memory: output("MemoryTableName").is_some(),
        memory_table: output("MemoryTableName"),
        bot_username: output("BotUsername").map(|u| u.trim_start_matches('@').to_owned()),
        token_parameter: output("BotTokenParameter"),
        secret_parameter: output("WebhookSecretParameter"),
        monitoring: output("DashboardUrl").is_some(),
    })
}

fn stack_finding(name: &str, stack: &Stack) -> Finding {
    let mut detail = name.to_owned();
    if let Some(function) = &stack.function_name {
        detail.push_str(&format!(", function {function}"));
    }
    detail.push_str(if stack.memory {
        ", memory on"
    } else {
        ", memory off"
    });
    Finding::new(Mark::Ok, "stack", detail)
}

/// The token works, and belongs to the bot the stack was deployed for.
pub fn check_token(me: &Result<Me, ApiError>, expected: Option<&str>) -> Finding {
    let me = match me {
        Ok(me) => me,
        Err(error) => return Finding::new(Mark::Fail, "token", Chain(error).to_string()),
    };
    let username = me.username.as_deref().unwrap_or_default();
    match expected {
        Some(expected) if !expected.eq_ignore_ascii_case(username) => Finding::new(
            Mark::Fail,
            "token",
            format!("it is @{username}'s, but the stack is for @{expected}"),
        ),
        _ => Finding::new(Mark::Ok, "token", format!("@{username} (id {})", me.id)),
    }
}

/// Telegram delivers to the deployed URL, the update kinds the bot handles.
pub fn check_webhook(info: &WebhookInfo, expected_url: &str) -> Finding {
    let mut wanted: Vec<&str> = ALLOWED_UPDATES.to_vec();
    wanted.sort_unstable();
    let mut kinds: Vec<&str> = info
        .allowed_updates
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    kinds.sort_unstable();
    let shown_kinds = if kinds.is_empty() {
        "Telegram's default kinds".to_owned()
    } else {
        kinds.join(", ")
    };
    let mut problems = Vec::new();
    if info.url.is_empty() {
        problems.push(format!("none set, expected {expected_url}"));
    } else if info.url != expected_url {
        problems.push(format!(
            "Telegram has {}, expected {expected_url}",
            info.url
        ));
    }
    if kinds != wanted {
        problems.push(format!(
            "updates {shown_kinds}, expected {}",
            wanted.join(", ")
        ));
    }
    if problems.is_empty() {
        Finding::new(
            Mark::Ok,
            "webhook",
            format!("{} (updates {shown_kinds})", info.url),
        )
    } else {
        Finding::new(
            Mark::Fail,
            "webhook",
            format!("{} (scripts/deploy sets it)", problems.join("; ")),
        )
    }
}

/// Updates reach the function: no delivery error lately, or none since
/// `since`.
pub fn check_delivery(info: &WebhookInfo, now: i64, since: Option<i64>) -> Finding {
    let pending = format!("{} pending", info.pending_update_count);
    let Some(date) = info.last_error_date else {
        return Finding::new(
            Mark::Ok,
            "delivery",
            format!("{pending}, no delivery error"),
        );
    };
    let age = now.saturating_sub(date);
    let message = info.last_error_message.as_deref().unwrap_or("(no message)");
    let recent = match since {
        Some(since) => date >= since,
        None => age < RECENT_ERROR_SECS,
    };
    if recent {
        Finding::new(
            Mark::Fail,
            "delivery",
            format!("{pending}; last error {} ago: {message}", human_age(age)),
        )
    } else {
        Finding::new(
            Mark::Note,
            "delivery",
            format!(
                "{pending}; last error {} ago (old): {message}",
                human_age(age)
            ),
        )
    }
}

/// Why a probe got no HTTP answer. Shows no URL, header or body.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("could not connect")]
    Connect(#[source] reqwest::Error),
    #[error("the TLS handshake failed")]
    Tls(#[source] reqwest::Error),
    #[error("the request failed")]
    Request(#[source] reqwest::Error),
    #[error("could not build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl ProbeError {
    /// Not reached at all, as a name that does not resolve yet is not.
    fn unreachable(&self) -> bool {
        matches!(self, ProbeError::Timeout(_) | ProbeError::Connect(_))
    }

    fn from_reqwest(error: reqwest::Error) -> Self {
        let error = error.without_url();
        if error.is_timeout() {
            ProbeError::Timeout(PROBE_TIMEOUT)
        } else if error.is_connect() && is_tls(&error) {
            ProbeError::Tls(error)
        } else if error.is_connect() {
            ProbeError::Connect(error)
        } else {
            ProbeError::Request(error)
        }
    }
}

/// reqwest reports a failed handshake as a connect error: an I/O error
/// (kind Other) around tokio-rustls's `InvalidData` one around the TLS
/// error. A bad certificate is a problem to fix, not an endpoint to wait
/// for.
fn is_tls(error: &reqwest::Error) -> bool {
    fn invalid_data(io: &std::io::Error) -> bool {
        // An I/O error's `source` skips the error it wraps: look inside.
        io.kind() == std::io::ErrorKind::InvalidData
            || io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<std::io::Error>())
                .is_some_and(invalid_data)
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(invalid_data)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

fn probe_failed(error: &ProbeError) -> Finding {
    if error.unreachable() {
        Finding::new(
            Mark::Unreachable,
            "endpoint",
            format!("not reached: {}", Chain(error)),
        )
    } else {
        Finding::new(Mark::Fail, "endpoint", Chain(error).to_string())
    }
}

/// A request without the secret is refused, so nobody else can make the
/// bot act.
pub fn check_refusal(answer: &Result<u16, ProbeError>) -> Finding {
    match answer {
        Ok(401) => Finding::new(
            Mark::Ok,
            "endpoint",
            "refuses a request without the secret (401)",
        ),
        Ok(status @ 200..=299) => Finding::new(
            Mark::Fail,
            "endpoint",
            format!("accepted a request without the secret ({status}): anyone can post updates"),
        ),
        Ok(status) => Finding::new(
            Mark::Fail,
            "endpoint",
            format!("answered {status} to a request without the secret, expected 401"),
        ),
        Err(error) => probe_failed(error),
    }
}

/// The function takes the secret Telegram sends, and answers in time.
pub fn check_acceptance(answer: &Result<u16, ProbeError>) -> Finding {
    match answer {
        Ok(200) => Finding::new(
            Mark::Ok,
            "endpoint",
            "accepts an authenticated request that is not an update (200)",
        ),
        Ok(401) => Finding::new(
            Mark::Fail,
            "endpoint",
            "refused the webhook secret (401): the function has another one",
        ),
        Ok(status) => Finding::new(
            Mark::Fail,
            "endpoint",
            format!("answered {status} to an authenticated request, expected 200"),
        ),
        Err(error) => probe_failed(error),
    }
}

/// The table is the one the code needs: partition key `pk` (a string) and
/// no sort key, and TTL on `expires_at`. `described` is `aws dynamodb
/// describe-table`'s JSON, `ttl` `describe-time-to-live`'s. A table made
/// another way refuses every request (a 500 for every update), and one
/// without TTL keeps quiet chats' records for ever.
pub fn check_table(
    name: &str,
    described: &Result<Vec<u8>, AwsError>,
    ttl: &Result<Vec<u8>, AwsError>,
) -> Finding {
    let fail = |detail: String| Finding::new(Mark::Fail, "table", format!("{name}: {detail}"));
    let (described, ttl) = match (described, ttl) {
        (Err(error), _) | (_, Err(error)) => return fail(error.to_string()),
        (Ok(described), Ok(ttl)) => (described, ttl),
    };
    let (Ok(described), Ok(ttl)) = (
        serde_json::from_slice::<Value>(described),
        serde_json::from_slice::<Value>(ttl),
    ) else {
        return fail("aws answered something other than the table's JSON".to_owned());
    };
    let table = &described["Table"];
    let keys: Vec<(String, String)> = table["KeySchema"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    let field = |name: &str| k[name].as_str().unwrap_or_default().to_owned();
                    (field("AttributeName"), field("KeyType"))
                })
                .collect()
        })
        .unwrap_or_default();
    let type_of = |attribute: &str| {
        table["AttributeDefinitions"]
            .as_array()
            .and_then(|definitions| {
                definitions
                    .iter()
                    .find(|d| d["AttributeName"] == attribute)
                    .and_then(|d| d["AttributeType"].as_str())
            })
            .unwrap_or_default()
    };
    if keys != [("pk".to_owned(), "HASH".to_owned())] || type_of("pk") != "S" {
        let shown: Vec<String> = keys
            .iter()
            .map(|(name, kind)| format!("{name} ({kind}, {})", type_of(name)))
            .collect();
        return fail(format!(
            "its key is {}; the function needs a partition key pk of type S and no sort key, as template.yaml creates it",
            if shown.is_empty() { "unknown".to_owned() } else { shown.join(", ") }
        ));
    }
    let description = &ttl["TimeToLiveDescription"];
    let status = description["TimeToLiveStatus"]
        .as_str()
        .unwrap_or("DISABLED");
    let attribute = description["AttributeName"].as_str().unwrap_or_default();
    if !matches!(status, "ENABLED" | "ENABLING") || attribute != "expires_at" {
        return fail(format!(
            "TTL is {} (on {}); it must be on expires_at, or quiet chats' records and records set aside are never deleted",
            status.to_lowercase(),
            if attribute.is_empty() { "no attribute" } else { attribute }
        ));
    }
    Finding::new(
        Mark::Ok,
        "table",
        format!("{name}: key pk, TTL on expires_at"),
    )
}

async fn read_table(
    name: &str,
    region: Option<&str>,
) -> (Result<Vec<u8>, AwsError>, Result<Vec<u8>, AwsError>) {
    let described = describe_table("dynamodb describe-table", name, region).await;
    let ttl = describe_table("dynamodb describe-time-to-live", name, region).await;
    (described, ttl)
}

/// `aws dynamodb <verb> --table-name <name>`, for `call` "dynamodb <verb>".
async fn describe_table(
    call: &'static str,
    name: &str,
    region: Option<&str>,
) -> Result<Vec<u8>, AwsError> {
    let verb = call.trim_start_matches("dynamodb ");
    let args = ["dynamodb", verb, "--table-name", name, "--output", "json"];
    aws(call, &args, region).await
}

/// The alarms template.yaml creates with `Monitoring=On`, after the stack's
/// name and a dash.
pub const ALARMS: &[&str] = &["errors", "pending-updates", "health-check"];

/// The stack's alarms are quiet. `states` holds (name, state) as
/// CloudWatch reports them.
pub fn check_alarms(
    states: &Result<Vec<(String, String)>, AwsError>,
    expected: &[String],
    just_deployed: bool,
) -> Finding {
    let states = match states {
        Ok(states) => states,
        Err(error) => return Finding::new(Mark::Fail, "alarms", error.to_string()),
    };
    let state_of = |name: &String| {
        states
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, state)| state.as_str())
    };
    let missing: Vec<&str> = expected
        .iter()
        .filter(|name| state_of(name).is_none())
        .map(String::as_str)
        .collect();
    let firing: Vec<&str> = expected
        .iter()
        .filter(|name| state_of(name) == Some("ALARM"))
        .map(String::as_str)
        .collect();
    let waiting = expected
        .iter()
        .filter(|name| state_of(name) == Some("INSUFFICIENT_DATA"))
        .count();
    if !firing.is_empty() && just_deployed {
        // A new health-check alarm starts in ALARM until the first check
        // reports, and one raised by the incident a deploy fixes takes up
        // to 15 minutes to clear: neither is this deploy's failure.
        let detail = format!(
            "{} in ALARM; right after a deploy that may be old news: check again in 15 minutes",
            firing.join(", ")
        );
        return Finding::new(Mark::Note, "alarms", detail);
    }
    if !firing.is_empty() {
        let detail = format!(
            "{} in ALARM (README, Operate, says what each means)",
            firing.join(", ")
        );
        return Finding::new(Mark::Fail, "alarms", detail);
    }
    if !missing.is_empty() {
        let detail = format!(
            "{} not found (deploy again with --monitoring On)",
            missing.join(", ")
        );
        return Finding::new(Mark::Fail, "alarms", detail);
    }
    if waiting > 0 {
        // A new stack's alarms wait for their first data points.
        let detail = format!(
            "{} OK, {waiting} waiting for data",
            expected.len() - waiting
        );
        return Finding::new(Mark::Note, "alarms", detail);
    }
    Finding::new(Mark::Ok, "alarms", format!("{} OK", expected.len()))
}

async fn read_alarms(
    names: &[String],
    region: Option<&str>,
) -> Result<Vec<(String, String)>, AwsError> {
    let mut args = vec!["cloudwatch", "describe-alarms", "--alarm-names"];
    args.extend(names.iter().map(String::as_str));
    args.extend([
        "--query",
        "MetricAlarms[].[AlarmName,StateValue]",
        "--output",
        "json",
    ]);
    let json = aws("cloudwatch describe-alarms", &args, region).await?;
    serde_json::from_slice(&json).map_err(|_| AwsError::Failed {
        call: "cloudwatch describe-alarms",
        reason: "the answer is not a list of alarms".to_owned(),
    })
}

/// Telegram's command menu is the one the code would set.
pub fn check_menu(
    shown: &Result<Vec<BotCommand>, ApiError>,
    wanted: &Result<Vec<BotCommand>, BotCommandError>,
    memory: bool,
) -> Finding {
    let (shown, wanted) = match (shown, wanted) {
        (Err(error), _) => return Finding::new(Mark::Fail, "menu", Chain(error).to_string()),
        (_, Err(error)) => return Finding::new(Mark::Fail, "menu", Chain(error).to_string()),
        (Ok(shown), Ok(wanted)) => (shown, wanted),
    };
    if shown == wanted {
        return Finding::new(
            Mark::Ok,
            "menu",
            format!("{} (as in the code)", menu_line(shown)),
        );
    }
    let fix = if memory {
        "bot commands set"
    } else {
        "bot commands set --no-memory"
    };
    Finding::new(
        Mark::Fail,
        "menu",
        format!(
            "Telegram shows {}, the code has {} (run `{fix}`)",
            menu_line(shown),
            menu_line(wanted)
        ),
    )
}

/// Why an `aws` call gave nothing usable. Holds the first line of the
/// CLI's error output (it names the AWS error), never its standard output.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("cannot run `aws` (is the AWS CLI installed?)")]
    Spawn(#[source] std::io::Error),
    #[error("aws {call}: no answer within {secs} s", secs = AWS_TIMEOUT.as_secs())]
    Timeout { call: &'static str },
    #[error("aws {call} failed: {reason}")]
    Failed { call: &'static str, reason: String },
}

/// The first line of an `aws` error output, cut short, or the exit status
/// when it wrote nothing.
pub fn first_line(stderr: &[u8], status: std::process::ExitStatus) -> String {
    let text = String::from_utf8_lossy(stderr);
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => line.chars().take(300).collect(),
        None => format!("{status}"),
    }
}

async fn aws(call: &'static str, args: &[&str], region: Option<&str>) -> Result<Vec<u8>, AwsError> {
    let mut command = tokio::process::Command::new("aws");
    command
        .args(args)
        .env("AWS_PAGER", "")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(region) = region {
        command.args(["--region", region]);
    }
    let output = tokio::time::timeout(AWS_TIMEOUT, command.output())
        .await
        .map_err(|_| AwsError::Timeout { call })?
        .map_err(AwsError::Spawn)?;
    if !output.status.success() {
        return Err(AwsError::Failed {
            call,
            reason: first_line(&output.stderr, output.status),
        });
    }
    Ok(output.stdout)
}

/// Why the stack could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadStackError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Stack(#[from] StackError),
}

async fn read_stack(name: &str, region: Option<&str>) -> Result<Stack, ReadStackError> {
    let json = aws(
        "cloudformation describe-stacks",
        &[
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            name,
            "--output",
            "json",
        ],
        region,
    )
    .await?;
    Ok(parse_stack(&json)?)
}

/// Why the webhook secret stored with the stack could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    // The cause is in the message, not a `source`, so it is shown once.
    #[error("WebhookSecretParameter {name}: {error}")]
    Read { name: String, error: AwsError },
    #[error("WebhookSecretParameter {name} does not hold a webhook secret")]
    Invalid {
        name: String,
        #[source]
        source: ConfigError,
    },
}

async fn read_secret(name: &str, region: Option<&str>) -> Result<WebhookSecret, SecretError> {
    let value = aws(
        "ssm get-parameter",
        &[
            "ssm",
            "get-parameter",
            "--name",
            name,
            "--with-decryption",
            "--query",
            "Parameter.Value",
            "--output",
            "text",
        ],
        region,
    )
    .await
    .map_err(|error| SecretError::Read {
        name: name.to_owned(),
        error,
    })?;
    let value = String::from_utf8_lossy(&value);
    WebhookSecret::parse(value.trim()).map_err(|source| SecretError::Invalid {
        name: name.to_owned(),
        source,
    })
}

/// The configuration as the function reads it, the token from the stack's
/// parameter unless TELEGRAM_BOT_TOKEN is set. The parameter's name is
/// given through the lookup rather than by changing this process's
/// environment, which other threads read.
async fn load_config(
    token_parameter: Option<String>,
    region: Option<String>,
) -> Result<Config, ConfigError> {
    Config::load_with(
        move |name| match (name, &token_parameter) {
            ("TELEGRAM_BOT_TOKEN_PARAMETER", Some(parameter)) => Some(parameter.clone()),
            _ => std::env::var(name).ok(),
        },
        || async move {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(telegram_lambda_bot::ssm::http_client());
            if let Some(region) = region {
                loader = loader.region(aws_config::Region::new(region));
            }
            Ssm::from_sdk_config(&loader.load().await)
        },
    )
    .await
}

/// POSTs to the endpoint as Telegram does: one try, no redirects, a fresh
/// connection each time.
struct Probe {
    http: reqwest::Client,
}

impl Probe {
    fn new(config: &Config) -> Result<Self, ProbeError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(PROBE_CONNECT_TIMEOUT)
            .timeout(PROBE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0);
        for certificate in &config.extra_root_certificates {
            builder = builder.add_root_certificate(certificate.clone());
        }
        let http = builder
            .build()
            .map_err(|e| ProbeError::Client(e.without_url()))?;
        Ok(Probe { http })
    }

    async fn post(&self, url: &str, secret: Option<&WebhookSecret>) -> Result<u16, ProbeError> {
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(PROBE_BODY);
        if let Some(secret) = secret {
            request = request.header(SECRET_HEADER, secret.expose());
        }
        let response = request.send().await.map_err(ProbeError::from_reqwest)?;
        Ok(response.status().as_u16())
    }
}

/// The findings so far, each printed as it is made: the endpoint's probes
/// can take seconds, and a person watching sees where it is.
#[derive(Default)]
struct Report {
    findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, finding: Finding) {
        println!("{finding}");
        self.findings.push(finding);
    }
}

/// What is checked against: the stack's outputs, or --url.
struct Target {
    url: String,
    memory: bool,
    /// The stack's table, when it has one; `None` with --url.
    table: Option<String>,
    /// The stack's alarms, when it has them; `None` with --url.
    alarms: Option<Vec<String>>,
    bot_username: Option<String>,
    token_parameter: Option<String>,
    secret_parameter: Option<String>,
}

pub async fn run(args: DoctorArgs) -> ExitCode {
    let mut report = Report::default();
    check(&args, &mut report).await;
    let status = exit_status(&report.findings);
    match status {
        0 => {}
        EXIT_UNREACHABLE => {
            let again = match &args.url {
                Some(url) => format!("bot doctor --url {url}"),
                None => match &args.region {
                    Some(region) => format!(
                        "bot doctor --stack-name {} --region {region}",
                        args.stack_name
                    ),
                    None => format!("bot doctor --stack-name {}", args.stack_name),
                },
            };
            eprintln!(
                "bot: the endpoint could not be reached, and nothing else is wrong; \
                 a new one's name can take minutes to resolve: run `{again}` later"
            );
        }
        _ => {
            let failed = report
                .findings
                .iter()
                .filter(|f| matches!(f.mark, Mark::Fail | Mark::Unreachable))
                .count();
            let s = if failed == 1 { "" } else { "s" };
            eprintln!("bot: {failed} check{s} failed");
        }
    }
    ExitCode::from(status)
}

async fn check(args: &DoctorArgs, report: &mut Report) {
    let region = args.region.as_deref();
    let target = match &args.url {
        Some(url) => Target {
            url: url.clone(),
            memory: !args.no_memory,
            table: None,
            alarms: None,
            bot_username: None,
            token_parameter: None,
            secret_parameter: None,
        },
        None => match read_stack(&args.stack_name, region).await {
            Ok(stack) => {
                report.add(stack_finding(&args.stack_name, &stack));
                let alarms = ALARMS
                    .iter()
                    .map(|alarm| format!("{}-{alarm}", args.stack_name))
                    .collect();
                Target {
                    url: stack.webhook_url,
                    memory: stack.memory,
                    table: stack.memory_table,
                    alarms: stack.monitoring.then_some(alarms),
                    bot_username: stack.bot_username,
                    token_parameter: stack.token_parameter,
                    secret_parameter: stack.secret_parameter,
                }
            }
            Err(error) => {
                let detail = format!("{}: {}", args.stack_name, Chain(&error));
                report.add(Finding::new(Mark::Fail, "stack", detail));
                return;
            }
        },
    };
    let ready = match load_config(target.token_parameter.clone(), args.region.clone()).await {
        Ok(config) => BotApi::new(&config).map(|api| (config, api)),
        Err(error) => Err(InitError::from(error)),
    };
    let (config, api) = match ready {
        Ok(ready) => ready,
        Err(error) => {
            report.add(Finding::new(Mark::Fail, "token", Chain(&error).to_string()));
            return;
        }
    };

    let me = api.get_me().await;
    report.add(check_token(&me, target.bot_username.as_deref()));

    match api.get_webhook_info().await {
        Ok(info) => {
            report.add(check_webhook(&info, &target.url));
            report.add(check_delivery(&info, unix_now(), args.errors_since));
        }
        Err(error) => report.add(Finding::new(
            Mark::Fail,
            "webhook",
            Chain(&error).to_string(),
        )),
    }

    probe_endpoint(&config, &target, region, report).await;

    if let Some(table) = &target.table {
        let (described, ttl) = read_table(table, region).await;
        report.add(check_table(table, &described, &ttl));
    }

    let wanted = crate::code_menu(target.memory);
    let shown = api.get_my_commands().await;
    report.add(check_menu(&shown, &wanted, target.memory));

    if args.url.is_none() {
        report.add(match &target.alarms {
            Some(names) => check_alarms(
                &read_alarms(names, region).await,
                names,
                args.errors_since.is_some(),
            ),
            None => Finding::new(
                Mark::Note,
                "alarms",
                "none: monitoring is off (scripts/deploy --monitoring On)",
            ),
        });
    }
}

async fn probe_endpoint(
    config: &Config,
    target: &Target,
    region: Option<&str>,
    report: &mut Report,
) {
    let probe = match Probe::new(config) {
        Ok(probe) => probe,
        Err(error) => {
            report.add(Finding::new(
                Mark::Fail,
                "endpoint",
                Chain(&error).to_string(),
            ));
            return;
        }
    };
    let refused = probe.post(&target.url, None).await;
    let not_reached = matches!(&refused, Err(error) if error.unreachable());
    report.add(check_refusal(&refused));
    if not_reached {
        return; // the second request would only say so again
    }
    let secret = match (&config.webhook_secret, &target.secret_parameter) {
        (Some(secret), _) => Ok(secret.clone()),
        (None, Some(name)) => read_secret(name, region).await,
        (None, None) => {
            report.add(Finding::new(
                Mark::Note,
                "endpoint",
                "authenticated request not tried: set TELEGRAM_WEBHOOK_SECRET",
            ));
            return;
        }
    };
    match secret {
        Ok(secret) => report.add(check_acceptance(
            &probe.post(&target.url, Some(&secret)).await,
        )),
        Err(error) => report.add(Finding::new(
            Mark::Fail,
            "endpoint",
            format!("authenticated request not tried: {}", Chain(&error)),
        )),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod alarm_tests {
    use super::*;

    fn names() -> Vec<String> {
        ALARMS.iter().map(|a| format!("bot-{a}")).collect()
    }

    fn states(states: &[&str]) -> Result<Vec<(String, String)>, AwsError> {
        Ok(names()
            .into_iter()
            .zip(states.iter().map(|s| s.to_string()))
            .collect())
    }

    #[test]
    fn an_alarm_firing_fails_naming_it_and_a_new_one_is_a_note() {
        assert_eq!(
            check_alarms(&states(&["OK", "OK", "OK"]), &names(), false),
            Finding::new(Mark::Ok, "alarms", "3 OK")
        );
        let firing = check_alarms(
            &states(&["OK", "ALARM", "INSUFFICIENT_DATA"]),
            &names(),
            false,
        );
        assert_eq!(firing.mark, Mark::Fail);
        assert!(
            firing.detail.starts_with("bot-pending-updates in ALARM"),
            "{}",
            firing.detail
        );
        let new = check_alarms(
            &states(&["OK", "INSUFFICIENT_DATA", "INSUFFICIENT_DATA"]),
            &names(),
            false,
        );
        assert_eq!(
            new,
            Finding::new(Mark::Note, "alarms", "1 OK, 2 waiting for data")
        );
        let missing = check_alarms(&states(&["OK", "OK"]), &names(), false);
        // Right after a deploy, an alarm still firing is a note.
        let deployed = check_alarms(&states(&["ALARM", "OK", "OK"]), &names(), true);
        assert_eq!(deployed.mark, Mark::Note);
        assert_eq!(missing.mark, Mark::Fail);
        assert!(missing.detail.starts_with("bot-health-check not found"));
        let denied = check_alarms(
            &Err(AwsError::Failed {
                call: "cloudwatch describe-alarms",
                reason: "An error occurred (AccessDenied)".to_owned(),
            }),
            &names(),
            false,
        );
        assert_eq!(denied.mark, Mark::Fail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use telegram_lambda_bot::telegram::UserId;

    fn table_json(keys: Value, types: Value) -> Result<Vec<u8>, AwsError> {
        Ok(
            json!({"Table": {"TableName": "t", "KeySchema": keys, "AttributeDefinitions": types}})
                .to_string()
                .into_bytes(),
        )
    }

    fn ttl_json(status: &str, attribute: &str) -> Result<Vec<u8>, AwsError> {
        Ok(json!({"TimeToLiveDescription": {"TimeToLiveStatus": status, "AttributeName": attribute}})
            .to_string()
            .into_bytes())
    }

    #[test]
    fn the_table_must_have_the_codes_key_and_ttl() {
        let pk = || {
            table_json(
                json!([{"AttributeName": "pk", "KeyType": "HASH"}]),
                json!([{"AttributeName": "pk", "AttributeType": "S"}]),
            )
        };
        let good = check_table("t", &pk(), &ttl_json("ENABLED", "expires_at"));
        assert_eq!(
            good.to_string(),
            "ok    table: t: key pk, TTL on expires_at"
        );
        let other_key = table_json(
            json!([{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}]),
            json!([{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "at", "AttributeType": "N"}]),
        );
        let wrong = check_table("t", &other_key, &ttl_json("ENABLED", "expires_at"));
        assert_eq!(wrong.mark, Mark::Fail);
        assert!(
            wrong
                .detail
                .contains("its key is id (HASH, S), at (RANGE, N)"),
            "{wrong}"
        );
        let number_key = table_json(
            json!([{"AttributeName": "pk", "KeyType": "HASH"}]),
            json!([{"AttributeName": "pk", "AttributeType": "N"}]),
        );
        assert_eq!(
            check_table("t", &number_key, &ttl_json("ENABLED", "expires_at")).mark,
            Mark::Fail
        );
        let off = check_table("t", &pk(), &ttl_json("DISABLED", ""));
        assert_eq!(off.mark, Mark::Fail);
        assert!(
            off.detail.contains("TTL is disabled (on no attribute)"),
            "{off}"
        );
        let elsewhere = check_table("t", &pk(), &ttl_json("ENABLED", "ttl"));
        assert_eq!(elsewhere.mark, Mark::Fail);
        let missing = Err(AwsError::Failed {
            call: "dynamodb describe-table",
            reason: "An error occurred (ResourceNotFoundException) when calling the DescribeTable operation: Requested resource not found".to_owned(),
        });
        let gone = check_table("t", &missing, &ttl_json("ENABLED", "expires_at"));
        assert_eq!(gone.mark, Mark::Fail);
        assert!(gone.detail.contains("ResourceNotFoundException"), "{gone}");
    }

    fn me(username: &str) -> Me {
        Me {
            id: UserId(42),
            is_bot: true,
            first_name: "Echo".to_owned(),
            username: Some(username.to_owned()),
        }
    }

    fn info(url: &str, kinds: &[&str]) -> WebhookInfo {
        WebhookInfo {
            url: url.to_owned(),
            allowed_updates: Some(kinds.iter().map(|k| k.to_string()).collect()),
            ..WebhookInfo::default()
        }
    }

    fn command(name: &str) -> BotCommand {
        BotCommand {
            command: name.to_owned(),
            description: "does it".to_owned(),
        }
    }

    fn finding(mark: Mark, check: &'static str, detail: &str) -> Finding {
        Finding::new(mark, check, detail)
    }

    #[test]
    fn a_line_starts_with_its_verdict() {
        let line = finding(Mark::Ok, "token", "@EchoBot (id 42)").to_string();
        assert_eq!(line, "ok    token: @EchoBot (id 42)");
        assert!(finding(Mark::Note, "delivery", "x")
            .to_string()
            .starts_with("note  delivery: "));
        assert!(finding(Mark::Unreachable, "endpoint", "x")
            .to_string()
            .starts_with("FAIL  endpoint: "));
    }

    #[test]
    fn the_exit_status_is_3_only_when_nothing_but_reaching_failed() {
        let ok = finding(Mark::Ok, "token", "");
        let note = finding(Mark::Note, "delivery", "");
        let away = finding(Mark::Unreachable, "endpoint", "");
        let fail = finding(Mark::Fail, "webhook", "");
        assert_eq!(exit_status(&[ok.clone(), note.clone()]), 0);
        assert_eq!(exit_status(&[ok.clone(), away.clone(), note]), 3);
        assert_eq!(exit_status(&[ok, away, fail]), 1);
        assert_eq!(exit_status(&[]), 0);
    }

    #[test]
    fn the_stack_outputs_are_read_and_empty_ones_are_absent() {
        let json = br#"{"Stacks":[{"StackName":"telegram-bot","Outputs":[
            {"OutputKey":"WebhookUrl","OutputValue":"https://abc.example/webhook"},
            {"OutputKey":"FunctionName","OutputValue":"telegram-bot-Webhook-1"},
            {"OutputKey":"BotUsername","OutputValue":""},
            {"OutputKey":"BotTokenParameter","OutputValue":"/telegram-bot/bot-token"},
            {"OutputKey":"WebhookSecretParameter","OutputValue":"/telegram-bot/webhook-secret"}
        ]}]}"#;
        assert_eq!(
            parse_stack(json).unwrap(),
            Stack {
                webhook_url: "https://abc.example/webhook".to_owned(),
                function_name: Some("telegram-bot-Webhook-1".to_owned()),
                memory: false,
                memory_table: None,
                bot_username: None,
                token_parameter: Some("/telegram-bot/bot-token".to_owned()),
                secret_parameter: Some("/telegram-bot/webhook-secret".to_owned()),
                monitoring: false,
            }
        );
        let with_memory = br#"{"Stacks":[{"Outputs":[
            {"OutputKey":"WebhookUrl","OutputValue":"https://abc.example/webhook"},
            {"OutputKey":"MemoryTableName","OutputValue":"telegram-bot-MemoryTable-1"},
            {"OutputKey":"BotUsername","OutputValue":"@EchoBot"}]}]}"#;
        let stack = parse_stack(with_memory).unwrap();
        assert!(stack.memory);
        assert_eq!(stack.bot_username.as_deref(), Some("EchoBot"));
    }

    #[test]
    fn a_stack_without_its_webhook_url_is_an_error_that_names_it() {
        let error = parse_stack(br#"{"Stacks":[{"StackStatus":"CREATE_IN_PROGRESS"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no WebhookUrl output"), "{error}");
        assert!(matches!(
            parse_stack(br#"{"Stacks":[]}"#),
            Err(StackError::NoStack)
        ));
        assert!(matches!(parse_stack(b"<html>"), Err(StackError::Json(_))));
    }

    #[test]
    fn the_token_must_be_the_stacks_bot() {
        let echo = Ok(me("EchoBot"));
        assert_eq!(check_token(&echo, None).mark, Mark::Ok);
        assert_eq!(check_token(&echo, Some("echobot")).mark, Mark::Ok);
        let other = check_token(&echo, Some("OtherBot"));
        assert_eq!(other.mark, Mark::Fail);
        assert_eq!(
            other.detail,
            "it is @EchoBot's, but the stack is for @OtherBot"
        );
        let refused = Err(ApiError::Telegram {
            method: "getMe",
            code: 401,
            description: "Unauthorized".to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        });
        let refused = check_token(&refused, Some("EchoBot"));
        assert_eq!(refused.mark, Mark::Fail);
        assert_eq!(refused.detail, "getMe: Telegram answered 401: Unauthorized");
    }

    #[test]
    fn the_webhook_must_be_the_url_with_the_bots_kinds_in_any_order() {
        let url = "https://abc.example/webhook";
        let ok = check_webhook(&info(url, &["callback_query", "message"]), url);
        assert_eq!(ok.mark, Mark::Ok);
        assert_eq!(
            ok.detail,
            "https://abc.example/webhook (updates callback_query, message)"
        );
        let elsewhere = check_webhook(&info("https://old.example/", ALLOWED_UPDATES), url);
        assert_eq!(elsewhere.mark, Mark::Fail);
        assert!(elsewhere.detail.starts_with(
            "Telegram has https://old.example/, expected https://abc.example/webhook"
        ));
        let none = check_webhook(&info("", &[]), url);
        assert_eq!(none.mark, Mark::Fail);
        assert!(
            none.detail.starts_with("none set, expected"),
            "{}",
            none.detail
        );
        let kinds = check_webhook(&info(url, &["message"]), url);
        assert_eq!(kinds.mark, Mark::Fail);
        assert!(kinds
            .detail
            .contains("updates message, expected callback_query, message"));
        let default = WebhookInfo {
            url: url.to_owned(),
            ..WebhookInfo::default()
        };
        assert!(check_webhook(&default, url)
            .detail
            .contains("updates Telegram's default kinds"));
    }

    #[test]
    fn a_recent_delivery_error_fails_and_an_old_one_is_a_note() {
        let now = 1_800_000_000;
        let mut info = info("https://abc.example/webhook", ALLOWED_UPDATES);
        info.pending_update_count = 3;
        assert_eq!(
            check_delivery(&info, now, None),
            finding(Mark::Ok, "delivery", "3 pending, no delivery error")
        );
        info.last_error_message = Some("Wrong response from the webhook: 502 Bad Gateway".into());
        info.last_error_date = Some(now - 300);
        assert_eq!(
            check_delivery(&info, now, None),
            finding(
                Mark::Fail,
                "delivery",
                "3 pending; last error 5 min ago: Wrong response from the webhook: 502 Bad Gateway"
            )
        );
        // After a deploy, only errors since its setWebhook count.
        assert_eq!(check_delivery(&info, now, Some(now - 60)).mark, Mark::Note);
        assert_eq!(check_delivery(&info, now, Some(now - 300)).mark, Mark::Fail);
        info.last_error_date = Some(now - 600);
        let old = check_delivery(&info, now, None);
        assert_eq!(old.mark, Mark::Note);
        assert_eq!(
            old.detail,
            "3 pending; last error 10 min ago (old): Wrong response from the webhook: 502 Bad Gateway"
        );
    }

    #[test]
    fn the_endpoint_must_refuse_without_the_secret_and_accept_with_it() {
        assert_eq!(check_refusal(&Ok(401)).mark, Mark::Ok);
        let open = check_refusal(&Ok(200));
        assert_eq!(open.mark, Mark::Fail);
        assert!(open.detail.contains("anyone can post updates"));
        assert_eq!(check_refusal(&Ok(500)).mark, Mark::Fail);
        assert_eq!(check_refusal(&Ok(404)).mark, Mark::Fail);
        assert_eq!(check_acceptance(&Ok(200)).mark, Mark::Ok);
        let wrong_secret = check_acceptance(&Ok(401));
        assert_eq!(wrong_secret.mark, Mark::Fail);
        assert!(wrong_secret.detail.contains("another one"));
        let broken = check_acceptance(&Ok(500));
        assert_eq!(
            broken.detail,
            "answered 500 to an authenticated request, expected 200"
        );
    }

    #[test]
    fn an_endpoint_that_does_not_answer_in_time_is_unreachable_not_wrong() {
        let slow = Err(ProbeError::Timeout(PROBE_TIMEOUT));
        let finding = check_refusal(&slow);
        assert_eq!(finding.mark, Mark::Unreachable);
        assert_eq!(finding.detail, "not reached: no answer within 10s");
        assert_eq!(check_acceptance(&slow).mark, Mark::Unreachable);
    }

    #[test]
    fn the_menu_must_be_the_codes() {
        let wanted = Ok(vec![command("start"), command("help")]);
        let same = check_menu(&Ok(vec![command("start"), command("help")]), &wanted, true);
        assert_eq!(
            same,
            finding(Mark::Ok, "menu", "/start /help (as in the code)")
        );
        let empty = check_menu(&Ok(vec![]), &wanted, false);
        assert_eq!(
            empty,
            finding(
                Mark::Fail,
                "menu",
                "Telegram shows (empty), the code has /start /help (run `bot commands set --no-memory`)"
            )
        );
        let unserved = Err(ApiError::Http {
            method: "getMyCommands",
            status: 502,
            retry_after: None,
        });
        assert_eq!(check_menu(&unserved, &wanted, true).mark, Mark::Fail);
    }

    #[test]
    fn the_aws_error_shown_is_its_first_line() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(254 << 8);
        let stderr = b"\nAn error occurred (AccessDeniedException) when calling the DescribeStacks operation: User: x is not authorized\nmore\n";
        assert_eq!(
            first_line(stderr, status),
            "An error occurred (AccessDeniedException) when calling the DescribeStacks operation: User: x is not authorized"
        );
        assert_eq!(first_line(b"", status), "exit status: 254");
        assert_eq!(first_line(&[b'x'; 1000], status).len(), 300);
    }
}
