//! Test tools shared by the workspace's test binaries (the function's and
//! the command-line tool's): moto's server for AWS APIs on loopback, one
//! log-capture type, waiting for a condition, reading a command's output,
//! and a fake outside web service ([`FakeService`]).
//! Test code: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod find_moto;
pub mod service;
pub mod sqs;
use find_moto::moto_binary;
pub use find_moto::MOTO_MISSING;
pub use service::FakeService;
pub use sqs::{Batch, FifoQueue, Trigger};

use serde_json::Value;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::subscriber::DefaultGuard;

/// Waits until `condition` holds, checking every 10 ms; fails the test
/// after `seconds`.
pub async fn until(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A command's standard output, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's standard error, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `text` of each sendMessage, in order.
pub fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

/// Log lines written while a test ran, as the JSON the function writes.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures this thread's logs at `filter` (e.g. `debug`) as JSON lines
    /// until the guard is dropped.
    pub fn capture(filter: &str) -> (Logs, DefaultGuard) {
        Self::capture_with(tracing_subscriber::EnvFilter::new(filter))
    }

    /// As [`Logs::capture`], with a filter built elsewhere (such as the
    /// function's own, which caps noisy libraries).
    pub fn capture_with<F>(filter: F) -> (Logs, DefaultGuard)
    where
        F: tracing_subscriber::layer::Filter<tracing_subscriber::Registry> + Send + Sync + 'static,
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let logs = Logs::default();
        let writer = logs.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .with_filter(filter);
        let subscriber = tracing_subscriber::registry().with(layer);
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The one line logged per update (or per refused request).
    pub fn outcome_lines(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("outcome").is_some())
            .collect()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// moto's server on a free loopback port, stopped when dropped, behind a
/// proxy that passes it one request at a time.
///
/// moto serves requests on several threads and does not lock its DynamoDB
/// tables, so two conditional writes at once can both pass their check;
/// DynamoDB makes each one atomic. Taking moto's requests one at a time
/// gives tests that race two writers the service's guarantee. The proxy
/// also checks what DynamoDB checks and moto does not (an expression over
/// 4 KB is refused), and can lose an answer after moto applied the request,
/// as a dropped connection does.
pub struct Moto {
    pub endpoint: String,
    /// moto itself, without the proxy: for what needs no atomic writes
    /// (SQS) and must not wait in the proxy's line (benchmarks).
    pub direct: String,
    child: Child,
    proxy: tokio::task::JoinHandle<()>,
    lost: Lost,
}

/// What the proxy does to the next request of a DynamoDB operation
/// (`UpdateItem`), instead of passing moto's answer back.
#[derive(Debug, Clone)]
enum ProxyFault {
    /// moto applies the request; the caller gets a 500.
    LoseAnswer,
    /// The request does not reach moto; the caller gets this answer.
    Refuse { status: u16, body: String },
}

type Lost = Arc<Mutex<Vec<(String, ProxyFault)>>>;

/// DynamoDB's limit on each expression of a request (UpdateExpression,
/// ConditionExpression, ...): 4 KB.
const MAX_EXPRESSION_BYTES: usize = 4096;

impl Drop for Moto {
    fn drop(&mut self) {
        self.proxy.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto. A test that needs it fails without it, with one line
    /// saying how to get it: it never passes by skipping.
    pub async fn start() -> Moto {
        let binary = match moto_binary() {
            Ok(binary) => binary,
            Err(missing) => panic!("{missing}"),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(tokio::time::Instant::now() < deadline, "moto did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let lost = Lost::default();
        let proxy = tokio::spawn(one_at_a_time(
            listener,
            format!("http://127.0.0.1:{port}"),
            lost.clone(),
        ));
        Moto {
            endpoint,
            direct: format!("http://127.0.0.1:{port}"),
            child,
            proxy,
            lost,
        }
    }

    /// The next DynamoDB `operation` (such as `UpdateItem`) is applied by
    /// moto, but its caller gets a 500 instead of moto's answer, as when
    /// the connection drops after the service did the work.
    pub fn lose_next_answer(&self, operation: &str) {
        self.lost
            .lock()
            .unwrap()
            .push((operation.to_owned(), ProxyFault::LoseAnswer));
    }

    /// The next `operation` (DynamoDB's, SQS's) does not reach moto: its caller gets
    /// `status` and `body` (a JSON error, as DynamoDB words it), for what
    /// moto does not check itself, such as an update that takes an item
    /// past 400 KB inside a map.
    pub fn refuse_next(&self, operation: &str, status: u16, body: &str) {
        self.lost.lock().unwrap().push((
            operation.to_owned(),
            ProxyFault::Refuse {
                status,
                body: body.to_owned(),
            },
        ));
    }

    #[cfg(feature = "aws")]
    /// An SDK configuration that talks to this moto only, with fake
    /// credentials (no profile files, no instance metadata).
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config(&self.endpoint)
    }

    /// Stores a SecureString parameter, as `aws ssm put-parameter
    /// --overwrite` does: a new one, or the next version of one. moto reads
    /// the request unsigned; the bot's own client is what gets tested.
    pub async fn put_secure_string(&self, name: &str, value: &str) {
        let answer = reqwest::Client::new()
            .post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "AmazonSSM.PutParameter")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(
                serde_json::json!({
                    "Name": name,
                    "Value": value,
                    "Type": "SecureString",
                    "Overwrite": true,
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "PutParameter: {answer:?}");
    }

    #[cfg(feature = "aws")]
    /// Creates the bot's table as template.yaml declares it: partition key
    /// `pk`, on-demand, TTL on `expires_at`.
    pub async fn create_table(&self, name: &str) {
        use aws_sdk_dynamodb::types::TimeToLiveSpecification;
        self.create_table_keyed(name, "pk").await;
        let client = aws_sdk_dynamodb::Client::new(&self.sdk_config());
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    #[cfg(feature = "aws")]
    /// Creates an on-demand table whose partition key (a string) is `key`,
    /// without TTL: the bot's own with `pk`, or one made by hand.
    pub async fn create_table_keyed(&self, name: &str, key: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        aws_sdk_dynamodb::Client::new(&self.sdk_config())
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    /// The environment a process needs to reach this moto and nothing else.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
        ]
    }
}

/// An SDK configuration that talks to `endpoint` only, with fake credentials.
#[cfg(feature = "aws")]
pub fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .http_client(http_client)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "tests",
        )))
        .build()
}

