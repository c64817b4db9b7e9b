//! A stand-in for the Telegram Bot API on loopback, for tests and local runs.
//!
//! It answers the methods this project uses with Telegram's JSON shapes and
//! refuses what Telegram refuses, with Telegram's status codes and error
//! descriptions: a wrong token, an unknown method, a chat it has not seen, an
//! empty or over-long text, a reply to a message that does not exist. It
//! records every call and injects failures on demand.
//!
//! Chats become known the way they do for a real bot: when an update from
//! them passes through ([`StandIn::observe_update`]).

mod api;
mod state;
mod tls;
mod webhook;

pub use state::{Call, Fault};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A token of the right shape, for tests and local runs only.
pub const DEFAULT_TOKEN: &str = "123456789:AAStandIn-token_for-local-tests-only";
pub const DEFAULT_BOT_USERNAME: &str = "EchoLambdaBot";
/// Telegram refuses request bodies above this (it is the file upload limit).
const MAX_REQUEST_BYTES: usize = 50 * 1024 * 1024;

/// How the stand-in presents itself.
#[derive(Debug, Clone)]
pub struct Options {
    pub token: String,
    pub bot_username: String,
    /// Real seconds per Telegram second in webhook delivery (timeouts,
    /// backoff, lifetimes): 0.01 makes a 64 s backoff take 0.64 s.
    pub time_scale: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token: DEFAULT_TOKEN.to_owned(),
            bot_username: DEFAULT_BOT_USERNAME.to_owned(),
            time_scale: 1.0,
        }
    }
}

