//! Spawns the Telegram stand-in and builds the real webhook handler against it.

use base64::Engine;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::config::{Config, ConfigError};
use telegram_lambda_bot::runtime::client::BotApi;
use telegram_lambda_bot::runtime::memory::Memory;
use telegram_lambda_bot::webhook::{function_handler, Webhook};
use telegram_stand_in::{Options, StandIn};
pub use testkit::Logs;
use tracing::subscriber::DefaultGuard;

/// The secret in every sample event.
pub const SECRET: &str = "local-dev-secret";
pub const BOT_USERNAME: &str = "EchoLambdaBot";

pub fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

pub fn event(name: &str) -> Value {
    let path = events_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The Telegram update inside an event's body (or, for the queue's event,
/// its first message's), when it has one.
pub fn update_in(event: &Value) -> Option<Value> {
    if let Some(body) = event.pointer("/Records/0/body").and_then(Value::as_str) {
        return serde_json::from_str(body).ok();
    }
    let body = event.get("body")?.as_str()?;
    let bytes = if event.get("isBase64Encoded") == Some(&Value::Bool(true)) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()?
    } else {
        body.as_bytes().to_vec()
    };
    serde_json::from_slice(&bytes).ok()
}

/// The configuration these variables give, as the function reads it from
/// its environment (unset variables are absent).
pub fn try_config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

/// As [`try_config`], for variables that make a valid configuration.
pub fn config(vars: &[(&str, &str)]) -> Config {
    try_config(vars).unwrap()
}

pub struct TestWebhook {
    pub stand_in: StandIn,
    pub webhook: Webhook,
    pub logs: Logs,
    _log_guard: DefaultGuard,
}

/// Knobs for [`spawn_with`].
#[derive(Default)]
pub struct Setup {
    pub token: Option<String>,
    pub base_url: Option<String>,
    pub http_timeout_secs: Option<String>,
    /// The stand-in's options (its token, for one).
    pub stand_in: Option<Options>,
    /// The webhook secret; `SECRET`, the one in events/, by default.
    pub secret: Option<String>,
    /// The bot's memory; none by default.
    pub memory: Option<Memory>,
    /// BOT_ADMIN_CHAT_ID: where alarms are told.
    pub admin_chat: Option<String>,
}

pub async fn spawn() -> TestWebhook {
    spawn_with(Setup::default()).await
}

pub async fn spawn_with(setup: Setup) -> TestWebhook {
    let (logs, guard) = Logs::capture("debug");
    let stand_in = StandIn::start(setup.stand_in.unwrap_or_default())
        .await
        .unwrap();
    let token = setup.token.unwrap_or_else(|| stand_in.token().to_owned());
    let base_url = setup.base_url.unwrap_or_else(|| stand_in.base_url());
    let secret = setup.secret.unwrap_or_else(|| SECRET.to_owned());
    let mut vars = vec![
        ("TELEGRAM_BOT_TOKEN", token.as_str()),
        ("TELEGRAM_API_BASE_URL", base_url.as_str()),
        ("TELEGRAM_WEBHOOK_SECRET", secret.as_str()),
        ("TELEGRAM_BOT_USERNAME", BOT_USERNAME),
    ];
    if let Some(timeout) = &setup.http_timeout_secs {
        vars.push(("TELEGRAM_HTTP_TIMEOUT_SECS", timeout));
    }
    if let Some(chat) = &setup.admin_chat {
        vars.push(("BOT_ADMIN_CHAT_ID", chat));
    }
    let webhook = Webhook::new(&config(&vars))
        .unwrap()
        .with_memory(setup.memory.unwrap_or_else(Memory::in_process));
    TestWebhook {
        stand_in,
        webhook,
        logs,
        _log_guard: guard,
    }
}

/// What the function answered, in the terms the tests care about.
#[derive(Debug)]
pub struct Response {
    pub status: i64,
    pub retry_after: Option<String>,
    pub allow: Option<String>,
    pub body: String,
}

impl TestWebhook {
    /// Lets the stand-in know the chat and message in the event's update, as
    /// Telegram knows them before it delivers the update.
    pub fn observe(&self, event: &Value) {
        if let Some(update) = update_in(event) {
            self.stand_in.observe_update(&update);
        }
    }

    pub async fn invoke(&self, event: Value) -> Response {
        self.invoke_with_time_left(event, Duration::from_secs(10))
            .await
    }

    /// Runs the Lambda handler as the runtime does, with a deadline
    /// `time_left` from now in the invocation's context.
    pub async fn invoke_with_time_left(&self, event: Value, time_left: Duration) -> Response {
        response_of(self.invoke_raw(event, time_left).await)
    }

