//! The real Lambda function binary, run on this machine the way Lambda runs
//! it: a process polling a Lambda Runtime API (served here, by the
//! `lambda-runtime-api` crate), with Lambda's environment. In front of it, a
//! loopback HTTP server turns each POST into the Function URL event Lambda
//! would build and answers with the status the function chose, so the
//! stand-in can deliver to it by webhook. Needs nothing but cargo.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lambda_runtime_api::{
    function_url_event, Invocation, Options, Report, RuntimeApi, DEFAULT_FUNCTION_TIMEOUT,
};
use serde_json::Value;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const FUNCTION_NAME: &str = "telegram-bot-local";
/// Lambda's Function URL payload limit.
const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// Why the function could not be run.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("cannot run cargo")]
    Cargo(#[source] std::io::Error),
    #[error("the function does not build (cargo build -p telegram-lambda-bot --bin webhook)")]
    Build,
    #[error("cargo built no `webhook` executable")]
    NoExecutable,
    #[error("cannot start the Lambda Runtime API")]
    RuntimeApi(#[from] lambda_runtime_api::StartError),
    #[error("cannot listen on loopback")]
    Listen(#[source] std::io::Error),
    #[error("cannot write the function's log {}", .0.display())]
    Log(PathBuf, #[source] std::io::Error),
    #[error("cannot start the function")]
    Spawn(#[source] std::io::Error),
}

/// Builds the function with cargo, in its own package as `sam build` does
/// (none of this tool's AWS credential providers in it), and returns the
/// executable's path. It shares the tool's target directory and, by the
/// workspace's feature alignment (Cargo.toml), nearly all of its build: a
/// first time compiles aws-config, the library and the executable again.
pub async fn build(project: &Path) -> Result<PathBuf, FunctionError> {
    let output = Command::new("cargo")
        .args([
            "build",
            "--quiet",
            "--message-format=json-render-diagnostics",
            "-p",
            "telegram-lambda-bot",
            "--bin",
            "webhook",
        ])
        .current_dir(project)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Compiler messages go to the terminal, as with cargo itself.
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(FunctionError::Cargo)?;
    if !output.status.success() {
        return Err(FunctionError::Build);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "webhook")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or(FunctionError::NoExecutable)
}

/// The function running locally; stopped (process killed) when dropped.
pub struct LocalFunction {
    child: Child,
    front: JoinHandle<()>,
    invoker: JoinHandle<()>,
    url: String,
    log: PathBuf,
}

impl LocalFunction {
    /// Starts `executable` under a Runtime API with `vars` added to Lambda's
    /// environment, its logs going to `log`, and the HTTP front before it.
    pub async fn start(
        executable: &Path,
        vars: &[(&str, String)],
        log: PathBuf,
    ) -> Result<LocalFunction, FunctionError> {
        let options = Options {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"),
            function_timeout: DEFAULT_FUNCTION_TIMEOUT,
        };
        let runtime_api = RuntimeApi::start(options).await?;
        let log_file =
            std::fs::File::create(&log).map_err(|e| FunctionError::Log(log.clone(), e))?;
        let child = Command::new(executable)
            .env_clear()
            .envs(lambda_env(&runtime_api))
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .map_err(FunctionError::Spawn)?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(FunctionError::Listen)?;
        let url = format!(
            "http://{}/",
            listener.local_addr().map_err(FunctionError::Listen)?
        );
        let (jobs, queue) = mpsc::channel(64);
        let invoker = tokio::spawn(invoke_one_at_a_time(runtime_api, queue));
        let front = tokio::spawn(serve(listener, jobs));
        Ok(LocalFunction {
            child,
            front,
            invoker,
            url,
            log,
        })
    }

    /// The URL to set as the webhook.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the function's log lines go.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops the function at once: there is nothing it must finish, since
    /// every update it has not answered is delivered again. Its log is kept
    /// only when `keep_log`.
    pub async fn stop(mut self, keep_log: bool) {
        let _ = self.child.kill().await;
        if !keep_log {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl Drop for LocalFunction {
    fn drop(&mut self) {
        self.front.abort();
        self.invoker.abort();
    }
}

/// The environment Lambda gives a function, for the variables the runtime
/// and the SDK read.
fn lambda_env(runtime_api: &RuntimeApi) -> Vec<(&'static str, String)> {
    let mut env = vec![("AWS_LAMBDA_RUNTIME_API", runtime_api.addr().to_string())];
    env.extend(lambda_runtime_api::lambda_env(
        FUNCTION_NAME,
        128,
        "us-east-1",
    ));
    env
}

/// One request for the function, and where its answer goes.
struct Job {
    event: Value,
    answer: oneshot::Sender<Response<Full<Bytes>>>,
}

/// Hands the function one event at a time, as one Lambda environment takes
/// them, and turns each answer into an HTTP response.
async fn invoke_one_at_a_time(mut runtime_api: RuntimeApi, mut jobs: mpsc::Receiver<Job>) {
    let mut count = 0u64;
    while let Some(job) = jobs.recv().await {
        count += 1;
        let request_id = format!("00000000-0000-4000-8000-{count:012x}");
        let invocation = Invocation::new(request_id.clone(), job.event.to_string());
        let response = match runtime_api.queue(invocation) {
            Ok(()) => {
                // A little past the function's own timeout, as Lambda ends
                // an invocation that overruns it.
                let limit = DEFAULT_FUNCTION_TIMEOUT + Duration::from_secs(2);
                match tokio::time::timeout(limit, answer_to(&mut runtime_api, &request_id)).await {
                    Ok(response) => response,
                    Err(_) => plain(StatusCode::GATEWAY_TIMEOUT, "the function timed out"),
                }
            }
            Err(error) => plain(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
        };
        let _ = job.answer.send(response);
    }
}

/// Waits for the function's answer to `request_id`. A function error is a
/// 502, as a Function URL answers it.
async fn answer_to(runtime_api: &mut RuntimeApi, request_id: &str) -> Response<Full<Bytes>> {
    while let Some(report) = runtime_api.report().await {
        match report {
            Report::Response {
                request_id: id,
                body,
                ..
            } if id == request_id => return http_response(&body),
            Report::Error { request_id: id, .. } if id == request_id => {
                return plain(StatusCode::BAD_GATEWAY, "the function failed");
            }
            Report::InitError { .. } => {
                return plain(StatusCode::BAD_GATEWAY, "the function could not start");
            }
            _ => {}
        }
    }
    plain(StatusCode::BAD_GATEWAY, "the Runtime API stopped")
}

/// The function's answer (payload 2.0: statusCode, headers, body) as HTTP.
fn http_response(body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return plain(StatusCode::BAD_GATEWAY, "the function's answer is not JSON");
    };
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|code| u16::try_from(code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::OK);
    let text = answer["body"].as_str().unwrap_or_default().to_owned();
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    if let Some(headers) = answer["headers"].as_object() {
        for (name, value) in headers {
            let (Ok(name), Some(Ok(value))) = (
                hyper::header::HeaderName::try_from(name.as_str()),
                value.as_str().map(hyper::header::HeaderValue::from_str),
            ) else {
                continue;
            };
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}

async fn serve(listener: TcpListener, jobs: mpsc::Sender<Job>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let jobs = jobs.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(request, jobs.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    jobs: mpsc::Sender<Job>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let Ok(body) = Limited::new(body, MAX_REQUEST_BYTES).collect().await else {
        return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "request too large"));
    };
    let event = function_url_event(&parts, &body.to_bytes());
    let (answer, answered) = oneshot::channel();
    if jobs.send(Job { event, answer }).await.is_err() {
        return Ok(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the function stopped",
        ));
    }
    Ok(answered
        .await
        .unwrap_or_else(|_| plain(StatusCode::SERVICE_UNAVAILABLE, "the function stopped")))
}
