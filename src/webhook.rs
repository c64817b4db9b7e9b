//! The webhook shell: turns one API Gateway (HTTP API, payload 2.0) or Lambda
//! Function URL event into at most one run of the bot, sends its replies, and
//! picks the status that tells Telegram whether to deliver the update again.
//!
//! The event is taken as raw JSON and read here rather than by
//! `lambda_http::run`, because lambda_http panics on a body that claims to be
//! base64 and is not, and fails the invocation on events it cannot convert
//! (a header value with a control character is enough); both would reach
//! Telegram as a gateway 500, and Telegram would redeliver the update for a
//! day. Only the four fields the function needs are read.

use crate::alerts::{self, AlarmChange};
use crate::bot::Bot;
use crate::client::BotApi;
use crate::config::{Config, ConfigError, InitError, WebhookSecret};
use crate::handler::Handler;
use crate::handling::{Deferral, Outcome, Responder, MAX_RETRY_AFTER};
use crate::health::{Health, HealthCheck};
use crate::memory::Memory;
use crate::metrics::{self, Line};
use crate::queue::{Queue, QueueConfig, QueueEvent};
use crate::retry::{RetryPolicy, Stop};
use crate::telegram::{ChatId, Update};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use lambda_http::http::{HeaderMap, HeaderValue};
use lambda_http::Body;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::Level;

/// Telegram's header carrying the webhook's `secret_token`.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
/// Updates are a few KiB; anything this big is not from Telegram.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Time kept back before Lambda's deadline to answer with a clean status.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
/// When the event has no deadline (local runs), the time an update may take.
const DEFAULT_BUDGET: Duration = Duration::from_secs(20);
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The webhook: everything an invocation needs, built once at cold start.
#[derive(Debug)]
pub struct Webhook<H = Bot> {
    pub(crate) bot: H,
    pub(crate) api: BotApi,
    secret: WebhookSecret,
    pub(crate) memory: Memory,
    admin_chat: Option<ChatId>,
    /// Where slow updates go, and the worker's side of it; `None` answers
    /// every update inline.
    pub(crate) queue: Option<(Queue, QueueConfig)>,
}

impl Webhook {
    /// The webhook of the bot in `src/bot.rs`. Refuses to build without a
    /// webhook secret: without it anyone who finds the URL can make the
    /// bot send messages.
    pub fn new(config: &Config) -> Result<Self, InitError> {
        Webhook::for_bot(config, Bot::from_config(config))
    }
}

impl<H: Handler> Webhook<H> {
    /// The webhook of `bot`, on the process's own memory until
    /// [`Webhook::with_memory`] gives it a store.
    pub fn for_bot(config: &Config, mut bot: H) -> Result<Self, InitError> {
        let secret = config
            .webhook_secret
            .clone()
            .ok_or(ConfigError::Missing("TELEGRAM_WEBHOOK_SECRET"))?;
        bot.state_is_kept(false);
        Ok(Webhook {
            bot,
            api: BotApi::new(config)?,
            secret,
            memory: Memory::in_process(),
            admin_chat: config.admin_chat,
            queue: None,
        })
    }

    /// Defers the updates the bot says are slow to `queue` (the webhook),
    /// and answers the queue's events (the worker).
    pub fn with_queue(mut self, queue: Queue, config: QueueConfig) -> Self {
        self.queue = Some((queue, config));
        self
    }

    /// Gives the bot a store (the process's own without one): the chat's
    /// state, and exactly-once answers across instances when it is
    /// shared. The bot lists the commands that need a durable one.
    pub fn with_memory(mut self, memory: Memory) -> Self {
        self.bot.state_is_kept(memory.is_durable());
        self.memory = memory;
        self
    }
}

