//! A fake language model behind an OpenAI-compatible Chat Completions API,
//! streamed as server-sent events the way OpenAI streams them: a chunk per
//! piece of the answer, a last chunk with the finish reason, `data: [DONE]`.
//! It checks the API key and the request's shape, paces the answer as told
//! (the time a real model takes is most of what the assistant must handle),
//! and fails on demand: 429 or 500 before any token, a stream cut midway,
//! a stall, an error object mid-stream.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The key the fake model takes unless told otherwise.
pub const FAKE_MODEL_KEY: &str = "sk-stand-in-fake-model-key";

/// How the fake model answers.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// The bearer key it accepts.
    pub api_key: String,
    /// The answer to every question; by default one made from the question.
    pub answer: Option<String>,
    /// The pause before each piece of the answer (a word and its space).
    pub piece_interval: Duration,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            api_key: FAKE_MODEL_KEY.to_owned(),
            answer: None,
            piece_interval: Duration::from_millis(40),
        }
    }
}

/// A failure the next request meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFault {
    /// 429 with this Retry-After (seconds), before any token.
    TooManyRequests { retry_after: u64 },
    /// 500 before any token.
    ServerError,
    /// The connection closes after this many pieces: no finish, no `[DONE]`.
    CutAfter(usize),
    /// After this many pieces, nothing for this long, then the rest.
    StallAfter(usize, Duration),
    /// After this many pieces, an error object in the stream.
    ErrorAfter(usize),
    /// The answer ends with this finish reason (`length`,
    /// `content_filter`) instead of `stop`.
    FinishWith(String),
}

#[derive(Debug, Default)]
struct ModelState {
    faults: VecDeque<ModelFault>,
    requests: Vec<Value>,
}

#[derive(Debug)]
struct Shared {
    options: ModelOptions,
    state: Mutex<ModelState>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, ModelState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake model; stops when dropped.
#[derive(Debug)]
pub struct FakeModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeModel {
    /// Starts on an ephemeral loopback port.
    pub async fn start(options: ModelOptions) -> std::io::Result<FakeModel> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(ModelState::default()),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(FakeModel {
            addr,
            shared,
            server,
        })
    }

    /// The API's base URL, as OpenAI's `https://api.openai.com/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Makes the next request meet `fault`; faults queue up.
    pub fn fail_next(&self, fault: ModelFault) {
        self.shared.state().faults.push_back(fault);
    }

    /// The bodies of the requests it answered, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.state().requests.clone()
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// OpenAI's error body.
fn refusal(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: &str,
) -> Response<AnswerBody> {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let mut response = Response::new(AnswerBody::Full(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<AnswerBody> {
    if request.method() != hyper::Method::POST || request.uri().path() != "/v1/chat/completions" {
        return refusal(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            None,
            "Unknown request URL. Please check the URL for typos.",
        );
    }
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|key| key == shared.options.api_key);
    if !authorized {
        // OpenAI masks the key it was given; this names none of it.
        return refusal(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        );
    }
    let Ok(body) = Limited::new(request.into_body(), 1024 * 1024)
        .collect()
        .await
    else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "The request body could not be read.",
        );
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "We could not parse the JSON body of your request.",
        );
    };
    if body["model"].as_str().is_none_or(str::is_empty) {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "you must provide a model parameter",
        );
    }
    let Some(question) = last_user_message(&body) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "'messages' must be a non-empty array of messages, each with a role (system, user or assistant) and a string content",
        );
    };
    let fault = {
        let mut state = shared.state();
        state.requests.push(body.clone());
        state.faults.pop_front()
    };
    match fault {
        Some(ModelFault::TooManyRequests { retry_after }) => {
            let mut response = refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached for requests. Please try again later.",
            );
            response
                .headers_mut()
                .insert("retry-after", retry_after.into());
            return response;
        }
        Some(ModelFault::ServerError) => {
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                "The server had an error while processing your request.",
            );
        }
        _ => {}
    }
    let text = shared
        .options
        .answer
        .clone()
        .unwrap_or_else(|| format!("You asked: {question}\n\nThis answer comes from the stand-in's fake model, a few words at a time, as a real model streams one."));
    let pieces = pieces(&text);
    if body["stream"] != true {
        let completion = json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        });
        let mut response = Response::new(AnswerBody::Full(Full::new(Bytes::from(
            completion.to_string(),
        ))));
        response.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        return response;
    }
    let (sender, receiver) = mpsc::channel(16);
    let interval = shared.options.piece_interval;
    let model = body["model"].clone();
    tokio::spawn(stream_answer(sender, pieces, interval, fault, model));
    let mut response = Response::new(AnswerBody::Stream(receiver));
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// The last user message's text, if `messages` is a list of messages.
fn last_user_message(body: &Value) -> Option<String> {
    let messages = body["messages"].as_array().filter(|m| !m.is_empty())?;
    let valid = messages.iter().all(|m| {
        ["system", "user", "assistant", "developer"].contains(&m["role"].as_str().unwrap_or(""))
            && m["content"].is_string()
    });
    if !valid {
        return None;
    }
    messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .map(str::to_owned)
}

/// Words with the space after each, as a model's tokens come.
fn pieces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if c.is_whitespace() {
            pieces.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn event(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

fn chunk(model: &Value, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

async fn stream_answer(
    sender: mpsc::Sender<Bytes>,
    pieces: Vec<String>,
    interval: Duration,
    fault: Option<ModelFault>,
    model: Value,
) {
    let send = |bytes: Bytes| {
        let sender = sender.clone();
        async move { sender.send(bytes).await.is_ok() }
    };
    if !send(event(&chunk(
        &model,
        json!({"role": "assistant", "content": ""}),
        None,
    )))
    .await
    {
        return;
    }
    for (sent, piece) in pieces.iter().enumerate() {
        match &fault {
            Some(ModelFault::CutAfter(n)) if *n == sent => return,
            Some(ModelFault::StallAfter(n, pause)) if *n == sent => {
                tokio::time::sleep(*pause).await
            }
            Some(ModelFault::ErrorAfter(n)) if *n == sent => {
                let error = json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "code": null}});
                send(event(&error)).await;
                return;
            }
            _ => {}
        }
        tokio::time::sleep(interval).await;
        if !send(event(&chunk(&model, json!({"content": piece}), None))).await {
            return;
        }
    }
    let finish = match &fault {
        Some(ModelFault::FinishWith(reason)) => reason.clone(),
        _ => "stop".to_owned(),
    };
    send(event(&chunk(&model, json!({}), Some(&finish)))).await;
    send(Bytes::from_static(b"data: [DONE]\n\n")).await;
}

/// A whole body, or one streamed as the answer is made.
pub(crate) enum AnswerBody {
    Full(Full<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            AnswerBody::Full(full) => Pin::new(full).poll_frame(cx),
            AnswerBody::Stream(receiver) => receiver
                .poll_recv(cx)
                .map(|bytes| bytes.map(|b| Ok(Frame::data(b)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_comes_a_word_and_its_space_at_a_time() {
        assert_eq!(pieces("Hi there,\nyou"), ["Hi ", "there,\n", "you"]);
        assert_eq!(pieces("").len(), 0);
    }
}
