//! A Lambda Runtime API on loopback, for running a function binary the way
//! Lambda does: a fresh process, started with `AWS_LAMBDA_RUNTIME_API`
//! pointing here, that polls for events.
//!
//! It serves the four endpoints a custom runtime uses, under
//! `/2018-06-01/runtime/`:
//!
//! - `GET invocation/next` answers with the queued event and Lambda's
//!   headers (`Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//!   `Lambda-Runtime-Invoked-Function-Arn`, `Lambda-Runtime-Trace-Id`),
//!   holding the request open until there is one, as Lambda does;
//! - `POST invocation/{id}/response` and `POST invocation/{id}/error` take
//!   the function's answer;
//! - `POST init/error` takes the function's report that it cannot start.
//!
//! Anything else is refused with 404, and a body over Lambda's 6 MiB limit
//! with 413.
//!
//! The caller queues events with [`RuntimeApi::queue`] and reads what the
//! function did with [`RuntimeApi::report`]: every [`Report`] carries the
//! instant it happened where that is useful for timing, so a benchmark can
//! be built on the reports alone.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use lambda_runtime_api::{Invocation, Options, Report, RuntimeApi};
//!
//! let mut api = RuntimeApi::start(Options::default()).await?;
//! // Start the function with AWS_LAMBDA_RUNTIME_API = api.addr(), then:
//! api.queue(Invocation::new("8f5e1c2a-0000-4000-8000-000000000001", "{}"))?;
//! while let Some(report) = api.report().await {
//!     if let Report::Response { body, .. } = report {
//!         println!("{}", String::from_utf8_lossy(&body));
//!         break;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! One API serves one function process. Dropping the [`RuntimeApi`] stops
//! the server and closes every connection, which a function polling `/next`
//! sees as the end of its environment.

mod env;
mod event;
mod server;

pub use env::lambda_env;
pub use event::function_url_event;

use bytes::Bytes;
use server::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

/// The function timeout in the project's SAM template: the deadline every
/// event gets unless [`Options::function_timeout`] says otherwise.
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(25);
/// The ARN the function is told it was invoked as unless
/// [`Options::function_arn`] says otherwise: made up, in the usual shape.
pub const DEFAULT_FUNCTION_ARN: &str =
    "arn:aws:lambda:eu-west-1:123456789012:function:telegram-bot-bench";
/// Lambda's limit for a synchronous response; a larger body is refused.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// How the emulated function is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How long each event may take: its `Lambda-Runtime-Deadline-Ms` is
    /// this long after it is handed out. Nothing is enforced; the function
    /// only reads it, for instance to give up on slow work in time.
    pub function_timeout: Duration,
    /// The `Lambda-Runtime-Invoked-Function-Arn` of every event.
    pub function_arn: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            function_timeout: DEFAULT_FUNCTION_TIMEOUT,
            function_arn: DEFAULT_FUNCTION_ARN.to_owned(),
        }
    }
}

/// One event for the function to handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Its `Lambda-Runtime-Aws-Request-Id`, which the function repeats in
    /// the path of its answer. ASCII letters, digits and dashes only (a UUID
    /// in Lambda), since it goes into a header and a URL path as it is.
    pub request_id: String,
    /// The event, as the body of the answer to `/next`.
    pub event: Bytes,
}

impl Invocation {
    pub fn new(request_id: impl Into<String>, event: impl Into<Bytes>) -> Self {
        Invocation {
            request_id: request_id.into(),
            event: event.into(),
        }
    }
}

/// What the function did, as the Runtime API saw it, in the order it
/// happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A `/next` request arrived (before any event was handed out for it).
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
        /// Its `Lambda-Runtime-Function-Error-Type` header, or `(none)`.
        error_type: String,
        body: Bytes,
    },
    /// The function reported that it cannot start.
    InitError {
        /// Its `Lambda-Runtime-Function-Error-Type` header, or `(none)`.
        error_type: String,
        body: Bytes,
    },
    /// A request no runtime should make (refused with 404), or a body over
    /// [`MAX_BODY_BYTES`] (refused with 413): `what` says which.
    Unexpected { what: String },
}

/// Why the Runtime API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on loopback: {0}")]
    Listen(#[source] std::io::Error),
    #[error("the function ARN {0:?} cannot be sent as a header")]
    InvalidFunctionArn(String),
}

/// Why an invocation was not queued; each variant gives it back.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// An earlier event has not been taken by the function yet.
    #[error("an earlier event ({}) is still waiting for the function", .0.request_id)]
    Busy(Invocation),
    /// The request id is not made of ASCII letters, digits and dashes.
    #[error("the request id {:?} is not letters, digits and dashes", .0.request_id)]
    InvalidRequestId(Invocation),
    /// The server is gone; only after it failed, as dropping it takes the
    /// queue with it.
    #[error("the Runtime API has stopped")]
    Stopped(Invocation),
}

impl QueueError {
    /// The invocation that was not queued.
    pub fn into_invocation(self) -> Invocation {
        match self {
            QueueError::Busy(invocation)
            | QueueError::InvalidRequestId(invocation)
            | QueueError::Stopped(invocation) => invocation,
        }
    }
}

/// A running Runtime API. Stops, with all its connections, when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    queue: mpsc::Sender<Invocation>,
    reports: mpsc::UnboundedReceiver<Report>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on an ephemeral loopback port. Needs a Tokio runtime with
    /// I/O and timers enabled.
    pub async fn start(options: Options) -> Result<RuntimeApi, StartError> {
        let function_arn = options
            .function_arn
            .parse()
            .map_err(|_| StartError::InvalidFunctionArn(options.function_arn.clone()))?;
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(StartError::Listen)?;
        let addr = listener.local_addr().map_err(StartError::Listen)?;
        // One invocation at most waits for the function, as in Lambda, where
        // an environment takes the next event only after answering the last.
        let (queue, receiver) = mpsc::channel(1);
        let (report_sender, reports) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: Mutex::new(receiver),
            reports: report_sender,
            function_timeout: options.function_timeout,
            function_arn,
        });
        let server = tokio::spawn(server::serve(listener, shared));
        Ok(RuntimeApi {
            addr,
            queue,
            reports,
            server,
        })
    }

    /// Where it listens: the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `invocation` the answer to the function's next `/next`.
    pub fn queue(&self, invocation: Invocation) -> Result<(), QueueError> {
        if !valid_request_id(&invocation.request_id) {
            return Err(QueueError::InvalidRequestId(invocation));
        }
        self.queue
            .try_send(invocation)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(invocation) => QueueError::Busy(invocation),
                mpsc::error::TrySendError::Closed(invocation) => QueueError::Stopped(invocation),
            })
    }

    /// The next thing the function did, waiting for it; `None` only if the
    /// server stopped.
    pub async fn report(&mut self) -> Option<Report> {
        self.reports.recv().await
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Safe both as a header value and as one segment of the answer's path.
fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