/// How an invocation ended: refused at the door, or the update's outcome.
/// Logged as `outcome` and mapped to the status Telegram sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The event is not an HTTP request this function understands.
    BadEvent,
    MethodNotAllowed,
    Unauthorized,
    PayloadTooLarge,
    /// Authenticated, but the body is not an update: acknowledged, since a
    /// redelivery would be just as unusable and would hold up the chat.
    NotAnUpdate,
    /// The update was handled; see its outcome.
    Update(Outcome),
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::BadEvent => "bad_event",
            Verdict::MethodNotAllowed => "method_not_allowed",
            Verdict::Unauthorized => "unauthorized",
            Verdict::PayloadTooLarge => "payload_too_large",
            Verdict::NotAnUpdate => "not_an_update",
            Verdict::Update(outcome) => outcome.as_str(),
        }
    }

    /// The status Telegram sees. Any non-2xx makes it deliver the update again.
    pub fn status(&self) -> u16 {
        match self {
            Verdict::BadEvent => 400,
            Verdict::MethodNotAllowed => 405,
            Verdict::Unauthorized => 401,
            Verdict::PayloadTooLarge => 413,
            Verdict::NotAnUpdate => 200,
            Verdict::Update(
                Outcome::Duplicate
                | Outcome::Deferred
                | Outcome::Ignored
                | Outcome::Answered
                | Outcome::PermanentFailure
                | Outcome::ConfigurationFailure { told: true },
            ) => 200,
            Verdict::Update(
                Outcome::RetryableFailure {
                    retry_after: Some(_),
                }
                | Outcome::InProgress { .. },
            ) => 503,
            Verdict::Update(Outcome::RetryableFailure { retry_after: None }) => 502,
            Verdict::Update(Outcome::ConfigurationFailure { told: false }) => 500,
        }
    }

    /// The response in the shape API Gateway and Function URLs expect.
    pub fn response(&self) -> ApiGatewayV2httpResponse {
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = i64::from(self.status());
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        match self {
            Verdict::MethodNotAllowed => {
                headers.insert("allow", HeaderValue::from_static("POST"));
            }
            Verdict::Update(
                Outcome::RetryableFailure {
                    retry_after: Some(wait),
                }
                | Outcome::InProgress { retry_after: wait },
            ) => {
                let seconds = wait_in_whole_seconds(*wait);
                headers.insert("retry-after", HeaderValue::from(seconds));
            }
            _ => {}
        }
        response.headers = headers;
        // Telegram ignores a 2xx body unless it is a method call; keep it empty.
        let body = match self.status() {
            200 => String::new(),
            _ => self.as_str().replace('_', " "),
        };
        response.body = Some(Body::Text(body));
        response
    }
}

fn wait_in_whole_seconds(wait: Duration) -> u64 {
    let mut seconds = wait.as_secs();
    if wait.subsec_nanos() > 0 {
        seconds += 1;
    }
    seconds.clamp(1, MAX_RETRY_AFTER.as_secs())
}

/// The Lambda handler: never fails the invocation, whatever the event.
/// One binary, told apart by the event's shape: the queue's batch (the
/// worker), the alarms' topic, the schedule's health check, or an HTTP
/// request (the webhook).
pub async fn function_handler<H: Handler>(
    webhook: &Webhook<H>,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let deadline = deadline_of(&event.context);
    if let Some(batch) = QueueEvent::of_event(&event.payload) {
        let answer = webhook.work(batch, deadline).await;
        return Ok(serde_json::to_value(answer)?);
    }
    if let Some(changes) = AlarmChange::of_event(&event.payload) {
        alerts::tell(&webhook.api, webhook.admin_chat, &changes, deadline).await;
        // SNS reads no answer; this one is for `cargo lambda invoke`.
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = 200;
        return Ok(serde_json::to_value(response)?);
    }
    if let Some(check) = HealthCheck::of_event(&event.payload) {
        let health = check.run(&webhook.api, deadline).await;
        health.log();
        return Ok(serde_json::to_value(health_response(&health))?);
    }
    let response = handle_event(webhook, event.payload, deadline)
        .await
        .response();
    Ok(serde_json::to_value(response)?)
}