    /// The handler's answer as JSON, whatever its shape (the worker's is a
    /// batch response, not an HTTP one).
    pub async fn invoke_raw(&self, event: Value, time_left: Duration) -> Value {
        let mut context = lambda_runtime::Context::default();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        context.deadline = now_ms + time_left.as_millis() as u64;
        context.request_id = "test-request".to_owned();
        function_handler(&self.webhook, LambdaEvent::new(event, context))
            .await
            .expect("the handler never fails an invocation")
    }

    /// Asserts the token's secret part is in no log line.
    pub fn assert_token_not_logged(&self) {
        let secret = self.stand_in.token().split(':').nth(1).unwrap();
        let logs = self.logs.text();
        assert!(!logs.contains(secret), "token leaked into logs:\n{logs}");
        assert!(
            !logs.contains(SECRET),
            "webhook secret leaked into logs:\n{logs}"
        );
    }
}

/// The handler's answer as the runtime sends it to API Gateway: JSON.
pub fn response_of(json: Value) -> Response {
    assert!(json.get("statusCode").is_some(), "{json}");
    let header = |name: &str| {
        json["headers"]
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Response {
        status: json["statusCode"].as_i64().unwrap_or_default(),
        retry_after: header("retry-after"),
        allow: header("allow"),
        body: json["body"].as_str().unwrap_or_default().to_owned(),
    }
}

/// A Bot API client for `stand_in`, configured as the function would be.
pub fn api_for(stand_in: &StandIn) -> BotApi {
    let base_url = stand_in.base_url();
    let config = config(&[
        ("TELEGRAM_BOT_TOKEN", stand_in.token()),
        ("TELEGRAM_API_BASE_URL", &base_url),
    ]);
    BotApi::new(&config).unwrap()
}

/// Serves the real handler over HTTP on loopback, turning each request into
/// the Function URL event Lambda would build, as the stand-in's webhook
/// delivery needs a URL to POST to. Returns the webhook URL.
pub async fn serve_function(webhook: Arc<Webhook>) -> String {
    serve_functions(vec![webhook]).await
}

/// As [`serve_function`], handing the requests to `webhooks` in turn, as
/// Lambda spreads concurrent requests over its instances.
pub async fn serve_functions(webhooks: Vec<Arc<Webhook>>) -> String {
    let turn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (webhooks, turn) = (webhooks.clone(), turn.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let next = turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let webhook = webhooks[next % webhooks.len()].clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let mut response = hyper::Response::new(Full::new(bytes::Bytes::new()));
                        let event = lambda_runtime_api::function_url_event(&parts, &body);
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                        // In a task of its own: Lambda does not stop a
                        // function whose caller hung up (Telegram after 60 s).
                        let running = tokio::spawn(async move {
                            telegram_lambda_bot::webhook::handle_event(&webhook, event, deadline)
                                .await
                        });
                        let Ok(verdict) = running.await else {
                            *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                            return Ok(response);
                        };
                        let lambda_response = verdict.response();
                        *response.status_mut() =
                            hyper::StatusCode::from_u16(verdict.status()).unwrap();
                        for (name, value) in lambda_response.headers.iter() {
                            response.headers_mut().insert(name.clone(), value.clone());
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/")
}

/// The configuration of a bot on `stand_in` whose assistant's model is at
/// `model_url` with `key`, and `more` variables, read as local runs read
/// it: the key is the assistant's declared secret.
pub fn assistant_config(
    stand_in: &StandIn,
    model_url: &str,
    key: &str,
    more: &[(&str, &str)],
) -> Config {
    let base_url = stand_in.base_url();
    let mut vars = vec![
        ("TELEGRAM_BOT_TOKEN", stand_in.token()),
        ("TELEGRAM_API_BASE_URL", &base_url),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET),
        ("ASSISTANT_MODEL", "fake-1"),
        ("ASSISTANT_BASE_URL", model_url),
        ("ASSISTANT_API_KEY", key),
    ];
    vars.extend_from_slice(more);
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let mut config = Config::from_lookup(lookup).unwrap();
    config.read_secrets(&[], lookup).unwrap();
    config
}

/// The webhook for `stand_in`, as the function builds it at cold start.
pub fn webhook_for(stand_in: &StandIn) -> Webhook {
    let base_url = stand_in.base_url();
    Webhook::new(&config(&[
        ("TELEGRAM_BOT_TOKEN", stand_in.token()),
        ("TELEGRAM_API_BASE_URL", &base_url),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET),
        ("TELEGRAM_BOT_USERNAME", BOT_USERNAME),
    ]))
    .unwrap()
}

/// The webhook for `stand_in` without a username, as the memory and button
/// tests build one per instance, with `memory`.
pub fn webhook_with(stand_in: &StandIn, memory: Memory) -> Webhook {
    let base_url = stand_in.base_url();
    Webhook::new(&config(&[
        ("TELEGRAM_BOT_TOKEN", stand_in.token()),
        ("TELEGRAM_API_BASE_URL", &base_url),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET),
    ]))
    .unwrap()
    .with_memory(memory)
}