/// DynamoDB's refusal of a request with an expression over 4 KB, as the
/// service words it; `None` for a request within the limits.
fn over_expression_limit(body: &[u8]) -> Option<String> {
    let request: Value = serde_json::from_slice(body).ok()?;
    let (name, size) = [
        "UpdateExpression",
        "ConditionExpression",
        "KeyConditionExpression",
        "FilterExpression",
        "ProjectionExpression",
    ]
    .into_iter()
    .filter_map(|name| Some((name, request.get(name)?.as_str()?.len())))
    .find(|(_, size)| *size > MAX_EXPRESSION_BYTES)?;
    let kind = name.trim_end_matches("Expression");
    Some(serde_json::json!({
        "__type": "com.amazon.coral.validate#ValidationException",
        "message": format!("Invalid {kind}Expression: Expression size has exceeded the maximum allowed size; expression size: {size}")
    }).to_string())
}

/// Serves `listener` by passing each request on to `upstream`, one at a
/// time.
async fn one_at_a_time(listener: tokio::net::TcpListener, upstream: String, lost: Lost) {
    use http_body_util::{BodyExt, Full};
    let client = reqwest::Client::new();
    let turn = Arc::new(tokio::sync::Mutex::new(()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (client, turn, upstream) = (client.clone(), turn.clone(), upstream.clone());
        let lost = lost.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let (client, turn, upstream) = (client.clone(), turn.clone(), upstream.clone());
                    let lost = lost.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let target = parts
                            .headers
                            .get("x-amz-target")
                            .and_then(|t| t.to_str().ok())
                            .unwrap_or_default();
                        let is_dynamodb = target.starts_with("DynamoDB_20120810.");
                        // `UpdateItem` of DynamoDB, `SendMessage` of SQS.
                        let operation = target.rsplit_once('.').map(|(_, o)| o.to_owned());
                        let dynamodb_error = |status: u16, body: String| {
                            let mut response =
                                hyper::Response::new(Full::new(bytes_of(body.into_bytes())));
                            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            response.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static(
                                    "application/x-amz-json-1.0",
                                ),
                            );
                            response
                        };
                        if is_dynamodb {
                            if let Some(refusal) = over_expression_limit(&body) {
                                return Ok(dynamodb_error(400, refusal));
                            }
                        }
                        let fault = operation.as_ref().and_then(|operation| {
                            let mut lost = lost.lock().unwrap();
                            let found = lost.iter().position(|(o, _)| o == operation);
                            found.map(|index| lost.remove(index).1)
                        });
                        if let Some(ProxyFault::Refuse { status, body }) = &fault {
                            return Ok(dynamodb_error(*status, body.clone()));
                        }
                        let lose = matches!(fault, Some(ProxyFault::LoseAnswer));
                        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                        let mut forward =
                            client.request(parts.method.clone(), format!("{upstream}{path}"));
                        for (name, value) in &parts.headers {
                            if name != "host" && name != "content-length" {
                                forward = forward.header(name, value);
                            }
                        }
                        let _turn = turn.lock().await;
                        let answer = forward.body(body).send().await;
                        let mut response = hyper::Response::new(Full::new(bytes_of(Vec::new())));
                        match answer {
                            Ok(answer) => {
                                *response.status_mut() = answer.status();
                                for (name, value) in answer.headers() {
                                    if name != "content-length"
                                        && name != "connection"
                                        && name != "transfer-encoding"
                                    {
                                        response.headers_mut().insert(name.clone(), value.clone());
                                    }
                                }
                                let bytes = answer.bytes().await.unwrap_or_default();
                                *response.body_mut() = Full::new(bytes);
                            }
                            Err(_) => *response.status_mut() = hyper::StatusCode::BAD_GATEWAY,
                        }
                        if lose {
                            return Ok(dynamodb_error(500, r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#.to_owned()));
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn bytes_of(bytes: Vec<u8>) -> hyper::body::Bytes {
    hyper::body::Bytes::from(bytes)
}