/// The scheduler reads no answer; this one is for `cargo lambda invoke`.
fn health_response(health: &Health) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = 200;
    response.body = Some(Body::Text(health.outcome().to_owned()));
    response
}

/// The invocation's deadline as an instant, keeping back the margin needed
/// to answer.
pub fn deadline_of(context: &lambda_runtime::Context) -> Instant {
    // Some emulators (cargo lambda watch 1.9) send a duration where Lambda
    // sends a timestamp; anything before 2001 is not a real deadline.
    const NOT_BEFORE: Duration = Duration::from_secs(1_000_000_000);
    let deadline = context.deadline();
    if deadline < SystemTime::UNIX_EPOCH + NOT_BEFORE {
        return Instant::now() + DEFAULT_BUDGET;
    }
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    tracing::debug!(
        time_left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
        "invocation deadline"
    );
    Instant::now() + left.saturating_sub(DEADLINE_MARGIN)
}

/// Handles one event, and logs one line about it.
pub async fn handle_event<H: Handler>(
    webhook: &Webhook<H>,
    event: Value,
    deadline: Instant,
) -> Verdict {
    let body = match read_request(webhook, event) {
        Ok(body) => body,
        Err(rejection) => {
            let outcome = rejection.verdict.as_str();
            metrics::emit(
                &Line::new(Level::WARN, "request rejected")
                    .field("outcome", outcome)
                    .field("method", rejection.method.as_str())
                    .field("reason", rejection.reason)
                    .by_outcome(metrics::UPDATES, 1.0),
            );
            return rejection.verdict;
        }
    };
    let update = match Update::from_slice(&body) {
        Ok(update) => update,
        Err(error) => {
            const MESSAGE: &str = "acknowledged a body that is not an update";
            metrics::emit(
                &Line::new(Level::WARN, MESSAGE)
                    .field("outcome", "not_an_update")
                    .field("error", error.to_string())
                    .by_outcome(metrics::UPDATES, 1.0),
            );
            return Verdict::NotAnUpdate;
        }
    };
    Verdict::Update(webhook.answer(&update, deadline).await)
}

/// Why a request got no further than the door.
struct Rejection {
    verdict: Verdict,
    /// The request's method, cut short: it is the caller's text.
    method: String,
    reason: &'static str,
}

/// Reads the parts of a payload 2.0 event (API Gateway HTTP API or Function
/// URL) this function needs, in this order: method, secret, size, body.
/// Nothing else in the event is looked at before the secret matched, and
/// no field the function does not need can make the event unusable.
fn read_request<H>(webhook: &Webhook<H>, event: Value) -> Result<Vec<u8>, Rejection> {
    let reject = |verdict, method: &str, reason| Rejection {
        verdict,
        method: method.chars().take(16).collect(),
        reason,
    };
    let Value::Object(mut event) = event else {
        return Err(reject(
            Verdict::BadEvent,
            "",
            "the event is not a JSON object",
        ));
    };
    let Some(method) = event
        .get("requestContext")
        .and_then(|c| c.get("http"))
        .and_then(|h| h.get("method"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(reject(
            Verdict::BadEvent,
            "",
            "not an HTTP API or Function URL event (no requestContext.http.method)",
        ));
    };
    if method != "POST" {
        return Err(reject(
            Verdict::MethodNotAllowed,
            &method,
            "only POST is accepted",
        ));
    }
    let empty = serde_json::Map::new();
    let headers = event
        .get("headers")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    // Payload 2.0 lower-cases header names, and joins repeated headers with
    // commas, which then match no secret.
    let mut given = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(SECRET_HEADER))
        .map(|(_, value)| value);
    let authentic = match (given.next(), given.next()) {
        (Some(Value::String(secret)), None) => webhook.secret.matches(secret.as_bytes()),
        _ => false,
    };
    if !authentic {
        return Err(reject(
            Verdict::Unauthorized,
            &method,
            "missing or wrong secret token",
        ));
    }
    // Authenticated: whatever is odd from here on is acknowledged, since a
    // redelivery would be just as odd and would hold up the chat.
    let is_base64 = match event.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => {
            return Err(reject(
                Verdict::NotAnUpdate,
                &method,
                "isBase64Encoded is not a boolean",
            ))
        }
    };
    let body = match event.remove("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(body)) => body,
        Some(_) => {
            return Err(reject(
                Verdict::NotAnUpdate,
                &method,
                "the body is not a string",
            ))
        }
    };
    if !is_base64 {
        if body.len() > MAX_BODY_BYTES {
            return Err(reject(
                Verdict::PayloadTooLarge,
                &method,
                "the body is over 1 MiB",
            ));
        }
        return Ok(body.into_bytes());
    }
    // Base64 grows the size by 4/3; refuse before decoding anything that big.
    if body.len() / 4 * 3 > MAX_BODY_BYTES + 3 {
        return Err(reject(
            Verdict::PayloadTooLarge,
            &method,
            "the body is over 1 MiB",
        ));
    }
    // Padding optional and line breaks ignored: a body that is base64 in any
    // common spelling is decoded rather than dropped.
    let compact: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let decoded = BASE64.decode(compact).map_err(|_| {
        reject(
            Verdict::NotAnUpdate,
            &method,
            "the body is not valid base64",
        )
    })?;
    if decoded.len() > MAX_BODY_BYTES {
        return Err(reject(
            Verdict::PayloadTooLarge,
            &method,
            "the body is over 1 MiB",
        ));
    }
    Ok(decoded)
}

