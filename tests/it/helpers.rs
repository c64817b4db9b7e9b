//! Spawns the Telegram stand-in and builds the real webhook handler against it.

use base64::Engine;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use lambda_http::Body;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::webhook::{function_handler, App};
use telegram_stand_in::{Options, StandIn};
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

/// The Telegram update inside an event's body, when it has one.
pub fn update_in(event: &Value) -> Option<Value> {
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

/// Log lines written while a test ran, as the JSON the function writes.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The one line the handler writes per update.
    pub fn outcome_lines(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("outcome").is_some())
            .collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct TestApp {
    pub stand_in: StandIn,
    pub app: App,
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
}

pub async fn spawn() -> TestApp {
    spawn_with(Setup::default()).await
}

pub async fn spawn_with(setup: Setup) -> TestApp {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let stand_in = StandIn::start(setup.stand_in.unwrap_or_default())
        .await
        .unwrap();
    let token = setup.token.unwrap_or_else(|| stand_in.token().to_owned());
    let base_url = setup.base_url.unwrap_or_else(|| stand_in.base_url());
    let vars = [
        ("TELEGRAM_BOT_TOKEN", Some(token)),
        ("TELEGRAM_API_BASE_URL", Some(base_url)),
        (
            "TELEGRAM_WEBHOOK_SECRET",
            Some(setup.secret.unwrap_or_else(|| SECRET.to_owned())),
        ),
        ("TELEGRAM_BOT_USERNAME", Some(BOT_USERNAME.to_owned())),
        ("TELEGRAM_HTTP_TIMEOUT_SECS", setup.http_timeout_secs),
    ];
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.clone())
    })
    .unwrap();
    let app = App::new(&config).unwrap();
    TestApp {
        stand_in,
        app,
        logs,
        _log_guard: guard,
    }
}

/// What the function answered, in the terms the tests care about.
#[derive(Debug)]
pub struct Answer {
    pub status: i64,
    pub retry_after: Option<String>,
    pub allow: Option<String>,
    pub body: String,
}

impl TestApp {
    /// Lets the stand-in know the chat and message in the event's update, as
    /// Telegram knows them before it delivers the update.
    pub fn observe(&self, event: &Value) {
        if let Some(update) = update_in(event) {
            self.stand_in.observe_update(&update);
        }
    }

    pub async fn invoke(&self, event: Value) -> Answer {
        self.invoke_with_time_left(event, Duration::from_secs(10))
            .await
    }

    /// Runs the Lambda handler as the runtime does, with a deadline
    /// `time_left` from now in the invocation's context.
    pub async fn invoke_with_time_left(&self, event: Value, time_left: Duration) -> Answer {
        let mut context = lambda_runtime::Context::default();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        context.deadline = now_ms + time_left.as_millis() as u64;
        context.request_id = "test-request".to_owned();
        let response = function_handler(&self.app, LambdaEvent::new(event, context))
            .await
            .expect("the handler never fails an invocation");
        answer(response)
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

pub fn answer(response: ApiGatewayV2httpResponse) -> Answer {
    // Through JSON, as the runtime sends it to API Gateway.
    let json = serde_json::to_value(&response).unwrap();
    assert!(json.get("statusCode").is_some(), "{json}");
    let header = |name: &str| {
        response
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: response.status_code,
        retry_after: header("retry-after"),
        allow: header("allow"),
        body: match &response.body {
            Some(Body::Text(t)) => t.clone(),
            _ => String::new(),
        },
    }
}

/// A Bot API client for `stand_in`, configured as the function would be.
pub fn api_for(stand_in: &StandIn) -> telegram_lambda_bot::client::BotApi {
    let vars = [
        ("TELEGRAM_BOT_TOKEN", stand_in.token().to_owned()),
        ("TELEGRAM_API_BASE_URL", stand_in.base_url()),
    ];
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    telegram_lambda_bot::client::BotApi::new(&config).unwrap()
}

/// Decides, before the function runs, that a delivery fails with this
/// status: how a test makes one chat's updates fail.
pub type Gate = Arc<dyn Fn(&Value) -> Option<u16> + Send + Sync>;

/// Serves the real handler over HTTP on loopback, turning each request into
/// the Function URL event Lambda would build, as the stand-in's webhook
/// delivery needs a URL to POST to. Returns the webhook URL.
pub async fn serve_function(app: Arc<App>, gate: Option<Gate>) -> String {
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let app = app.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    let gate = gate.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let text = String::from_utf8_lossy(&body).into_owned();
                        let update: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        let mut response = hyper::Response::new(Full::new(bytes::Bytes::new()));
                        if let Some(status) = gate.as_ref().and_then(|g| g(&update)) {
                            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            return Ok::<_, std::convert::Infallible>(response);
                        }
                        let headers: serde_json::Map<String, Value> = parts
                            .headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.as_str().to_owned(),
                                    Value::String(v.to_str().unwrap_or("").to_owned()),
                                )
                            })
                            .collect();
                        let event = serde_json::json!({
                            "version": "2.0",
                            "routeKey": "$default",
                            "rawPath": parts.uri.path(),
                            "rawQueryString": "",
                            "headers": headers,
                            "requestContext": {
                                "accountId": "anonymous",
                                "apiId": "test",
                                "domainName": "test.lambda-url.us-east-1.on.aws",
                                "domainPrefix": "test",
                                "http": {"method": parts.method.as_str(), "path": parts.uri.path(),
                                         "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": ""},
                                "requestId": "test", "routeKey": "$default", "stage": "$default",
                                "time": "26/Nov/2026:10:00:00 +0000", "timeEpoch": 0
                            },
                            "body": text,
                            "isBase64Encoded": false
                        });
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                        let answer =
                            telegram_lambda_bot::webhook::handle_event(&app, event, deadline).await;
                        let lambda_response = answer.response();
                        *response.status_mut() =
                            hyper::StatusCode::from_u16(answer.status()).unwrap();
                        for (name, value) in lambda_response.headers.iter() {
                            response.headers_mut().insert(name.clone(), value.clone());
                        }
                        Ok(response)
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

/// The app for `stand_in`, as the function builds it at cold start.
pub fn app_for(stand_in: &StandIn) -> App {
    let vars = [
        ("TELEGRAM_BOT_TOKEN", stand_in.token().to_owned()),
        ("TELEGRAM_API_BASE_URL", stand_in.base_url()),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET.to_owned()),
        ("TELEGRAM_BOT_USERNAME", BOT_USERNAME.to_owned()),
    ];
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    App::new(&config).unwrap()
}