/// A running stand-in. Stops accepting connections when dropped.
#[derive(Debug)]
pub struct StandIn {
    addr: SocketAddr,
    handle: Handle,
    server: JoinHandle<()>,
    delivery: JoinHandle<()>,
    /// Set when it answers over HTTPS ([`StandIn::start_tls`]).
    tls: Option<tls::Acceptor>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: Options,
    pub(crate) state: Mutex<state::State>,
    pub(crate) updates_arrived: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, state::State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StandIn {
    /// Starts on an ephemeral loopback port.
    pub async fn start(options: Options) -> std::io::Result<StandIn> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    pub async fn start_on(addr: SocketAddr, options: Options) -> std::io::Result<StandIn> {
        Self::start_with(addr, options, None).await
    }

    async fn start_with(
        addr: SocketAddr,
        options: Options,
        tls: Option<tls::Acceptor>,
    ) -> std::io::Result<StandIn> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let bot_id = options
            .token
            .split(':')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(state::State::new(bot_id)),
            options,
            updates_arrived: tokio::sync::Notify::new(),
        });
        let server = tokio::spawn(serve(listener, shared.clone(), tls.clone()));
        // Webhook delivery never follows redirects: Telegram counts one as a
        // failure.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let delivery = tokio::spawn(webhook::run(shared.clone(), http));
        Ok(StandIn {
            addr,
            handle: Handle(shared),
            server,
            delivery,
            tls,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value for `TELEGRAM_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

/// What tests and controls do with a running stand-in; a [`StandIn`]
/// dereferences to it.
#[derive(Debug, Clone)]
pub struct Handle(pub(crate) Arc<Shared>);

impl Handle {
    pub fn token(&self) -> &str {
        &self.0.options.token
    }

    /// Every Bot API call received, in order, with the status answered.
    pub fn calls(&self) -> Vec<Call> {
        self.0.state().calls.clone()
    }

    /// The parameters of every call to `method` (case-insensitive).
    pub fn calls_to(&self, method: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.method.eq_ignore_ascii_case(method))
            .map(|c| c.params)
            .collect()
    }

    /// The parameters of every sendMessage that was carried out (sent to
    /// the chat), whatever the caller was answered.
    pub fn sent_messages(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.method.eq_ignore_ascii_case("sendMessage") && c.performed)
            .map(|c| c.params)
            .collect()
    }

    /// Makes the next call to `method` fail as `fault` says. Faults queue up
    /// per method and are used one per call.
    pub fn inject(&self, method: &str, fault: Fault) {
        self.0
            .state()
            .faults
            .entry(method.to_ascii_lowercase())
            .or_default()
            .push_back(fault);
    }

    /// Learns the chats, users and messages in `update`, as Telegram knows
    /// them once a user wrote.
    pub fn observe_update(&self, update: &Value) {
        self.0.state().observe_update(update);
    }

    /// Marks a private chat as having blocked the bot.
    pub fn block_chat(&self, chat_id: i64) {
        self.0.state().block(chat_id);
    }

    /// Queues an update for getUpdates (and learns from it).
    pub fn enqueue_update(&self, update: Value) {
        let mut state = self.0.state();
        state.observe_update(&update);
        state.pending.push_back(update);
        drop(state);
        self.0.updates_arrived.notify_waiters();
    }

    /// Queues a text message from a user in their private chat with the bot,
    /// as Telegram would after the user wrote it. Returns the update id.
    pub fn enqueue_text(&self, user_id: i64, text: &str) -> i64 {
        self.enqueue_text_from(user_id, "User", text)
    }

    /// Queues a text message from user `user_id` named `first_name`, in
    /// their private chat with the bot. Returns the update id.
    pub fn enqueue_text_from(&self, user_id: i64, first_name: &str, text: &str) -> i64 {
        let mut state = self.0.state();
        state.next_update_id += 1;
        state.next_message_id += 1;
        let (update_id, message_id) = (state.next_update_id, state.next_message_id);
        drop(state);
        let user = serde_json::json!({"id": user_id, "is_bot": false, "first_name": first_name});
        let chat = serde_json::json!({"id": user_id, "first_name": first_name, "type": "private"});
        self.enqueue_update(serde_json::json!({
            "update_id": update_id,
            "message": {
                "message_id": message_id,
                "from": user,
                "chat": chat,
                "date": api::now(),
                "text": text,
            }
        }));
        update_id
    }

    /// Waits until update `update_id` left the queue: delivered to the
    /// webhook with a 2xx, confirmed by a getUpdates offset, or dropped.
    /// False when `timeout` passed first.
    pub async fn wait_settled(&self, update_id: i64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.0.updates_arrived.notified();
            let pending = self
                .0
                .state()
                .pending
                .iter()
                .any(|u| webhook::update_id(u) == update_id);
            if !pending {
                return true;
            }
            // Confirmations by offset do not notify; look again soon.
            let tick = tokio::time::Instant::now() + Duration::from_millis(50);
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            let _ = tokio::time::timeout_at(tick.min(deadline), changed).await;
        }
    }

    /// The texts the bot sent to chat `chat_id`, in order, as sendMessage
    /// parameters.
    pub fn replies_to(&self, chat_id: i64) -> Vec<Value> {
        self.sent_messages()
            .into_iter()
            .filter(|m| {
                m.get("chat_id")
                    .and_then(|c| c.as_i64().or_else(|| c.as_str()?.parse().ok()))
                    == Some(chat_id)
            })
            .collect()
    }

    /// Update ids delivered to the webhook with a 2xx, in order.
    pub fn delivered(&self) -> Vec<i64> {
        self.0.state().delivered.clone()
    }

    /// Webhook deliveries so far: each attempt's update id and how it went
    /// ("ok" or Telegram's error message).
    pub fn deliveries(&self) -> Vec<(i64, String)> {
        self.0.state().delivery_log.clone()
    }

    /// Updates queued and not yet confirmed by a getUpdates offset.
    pub fn pending_updates(&self) -> Vec<Value> {
        self.0.state().pending.iter().cloned().collect()
    }

    /// Records a failed webhook delivery `seconds_ago`, as getWebhookInfo
    /// then reports it (`message` in Telegram's wording, such as "Wrong
    /// response from the webhook: 502 Bad Gateway"). No effect without a
    /// webhook.
    pub fn record_delivery_error(&self, message: &str, seconds_ago: i64) {
        if let Some(webhook) = self.0.state().webhook.as_mut() {
            webhook.last_error = Some(state::DeliveryError {
                date: api::now() - seconds_ago,
                message: message.to_owned(),
            });
        }
    }

    /// Forgets calls and faults; keeps known chats.
    pub fn reset(&self) {
        let mut state = self.0.state();
        state.calls.clear();
        state.calls_generation += 1;
        state.faults.clear();
    }
}

impl std::ops::Deref for StandIn {
    type Target = Handle;

    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
        self.delivery.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, tls: Option<tls::Acceptor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Answers are small: without this, delayed ACKs can stall them.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            let http = hyper::server::conn::http1::Builder::new();
            // An error here is a connection the stand-in dropped on purpose,
            // a client that went away, or one that does not trust the CA;
            // none is worth a log line.
            let _ = match tls {
                None => http.serve_connection(TokioIo::new(stream), service).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                    Err(_) => return,
                },
            };
        });
    }
}

/// Returned to hyper to drop the connection without an answer.
#[derive(Debug)]
pub(crate) struct DroppedOnPurpose;

impl std::fmt::Display for DroppedOnPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DroppedOnPurpose {}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<AnswerBody>, DroppedOnPurpose> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(
                api::json_response(413, &api::error_body(413, "Request Entity Too Large"))
                    .map(AnswerBody::Whole),
            )
        }
    };
    match api::route(&shared, parts, body).await {
        Ok(response) => Ok(response.map(AnswerBody::Whole)),
        Err(Cut::Drop) => Err(DroppedOnPurpose),
        Err(Cut::MidAnswer(response)) => Ok(response.map(|full| {
            let whole = full.into_inner().unwrap_or_default();
            AnswerBody::CutShort(Some(whole.slice(..whole.len() / 2)))
        })),
    }
}

/// How the stand-in breaks a connection on purpose.
pub(crate) enum Cut {
    /// Close it without answering.
    Drop,
    /// Send the status, headers and half the body, then close it.
    MidAnswer(Response<Full<Bytes>>),
}

/// An answer's body: whole, or cut off after its first half (the connection
/// then closes, as when a proxy dies mid-answer).
pub(crate) enum AnswerBody {
    Whole(Full<Bytes>),
    CutShort(Option<Bytes>),
}

impl hyper::body::Body for AnswerBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        use std::task::Poll;
        match self.get_mut() {
            AnswerBody::Whole(full) => std::pin::Pin::new(full)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
            AnswerBody::CutShort(half) => match half.take() {
                Some(data) => Poll::Ready(Some(Ok(hyper::body::Frame::data(data)))),
                None => Poll::Ready(Some(Err(std::io::Error::other(
                    "answer cut short on purpose",
                )))),
            },
        }
    }
}
