//! The store of `webhook+store`: moto's server on loopback with a fresh
//! table, and between the function and moto a small proxy that counts the
//! store requests and records when each answer went back to the function.
//!
//! moto is a stand-in for DynamoDB, not a model of its speed: its answers
//! take what a Python server on the same machine takes, so the figures show
//! the store's cost in round trips and the function's own work around them,
//! not DynamoDB's latency. moto (werkzeug) also answers every request with
//! `Connection: close`; the proxy passes that on, so here the function opens
//! a connection per store request, where DynamoDB would keep one.
//!
//! The function reads its token and webhook secret from Parameter Store, as
//! deployed, through a second proxy (not counted: it is not the store's),
//! so that the two services are two hosts with a connection each, as in
//! AWS. With an emulated latency, each request waits that long and each new
//! connection twice that (TCP's and TLS's round trips), and connections are
//! kept as DynamoDB keeps them, so the cold path shows what a start-up
//! overlaps and what the first update still waits for.

use crate::BenchError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// The table the function is given; moto is fresh every run, so is the table.
pub const TABLE: &str = "telegram-bot-bench";
/// The parameters holding the token and the webhook secret.
const TOKEN_PARAMETER: &str = "/telegram-bot-bench/bot-token";
const SECRET_PARAMETER: &str = "/telegram-bot-bench/webhook-secret";
/// moto imports much of Python's world before it listens.
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest the table's creation may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(15);

/// One store request, as the proxy relayed it.
#[derive(Debug, Clone)]
pub struct StoreRequest {
    /// The DynamoDB operation (`GetItem`, `UpdateItem`), from `X-Amz-Target`.
    pub operation: String,
    /// moto's status, or 502 when moto could not be reached.
    pub status: u16,
    /// When the proxy handed moto's whole answer back to the function.
    pub answered: Instant,
}

type Log = Arc<Mutex<Vec<StoreRequest>>>;

/// moto and the counting proxy in front of it, for as long as it lives.
pub struct StoreProxy {
    moto: Child,
    moto_binary: PathBuf,
    proxy: SocketAddr,
    /// Parameter Store's proxy.
    ssm: SocketAddr,
    log: Log,
    /// Connections the function opened to the proxy.
    connections: Arc<AtomicU64>,
}

impl StoreProxy {
    /// Starts moto's server `binary` on loopback, creates the table in
    /// `region`, stores the token and `secret`, and puts the proxies in
    /// front, each adding `latency`; `Err` says, in one line, why there is
    /// no store to measure.
    pub async fn start(
        binary: PathBuf,
        region: &str,
        latency: Duration,
        token: &str,
        secret: &str,
    ) -> Result<StoreProxy, String> {
        let port = free_port().map_err(|e| format!("no free loopback port for moto: {e}"))?;
        let mut child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let moto = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = tokio::time::Instant::now() + MOTO_START_TIMEOUT;
        while TcpStream::connect(moto).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{} exited ({status})", binary.display()));
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(format!(
                    "{} did not listen within {MOTO_START_TIMEOUT:?}",
                    binary.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created = tokio::time::timeout(CREATE_TIMEOUT, async {
            create_table(moto, region, TABLE).await?;
            put_secure_string(moto, region, TOKEN_PARAMETER, token).await?;
            put_secure_string(moto, region, SECRET_PARAMETER, secret).await
        })
        .await
        .unwrap_or_else(|_| Err("no answer".to_owned()));
        if let Err(error) = created {
            let _ = child.kill().await;
            return Err(format!("creating the table in moto: {error}"));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("cannot open the store proxy: {e}"))?;
        let proxy = listener
            .local_addr()
            .map_err(|e| format!("cannot open the store proxy: {e}"))?;
        let ssm_listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("cannot open the Parameter Store proxy: {e}"))?;
        let ssm = ssm_listener
            .local_addr()
            .map_err(|e| format!("cannot open the Parameter Store proxy: {e}"))?;
        let log = Log::default();
        let connections = Arc::new(AtomicU64::new(0));
        let route = Route {
            moto,
            latency,
            log: Some(log.clone()),
            connections: connections.clone(),
        };
        tokio::spawn(serve(listener, route.clone()));
        tokio::spawn(serve(
            ssm_listener,
            Route {
                log: None,
                connections: Arc::new(AtomicU64::new(0)),
                ..route
            },
        ));
        Ok(StoreProxy {
            moto: child,
            moto_binary: binary,
            proxy,
            ssm,
            log,
            connections,
        })
    }

    pub fn moto_binary(&self) -> &Path {
        &self.moto_binary
    }

    /// The function's variables: the table, the token and the secret in
    /// Parameter Store (the plain variables emptied, which counts as
    /// unset), and each service pointed at its proxy, with fake
    /// credentials, no profile files and no instance metadata.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("BOT_STORE_TABLE", TABLE.to_owned()),
            ("TELEGRAM_BOT_TOKEN", String::new()),
            ("TELEGRAM_WEBHOOK_SECRET", String::new()),
            ("TELEGRAM_BOT_TOKEN_PARAMETER", TOKEN_PARAMETER.to_owned()),
            (
                "TELEGRAM_WEBHOOK_SECRET_PARAMETER",
                SECRET_PARAMETER.to_owned(),
            ),
            (
                "AWS_ENDPOINT_URL_DYNAMODB",
                format!("http://{}", self.proxy),
            ),
            ("AWS_ENDPOINT_URL_SSM", format!("http://{}", self.ssm)),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// How many store requests were answered so far: a mark for `since`.
    pub fn mark(&self) -> usize {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The store requests answered after `mark`, in order.
    pub fn since(&self, mark: usize) -> Vec<StoreRequest> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.get(mark..).unwrap_or_default().to_vec()
    }

    /// Connections the function opened to the store so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Stops moto, as a bounded step.
    pub async fn stop(mut self) {
        let _ = self.moto.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.moto.wait()).await;
    }
}

