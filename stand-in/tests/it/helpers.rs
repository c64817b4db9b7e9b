//! What the stand-in's tests share: a stand-in to test, a plain HTTP client
//! for its Bot API, a webhook receiver whose answers each test decides, and
//! waiting for a condition with a bound.

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use telegram_stand_in::{Options, StandIn};

/// The webhook secret the delivery tests set.
pub const SECRET: &str = "local-dev-secret";

/// 1 Telegram second = 10 ms in webhook delivery.
pub const SCALE: f64 = 0.01;

pub async fn stand_in() -> StandIn {
    StandIn::start(Options::default()).await.unwrap()
}

/// A stand-in whose Telegram time runs at [`SCALE`].
pub async fn scaled_stand_in() -> StandIn {
    stand_in_at(SCALE).await
}

/// A stand-in whose Telegram time runs at `scale`.
pub async fn stand_in_at(scale: f64) -> StandIn {
    StandIn::start(Options {
        time_scale: scale,
        ..Options::default()
    })
    .await
    .unwrap()
}

/// An update with a text message from a user in their private chat.
pub fn private_message(update_id: i64, message_id: i64, chat_id: i64) -> Value {
    json!({"update_id": update_id, "message": {
        "message_id": message_id, "date": 1, "text": "x",
        "chat": {"id": chat_id, "type": "private", "first_name": "Ali"}
    }})
}

/// A Bot API client that speaks plain HTTP with JSON bodies.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// An answer from the Bot API: its status, Retry-After header and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Reply {
    /// The `result` of a successful answer; panics on a refusal.
    pub fn result(&self) -> &Value {
        assert_eq!(
            (self.status, &self.body["ok"]),
            (200, &json!(true)),
            "{self:?}"
        );
        &self.body["result"]
    }

    /// Telegram's description of a refusal; panics on a success.
    pub fn description(&self) -> &str {
        assert_eq!(self.body["ok"], false, "{self:?}");
        assert_eq!(self.body["error_code"], self.status, "{self:?}");
        self.body["description"].as_str().unwrap()
    }
}

impl Api {
    pub fn new(stand_in: &StandIn) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: format!("{}/bot{}", stand_in.base_url(), stand_in.token()),
        }
    }

    pub async fn call(&self, method: &str, params: Value) -> Reply {
        let response = self
            .http
            .post(format!("{}/{method}", self.base))
            .json(&params)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.json().await.unwrap();
        Reply {
            status,
            retry_after,
            body,
        }
    }

    /// Calls `method` and returns its result, which must be a success.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        self.call(method, params).await.result().clone()
    }
}

/// Sets a webhook to `url` with [`SECRET`] and these update kinds.
pub async fn set_webhook(stand_in: &StandIn, url: &str, allowed: &[&str]) -> Api {
    let api = Api::new(stand_in);
    api.ok(
        "setWebhook",
        json!({"url": url, "secret_token": SECRET, "allowed_updates": allowed}),
    )
    .await;
    api
}

/// How the webhook receiver answers one delivery.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub status: u16,
    pub retry_after: Option<u64>,
    /// Waited before answering.
    pub delay: Duration,
    /// Sent to the update's chat with sendMessage before answering, as a
    /// bot that replies would.
    pub reply: Option<String>,
    /// Answer with `Connection: close`, so the connection is not reused.
    pub close: bool,
}

impl Verdict {
    pub fn status(status: u16) -> Verdict {
        Verdict {
            status,
            retry_after: None,
            delay: Duration::ZERO,
            reply: None,
            close: false,
        }
    }

    pub fn ok() -> Verdict {
        Verdict::status(200)
    }

    pub fn retry_after(self, seconds: u64) -> Verdict {
        Verdict {
            retry_after: Some(seconds),
            ..self
        }
    }

    pub fn after(self, delay: Duration) -> Verdict {
        Verdict { delay, ..self }
    }

    pub fn closing(self) -> Verdict {
        Verdict {
            close: true,
            ..self
        }
    }

    pub fn replying(self, text: &str) -> Verdict {
        Verdict {
            reply: Some(text.to_owned()),
            ..self
        }
    }
}

/// One delivery the receiver got, and what it decided to answer.
#[derive(Debug, Clone)]
pub struct Received {
    pub update: Value,
    pub secret: Option<String>,
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
    /// How many deliveries were being answered when it arrived, itself
    /// included.
    pub concurrent: usize,
}

/// A webhook on loopback standing in for the bot: each update it receives
/// is answered as the test's closure decides.
pub struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

type Decide = Arc<dyn Fn(&Value) -> Verdict + Send + Sync>;

impl Receiver {
    /// Starts a receiver whose replies, if any, go to `stand_in`.
    pub async fn start(
        stand_in: &StandIn,
        decide: impl Fn(&Value) -> Verdict + Send + Sync + 'static,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let decide: Decide = Arc::new(decide);
        let api = Api::new(stand_in);
        let log = received.clone();
        let answering = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (decide, api, log, answering) =
                    (decide.clone(), api.clone(), log.clone(), answering.clone());
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let (decide, api, log, answering) =
                        (decide.clone(), api.clone(), log.clone(), answering.clone());
                    async move {
                        let at = Instant::now();
                        let concurrent = answering.fetch_add(1, Ordering::SeqCst) + 1;
                        let secret = request
                            .headers()
                            .get("x-telegram-bot-api-secret-token")
                            .map(|v| v.to_str().unwrap().to_owned());
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let update: Value = serde_json::from_slice(&body).unwrap();
                        let verdict = decide(&update);
                        log.lock().unwrap().push(Received {
                            update: update.clone(),
                            secret,
                            status: verdict.status,
                            at,
                            concurrent,
                        });
                        tokio::time::sleep(verdict.delay).await;
                        if let Some(text) = &verdict.reply {
                            let chat_id = update["message"]["chat"]["id"].clone();
                            api.ok("sendMessage", json!({"chat_id": chat_id, "text": text}))
                                .await;
                        }
                        let mut response = hyper::Response::new(Full::new(bytes::Bytes::new()));
                        *response.status_mut() =
                            hyper::StatusCode::from_u16(verdict.status).unwrap();
                        if let Some(seconds) = verdict.retry_after {
                            response.headers_mut().insert("retry-after", seconds.into());
                        }
                        if verdict.close {
                            response.headers_mut().insert(
                                "connection",
                                hyper::header::HeaderValue::from_static("close"),
                            );
                        }
                        answering.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, received }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every delivery so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The texts of the messages from chat `chat_id` it accepted (2xx), in
    /// order.
    pub fn accepted_texts(&self, chat_id: i64) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .filter(|r| r.update["message"]["chat"]["id"] == chat_id)
            .map(|r| r.update["message"]["text"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub use testkit::until;
