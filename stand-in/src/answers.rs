//! Telegram's answers, as they reach a client: the JSON envelopes of the Bot
//! API (`{"ok": true, "result": ...}` and its errors), the HTML error pages
//! of the front proxy, raw answers, and connections cut on purpose.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Value};

/// A method's refusal: the status, Telegram's description, and how long to
/// wait before retrying when it says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) description: String,
    pub(crate) retry_after: Option<u64>,
}

impl Refusal {
    pub(crate) fn new(status: u16, description: &str) -> Self {
        Refusal {
            status,
            description: description.to_owned(),
            retry_after: None,
        }
    }

    /// A 400 with Telegram's "Bad Request: " prefix before `description`.
    pub(crate) fn bad_request(description: &str) -> Self {
        Refusal::new(400, &format!("Bad Request: {description}"))
    }

    /// A 429 that asks to wait `seconds`, in the body and in a header.
    pub(crate) fn too_many_requests(seconds: u64) -> Self {
        Refusal {
            retry_after: Some(seconds),
            ..Refusal::new(429, &format!("Too Many Requests: retry after {seconds}"))
        }
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        error_response(self.status, &self.description, self.retry_after)
    }
}

/// What a Bot API method comes to: its `result`, or a whole envelope (one
/// with an `ok` field, when it carries a `description` too), or a refusal.
pub(crate) type MethodResult = Result<Value, Refusal>;

/// The answer to a method's result, and its status.
pub(crate) fn method_response(result: MethodResult) -> (u16, Response<Full<Bytes>>) {
    match result {
        Ok(Value::Object(envelope)) if envelope.contains_key("ok") => {
            (200, json_response(200, &Value::Object(envelope)))
        }
        Ok(result) => (
            200,
            json_response(200, &json!({"ok": true, "result": result})),
        ),
        Err(refusal) => (refusal.status, refusal.into_response()),
    }
}

/// A successful envelope that also says what happened, as the webhook
/// methods' answers do.
pub(crate) fn ok_with_description(result: Value, description: &str) -> Value {
    json!({"ok": true, "result": result, "description": description})
}

pub(crate) fn error_body(code: u16, description: &str) -> Value {
    json!({"ok": false, "error_code": code, "description": description})
}

fn status_code(status: u16) -> hyper::StatusCode {
    hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR)
}

pub(crate) fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status_code(status);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Telegram's error envelope; with `retry_after`, also
/// `parameters.retry_after` and a Retry-After header.
pub(crate) fn error_response(
    status: u16,
    description: &str,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut body = error_body(status, description);
    if let Some(seconds) = retry_after {
        body["parameters"] = json!({"retry_after": seconds});
    }
    let mut response = json_response(status, &body);
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, seconds.into());
    }
    response
}

/// The error for a group that became the supergroup `chat_id`: its
/// parameters name the new chat, and nothing else.
pub(crate) fn migrated_response(
    status: u16,
    description: &str,
    chat_id: i64,
) -> Response<Full<Bytes>> {
    let mut body = error_body(status, description);
    body["parameters"] = json!({"migrate_to_chat_id": chat_id});
    json_response(status, &body)
}

/// The page the front proxy (nginx) answers when the Bot API server behind
/// it is down or slow: HTML, not JSON.
pub(crate) fn html_response(status: u16) -> Response<Full<Bytes>> {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let page = format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = Response::new(Full::new(Bytes::from(page)));
    *response.status_mut() = status_code(status);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html"),
    );
    response
}

/// This status and body as they are, with no content type.
pub(crate) fn raw_response(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status_code(status);
    response
}

/// How the stand-in breaks a connection on purpose.
pub(crate) enum Cut {
    /// Close it without answering.
    Drop,
    /// Send the status, headers and half the body, then close it.
    MidAnswer(Response<Full<Bytes>>),
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

/// An answer's body: whole, or cut off after its first half (the connection
/// then closes, as when a proxy dies mid-answer).
pub(crate) enum AnswerBody {
    Whole(Full<Bytes>),
    CutShort(Option<Bytes>),
}

impl AnswerBody {
    /// The first half of `full`, to send before the connection closes.
    pub(crate) fn half_of(full: Full<Bytes>) -> Self {
        let whole = full.into_inner().unwrap_or_default();
        AnswerBody::CutShort(Some(whole.slice(..whole.len() / 2)))
    }
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