/// What one update cost in the store, from its store requests and the
/// moment the stand-in carried out its sendMessage: how many requests, and
/// the window between the message going out and the answer to the last
/// request (the finish) reaching the function. An instance that dies inside
/// that window has sent the reply without recording it, and answers the
/// redelivery again. An error when a request failed, or none ended after
/// the send.
pub fn update_cost(
    sent_at: Instant,
    requests: &[StoreRequest],
) -> Result<(usize, Duration), BenchError> {
    let failed = |why: &str| BenchError::Other(format!("webhook+store: {why}"));
    if let Some(refused) = requests.iter().find(|r| r.status != 200) {
        return Err(failed(&format!(
            "the store answered {} to {}",
            refused.status, refused.operation
        )));
    }
    let last = requests
        .last()
        .ok_or_else(|| failed("no store request for an update"))?;
    let window = last
        .answered
        .checked_duration_since(sent_at)
        .ok_or_else(|| failed("no store request after sendMessage (the finish)"))?;
    Ok((requests.len(), window))
}

/// The operation named by an `X-Amz-Target` header such as
/// `DynamoDB_20120810.UpdateItem`.
fn operation_of(target: Option<&str>) -> String {
    match target {
        Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
        None => "(no X-Amz-Target)".to_owned(),
    }
}

/// `$MOTO_SERVER`, else `moto_server` where scripts/test installs it, else
/// on the PATH; or why there is none, in one line.
pub fn find_moto() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("MOTO_SERVER={} is not a file", path.display()))
        };
    }
    let tools = std::env::var_os("TOOLS_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools")])
        .map(|dir| dir.join("bin"));
    let path = std::env::var_os("PATH");
    let on_path = path.iter().flat_map(std::env::split_paths);
    tools
        .chain(on_path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            "moto_server not found (set MOTO_SERVER, or run scripts/test once to install it)"
                .to_owned()
        })
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Creates the table as template.yaml declares it (partition key `pk`,
/// on-demand), with one DynamoDB JSON request. moto reads the region from
/// the credential scope and does not check the signature.
async fn create_table(moto: SocketAddr, region: &str, table: &str) -> Result<(), String> {
    let body = serde_json::json!({
        "TableName": table,
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    });
    call_moto(
        moto,
        region,
        "dynamodb",
        "DynamoDB_20120810.CreateTable",
        body,
    )
    .await
}

/// One AWS JSON request `target` to moto, for `service` in `region`.
async fn call_moto(
    moto: SocketAddr,
    region: &str,
    service: &str,
    target: &str,
    body: serde_json::Value,
) -> Result<(), String> {
    let content_type = match service {
        "dynamodb" => "application/x-amz-json-1.0",
        _ => "application/x-amz-json-1.1",
    };
    let request = Request::post("/")
        .header("host", moto.to_string())
        .header("content-type", content_type)
        .header("x-amz-target", target)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, \
                 SignedHeaders=host;x-amz-target, Signature=0"
            ),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let mut sender = connect(moto).await?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status == StatusCode::OK {
        Ok(())
    } else {
        let body: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        Err(format!("{target}: {status}: {body}"))
    }
}