impl<H: Handler> Webhook<H> {
    /// Answers the update; the memory resumes where an earlier delivery of
    /// it stopped, and only acknowledges a repeat of a finished one.
    pub async fn answer(&self, update: &Update, deadline: Instant) -> Outcome {
        let responder = Responder {
            deferral: match &self.queue {
                Some((queue, _)) => Deferral::To(queue),
                None => Deferral::Off,
            },
            api: &self.api,
            bot: &self.bot,
            memory: &self.memory,
        };
        let policy = RetryPolicy::webhook(deadline);
        responder
            .answer(update, &policy, &mut Stop::never())
            .await
            .outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(deadline_ms: u64) -> lambda_runtime::Context {
        let mut context = lambda_runtime::Context::default();
        context.deadline = deadline_ms;
        context
    }

    #[test]
    fn a_deadline_that_is_not_a_timestamp_gets_the_default_budget() {
        for not_epoch in [0, 600_000] {
            let left = deadline_of(&context(not_epoch)) - Instant::now();
            assert!(
                left > DEFAULT_BUDGET - Duration::from_secs(1),
                "{not_epoch}: {left:?}"
            );
        }
        let past = deadline_of(&context(1_700_000_000_000));
        assert!(past <= Instant::now());
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds_and_capped() {
        assert_eq!(wait_in_whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(wait_in_whole_seconds(Duration::from_secs(60)), 60);
        assert_eq!(wait_in_whole_seconds(Duration::ZERO), 1);
        assert_eq!(wait_in_whole_seconds(Duration::from_secs(86_400)), 3600);
    }

    #[test]
    fn statuses_tell_telegram_whether_to_retry() {
        assert_eq!(Verdict::Update(Outcome::PermanentFailure).status(), 200);
        assert_eq!(Verdict::NotAnUpdate.status(), 200);
        assert_eq!(
            Verdict::Update(Outcome::ConfigurationFailure { told: false }).status(),
            500
        );
        // The user was told: Telegram must not hold the chat for a day.
        assert_eq!(
            Verdict::Update(Outcome::ConfigurationFailure { told: true }).status(),
            200
        );
        let retry = Outcome::RetryableFailure { retry_after: None };
        assert_eq!(Verdict::Update(retry).status(), 502);
        let limited = Verdict::Update(Outcome::RetryableFailure {
            retry_after: Some(Duration::from_secs(60)),
        })
        .response();
        assert_eq!(limited.status_code, 503);
        assert_eq!(limited.headers["retry-after"], "60");
    }
}
