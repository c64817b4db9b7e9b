//! The HTTP side of the Runtime API: accepts the function's connections,
//! routes its requests to the four endpoints and turns each into a
//! [`Report`] for the caller.

use crate::{Invocation, Report, MAX_BODY_BYTES};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

const PREFIX: &str = "/2018-06-01/runtime/";
const REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
const DEADLINE_MS: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
const FUNCTION_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");
const TRACE_ID: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
const ERROR_TYPE: &str = "lambda-runtime-function-error-type";

/// What every connection's requests share.
pub(crate) struct Shared {
    /// Only one `/next` is answered at a time, as in Lambda.
    pub(crate) queue: Mutex<mpsc::Receiver<Invocation>>,
    pub(crate) reports: mpsc::UnboundedSender<Report>,
    pub(crate) function_timeout: Duration,
    /// Checked once at start, so every `/next` can send it as it is.
    pub(crate) function_arn: HeaderValue,
}

impl Shared {
    fn report(&self, report: Report) {
        // Fails only once the caller dropped the `RuntimeApi`, and the
        // server is being stopped then anyway.
        let _ = self.reports.send(report);
    }
}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in the set, so aborting `serve` ends them too.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors or similar: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // The answers are small and latency is measured on them: no Nagle.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            // A connection ends with an error when the function is killed
            // mid-request, which is how a function process usually ends.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default();
    if parts.method == Method::GET && path == "invocation/next" {
        return Ok(next(&shared).await);
    }
    if parts.method != Method::POST {
        return Ok(unexpected(&shared, &parts.method, parts.uri.path()));
    }
    let error_type = parts
        .headers
        .get(ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_owned();
    let report = |body: Bytes| {
        if path == "init/error" {
            return Some(Report::InitError { error_type, body });
        }
        let (request_id, kind) = path.strip_prefix("invocation/")?.split_once('/')?;
        let request_id = request_id.to_owned();
        match kind {
            "response" => Some(Report::Response {
                request_id,
                body,
                at: Instant::now(),
            }),
            "error" => Some(Report::Error {
                request_id,
                error_type,
                body,
            }),
            _ => None,
        }
    };
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let what = format!("a body over {MAX_BODY_BYTES} bytes to {}", parts.uri.path());
            shared.report(Report::Unexpected { what });
            return Ok(status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
            ));
        }
    };
    match report(body) {
        Some(report) => {
            shared.report(report);
            Ok(status(StatusCode::ACCEPTED, "OK"))
        }
        None => Ok(unexpected(&shared, &parts.method, parts.uri.path())),
    }
}

/// Answers `/next` with the queued event once there is one, as Lambda holds
/// the request open until an invocation arrives.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    shared.report(Report::NextAsked { at: Instant::now() });
    let invocation = shared.queue.lock().await.recv().await;
    let Some(invocation) = invocation else {
        // The caller is done with this process; it is about to be killed.
        return status(StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown");
    };
    let timeout_ms = u64::try_from(shared.function_timeout.as_millis()).unwrap_or(u64::MAX);
    let deadline_ms = epoch_ms().saturating_add(timeout_ms);
    let mut response = Response::new(Full::new(invocation.event));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(DEADLINE_MS, HeaderValue::from(deadline_ms));
    headers.insert(FUNCTION_ARN, shared.function_arn.clone());
    // `RuntimeApi::queue` lets through only letters, digits and dashes, so
    // both are always valid header values.
    if let Ok(id) = HeaderValue::from_str(&invocation.request_id) {
        headers.insert(REQUEST_ID, id);
    }
    if let Ok(trace) = HeaderValue::from_str(&trace_id(&invocation.request_id)) {
        headers.insert(TRACE_ID, trace);
    }
    shared.report(Report::HandedOut {
        request_id: invocation.request_id,
        at: Instant::now(),
    });
    response
}

fn unexpected(shared: &Shared, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let what = format!("{method} {path}");
    shared.report(Report::Unexpected { what });
    status(StatusCode::NOT_FOUND, "InvalidRequest")
}

/// Lambda's small JSON answer, `{"status":"OK"}` or an error type. `text`
/// is always one of this file's literals, so it needs no escaping.
fn status(code: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let body = format!(r#"{{"status":"{text}"}}"#);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An X-Ray trace header of the usual shape, unsampled so nothing would
/// ever be sent for it.
fn trace_id(request_id: &str) -> String {
    let seconds = epoch_ms() / 1000;
    let digits: String = request_id.chars().filter(char::is_ascii_hexdigit).collect();
    let tail = digits.get(digits.len().saturating_sub(24)..).unwrap_or("0");
    format!("Root=1-{seconds:08x}-{tail:0>24};Sampled=0")
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_ends_in_the_request_ids_last_24_hex_digits() {
        let trace = trace_id("8f5e1c2a-0000-4000-8000-00000000002a");
        let (root, sampled) = trace.split_once(';').unwrap();
        assert_eq!(sampled, "Sampled=0");
        let parts: Vec<&str> = root.split('-').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "Root=1");
        assert_eq!(parts[1].len(), 8);
        assert_eq!(parts[2], "00004000800000000000002a");
    }

    #[test]
    fn a_request_id_without_hex_digits_gives_a_zero_trace() {
        let trace = trace_id("zz");
        assert!(trace.ends_with("-000000000000000000000000;Sampled=0"));
    }
}