/// Stores `value` as a SecureString `name`, as `aws ssm put-parameter`
/// does, with one JSON request (moto reads the region from the credential
/// scope and does not check the signature).
async fn put_secure_string(
    moto: SocketAddr,
    region: &str,
    name: &str,
    value: &str,
) -> Result<(), String> {
    let body = serde_json::json!({"Name": name, "Value": value, "Type": "SecureString"});
    call_moto(moto, region, "ssm", "AmazonSSM.PutParameter", body).await
}

/// An HTTP/1 connection to `addr`, driven in the background.
async fn connect<B>(addr: SocketAddr) -> Result<SendRequest<B>, String>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to moto: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("connecting to moto: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The moto connection of one function connection, kept between requests.
type Upstream = Arc<tokio::sync::Mutex<Option<SendRequest<Incoming>>>>;

/// What one proxy does: where moto is, the latency it adds, and whether it
/// logs its requests (the store's) or not (Parameter Store's).
#[derive(Clone)]
struct Route {
    moto: SocketAddr,
    latency: Duration,
    log: Option<Log>,
    connections: Arc<AtomicU64>,
}

/// The proxy: each connection from the function gets its own connection to
/// moto, so the function's connection reuse is moto's too.
async fn serve(listener: TcpListener, route: Route) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        route.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let route = route.clone();
        tokio::spawn(async move {
            // TCP's and TLS's round trips before the first request.
            tokio::time::sleep(2 * route.latency).await;
            let upstream = Upstream::default();
            let service = hyper::service::service_fn(move |request| {
                relay(request, route.clone(), upstream.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Passes one request to moto and its answer back, and logs it.
async fn relay(
    request: Request<Incoming>,
    route: Route,
    upstream: Upstream,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let operation = operation_of(
        request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok()),
    );
    tokio::time::sleep(route.latency).await;
    let mut response = forward(request, route.moto, &upstream)
        .await
        .unwrap_or_else(|error| {
            let mut response = Response::new(Full::new(Bytes::from(error)));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        });
    if !route.latency.is_zero() {
        // DynamoDB keeps connections; moto's close would make every
        // request pay the emulated handshakes.
        response.headers_mut().remove(hyper::header::CONNECTION);
    }
    if let Some(log) = &route.log {
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(StoreRequest {
                operation,
                status: response.status().as_u16(),
                answered: Instant::now(),
            });
    }
    Ok(response)
}

/// Sends `request` to moto on the kept connection, or a new one when moto
/// closed it, and reads the whole answer.
async fn forward(
    mut request: Request<Incoming>,
    moto: SocketAddr,
    upstream: &Upstream,
) -> Result<Response<Full<Bytes>>, String> {
    let mut kept = upstream.lock().await;
    // A second try, on a new connection, only for a request never sent.
    for _ in 0..2 {
        let mut sender = match kept.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => connect(moto).await?,
        };
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(request).await {
            Ok(response) => {
                *kept = Some(sender);
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| format!("reading moto's answer: {e}"))?
                    .to_bytes();
                return Ok(Response::from_parts(parts, Full::new(body)));
            }
            Err(mut error) => match error.take_message() {
                Some(unsent) => request = unsent,
                None => return Err(format!("moto: {}", error.error())),
            },
        }
    }
    Err("moto kept closing the connection".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(operation: &str, status: u16, at: Instant) -> StoreRequest {
        StoreRequest {
            operation: operation.to_owned(),
            status,
            answered: at,
        }
    }

    #[test]
    fn the_window_ends_with_the_last_answer() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let requests = [
            answered("GetItem", 200, ms(1)),
            answered("UpdateItem", 200, ms(2)),
            answered("UpdateItem", 200, ms(7)),
        ];
        let (count, window) = update_cost(ms(3), &requests).unwrap();
        assert_eq!((count, window), (3, Duration::from_millis(4)));
    }

    #[test]
    fn an_update_without_a_finish_after_the_send_is_an_error() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let before = [
            answered("GetItem", 200, ms(1)),
            answered("UpdateItem", 200, ms(2)),
        ];
        assert!(update_cost(ms(3), &before).is_err());
        assert!(update_cost(ms(3), &[]).is_err());
        let refused = [
            answered("GetItem", 400, ms(1)),
            answered("UpdateItem", 200, ms(5)),
        ];
        let error = update_cost(ms(3), &refused).unwrap_err().to_string();
        assert!(error.contains("400 to GetItem"), "{error}");
    }

    #[test]
    fn the_operation_is_the_end_of_the_target() {
        assert_eq!(
            operation_of(Some("DynamoDB_20120810.UpdateItem")),
            "UpdateItem"
        );
        assert_eq!(operation_of(Some("GetItem")), "GetItem");
        assert_eq!(operation_of(None), "(no X-Amz-Target)");
    }
}