/// Now, in Unix seconds: a message's `date`.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The sample text event with `update` as its body.
pub fn event_with(update: &Value) -> Value {
    let mut event = event("text");
    event["body"] = Value::String(update.to_string());
    event["isBase64Encoded"] = Value::Bool(false);
    event
}

/// The real function binary as a Lambda instance: a process polling a
/// Runtime API of its own, on moto and the stand-in, with a second's lease
/// margin (one machine's clock; deployed: 5 s) and `env` besides (the
/// table, the queue, the assistant).
pub struct FunctionProcess {
    pub runtime_api: lambda_runtime_api::RuntimeApi,
    pub child: std::process::Child,
    invocations: u32,
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FunctionProcess {
    pub async fn start(
        moto: &testkit::Moto,
        stand_in: &StandIn,
        timeout: Duration,
        env: &[(&str, String)],
    ) -> FunctionProcess {
        use std::process::{Command, Stdio};
        let runtime_api = lambda_runtime_api::RuntimeApi::start(lambda_runtime_api::Options {
            function_timeout: timeout,
            ..lambda_runtime_api::Options::default()
        })
        .await
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_webhook"))
            .env_clear()
            .envs(moto.env())
            .envs(lambda_runtime_api::lambda_env(
                "telegram-bot",
                128,
                "us-east-1",
            ))
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.addr().to_string())
            .env("TELEGRAM_BOT_TOKEN", stand_in.token())
            .env("TELEGRAM_API_BASE_URL", stand_in.base_url())
            .env("TELEGRAM_WEBHOOK_SECRET", SECRET)
            .env("BOT_LEASE_MARGIN_SECS", "1")
            .env("LOG_FORMAT", "json")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        FunctionProcess {
            runtime_api,
            child,
            invocations: 0,
        }
    }

    /// Hands the function `event` and waits for its answer.
    pub async fn answer(&mut self, event: &Value) -> Value {
        use lambda_runtime_api::{Invocation, Report};
        self.invocations += 1;
        let request_id = format!("request-{}", self.invocations);
        self.runtime_api
            .queue(Invocation::new(request_id.clone(), event.to_string()))
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match self.runtime_api.report().await.unwrap() {
                    Report::Response {
                        request_id: id,
                        body,
                        ..
                    } if id == request_id => break serde_json::from_slice(&body).unwrap(),
                    Report::Error { body, .. } | Report::InitError { body, .. } => {
                        panic!("the function failed: {}", String::from_utf8_lossy(&body))
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("the function answers")
    }
}

/// The deployed pacing, ten times faster.
pub const FAST_PACING: telegram_lambda_bot::assistant::Pacing =
    telegram_lambda_bot::assistant::Pacing {
        draft_every: Duration::from_millis(100),
        draft_refresh: Duration::from_secs(2),
        typing_every: Duration::from_millis(450),
        stall: Duration::from_millis(1500),
        send_reserve: Duration::from_millis(200),
        tries: 3,
    };

/// An item the tests read with the SDK, measured as the store measures its
/// own (`dynamodb::item_size`, on the store's JSON form of the item).
pub fn item_size(item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> usize {
    telegram_lambda_bot::runtime::store::dynamodb::item_size(&store_item(item))
}

fn store_item(
    item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> telegram_lambda_bot::runtime::store::dynamodb::Item {
    item.iter()
        .map(|(name, value)| (name.clone(), store_value(value)))
        .collect()
}

fn store_value(
    value: &aws_sdk_dynamodb::types::AttributeValue,
) -> telegram_lambda_bot::runtime::store::dynamodb::AttributeValue {
    use aws_sdk_dynamodb::types::AttributeValue as Sdk;

    use telegram_lambda_bot::runtime::store::dynamodb::AttributeValue as Store;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match value {
        Sdk::S(s) => Store::S(s.clone()),
        Sdk::N(n) => Store::N(n.clone()),
        Sdk::M(map) => Store::M(store_item(map)),
        Sdk::L(list) => Store::L(list.iter().map(store_value).collect()),
        Sdk::Bool(b) => Store::Bool(*b),
        Sdk::Null(b) => Store::Null(*b),
        Sdk::B(b) => Store::B(encode(b.as_ref())),
        Sdk::Ss(set) => Store::Ss(set.clone()),
        Sdk::Ns(set) => Store::Ns(set.clone()),
        Sdk::Bs(set) => Store::Bs(set.iter().map(|b| encode(b.as_ref())).collect()),
        other => panic!("an attribute value this test does not know: {other:?}"),
    }
}
