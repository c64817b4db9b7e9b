//! A Lambda Runtime API on loopback, for one function process: the four
//! endpoints a custom runtime uses, with the headers Lambda sends. The bench
//! queues invocations; the function takes them with `/next` and answers with
//! `/response` or `/error`. Everything that happens is reported back with the
//! instant it happened, which is what the measurements are made of.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};
use tokio::task::{JoinHandle, JoinSet};

const PREFIX: &str = "/2018-06-01/runtime/";
/// Lambda's limit for a synchronous response; a larger one is refused.
const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// The function's timeout in the SAM template: every event gets this long.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(25);
const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:telegram-bot-bench";

/// One event for the function to handle.
#[derive(Debug)]
pub struct Invocation {
    pub request_id: String,
    pub event: Bytes,
}

/// What the function did, as the Runtime API saw it.
#[derive(Debug)]
pub enum Report {
    /// A `/next` request arrived (before any event was available to it).
    NextAsked { at: Instant },
    /// An event was handed out as the answer to `/next`.
    HandedOut { request_id: String, at: Instant },
    /// The function's answer arrived in full.
    Response {
        request_id: String,
        body: Bytes,
        at: Instant,
    },
    /// The function reported the invocation as failed.
    Error {
        request_id: String,
        error_type: String,
        body: Bytes,
    },
    /// The function reported that it cannot start.
    InitError { error_type: String, body: Bytes },
    /// A request no runtime should make, or one whose body was too big.
    Unexpected { what: String },
}

struct Shared {
    /// Only one `/next` is answered at a time, as in Lambda.
    queue: Mutex<mpsc::Receiver<Invocation>>,
    reports: mpsc::UnboundedSender<Report>,
}

/// A running Runtime API. Stops, with all its connections, when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    queue: mpsc::Sender<Invocation>,
    reports: mpsc::UnboundedReceiver<Report>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        // One invocation at most waits for the function: the bench queues
        // the next only after the last was answered.
        let (queue, receiver) = mpsc::channel(1);
        let (report_sender, reports) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: Mutex::new(receiver),
            reports: report_sender,
        });
        let server = tokio::spawn(serve(listener, shared));
        Ok(RuntimeApi {
            addr,
            queue,
            reports,
            server,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `invocation` the answer to the function's next `/next`. Fails
    /// if one is already waiting, which would be a bench bug.
    pub fn queue(&self, invocation: Invocation) -> Result<(), Invocation> {
        self.queue
            .try_send(invocation)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(invocation)
                | mpsc::error::TrySendError::Closed(invocation) => invocation,
            })
    }

    /// The next thing the function did; `None` only if the server stopped.
    pub async fn report(&mut self) -> Option<Report> {
        self.reports.recv().await
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
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
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            // A connection ends with an error when the function is killed
            // mid-request; that is how every process in the bench ends.
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
        .get("lambda-runtime-function-error-type")
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
            let _ = shared.reports.send(Report::Unexpected { what });
            return Ok(status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
            ));
        }
    };
    match report(body) {
        Some(report) => {
            let _ = shared.reports.send(report);
            Ok(status(StatusCode::ACCEPTED, "OK"))
        }
        None => Ok(unexpected(&shared, &parts.method, parts.uri.path())),
    }
}

/// Answers `/next` with the queued event once there is one, as Lambda holds
/// the request open until an invocation arrives.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    let _ = shared
        .reports
        .send(Report::NextAsked { at: Instant::now() });
    let invocation = shared.queue.lock().await.recv().await;
    let Some(invocation) = invocation else {
        // The bench is done with this process; it is about to be killed.
        return status(StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown");
    };
    let deadline_ms = epoch_ms().saturating_add(FUNCTION_TIMEOUT.as_millis() as u64);
    let mut response = Response::new(Full::new(invocation.event));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        HeaderName::from_static("lambda-runtime-deadline-ms"),
        HeaderValue::from(deadline_ms),
    );
    headers.insert(
        HeaderName::from_static("lambda-runtime-invoked-function-arn"),
        HeaderValue::from_static(FUNCTION_ARN),
    );
    // Request ids are made by the bench from hex digits and dashes, so they
    // are always valid header values.
    if let Ok(id) = HeaderValue::from_str(&invocation.request_id) {
        headers.insert(HeaderName::from_static("lambda-runtime-aws-request-id"), id);
    }
    if let Ok(trace) = HeaderValue::from_str(&trace_id(&invocation.request_id)) {
        headers.insert(HeaderName::from_static("lambda-runtime-trace-id"), trace);
    }
    let _ = shared.reports.send(Report::HandedOut {
        request_id: invocation.request_id,
        at: Instant::now(),
    });
    response
}

fn unexpected(shared: &Shared, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let what = format!("{method} {path}");
    let _ = shared.reports.send(Report::Unexpected { what });
    status(StatusCode::NOT_FOUND, "InvalidRequest")
}

/// Lambda's small JSON answer, `{"status":"OK"}` or an error type.
fn status(code: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "status": text }).to_string();
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
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
