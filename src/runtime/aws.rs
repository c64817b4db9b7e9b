//! AWS's JSON protocols (awsJson 1.0 and 1.1) for the few operations the
//! bot calls: Parameter Store's GetParameters at cold start, DynamoDB's
//! GetItem, UpdateItem, PutItem and DeleteItem for the chats' records, and
//! SQS's SendMessage for deferred updates. Each request is
//! signed with the SDK's own SigV4 signer and sent with reqwest: a whole
//! SDK crate per service (`aws-sdk-ssm` alone took 68 of a first build's
//! 311 CPU seconds, `cargo build --timings`) does not pay for one
//! operation, and `aws-sdk-dynamodb` took 37.5 of the tool's 346 (the
//! longest crate of a first `cargo bot chat`) for four. Credentials and
//! region come from `aws-config` ([`sdk_config`]).

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use std::time::Duration;

/// A service spoken to in one of AWS's JSON protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The signing name and endpoint prefix: `ssm`, `sqs`.
    pub name: &'static str,
    /// The variable that points the service elsewhere (moto, a VPC
    /// endpoint): `AWS_ENDPOINT_URL_SSM`.
    pub endpoint_variable: &'static str,
    /// `application/x-amz-json-1.1` or `-1.0`.
    pub content_type: &'static str,
    /// What `X-Amz-Target` starts with: `AmazonSSM`, `AmazonSQS`.
    pub target_prefix: &'static str,
}

pub const SSM: Service = Service {
    name: "ssm",
    endpoint_variable: "AWS_ENDPOINT_URL_SSM",
    content_type: "application/x-amz-json-1.1",
    target_prefix: "AmazonSSM",
};

pub const DYNAMODB: Service = Service {
    name: "dynamodb",
    endpoint_variable: "AWS_ENDPOINT_URL_DYNAMODB",
    content_type: "application/x-amz-json-1.0",
    target_prefix: "DynamoDB_20120810",
};

pub const SQS: Service = Service {
    name: "sqs",
    endpoint_variable: "AWS_ENDPOINT_URL_SQS",
    content_type: "application/x-amz-json-1.0",
    target_prefix: "AmazonSQS",
};

/// Why a call failed. Holds AWS's error code and message, never a request
/// body (which may hold a secret's value or a user's message).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// The service answered with an error: `code` as
    /// `AccessDeniedException`, without the protocol's prefixes.
    #[error("{status} {code} {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer (the network, a timeout), or no way to ask (no region, no
    /// credentials).
    #[error("{0}")]
    Failed(String),
}

impl CallError {
    /// AWS's error code, when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Refused { code, .. } => Some(code),
            CallError::Failed(_) => None,
        }
    }
}

/// Attempts per call: throttling, a 5xx or a failed connection is tried
/// again, as the SDK's standard retry mode does.
const ATTEMPTS: u32 = 3;
/// Each attempt's limit; init on Lambda has 10 s in all.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// One service's endpoint, signed with the process's credentials.
#[derive(Clone)]
pub struct AwsJson {
    service: Service,
    http: Result<reqwest::Client, String>,
    credentials: Option<SharedCredentialsProvider>,
    region: Option<String>,
    endpoint: String,
}

impl std::fmt::Debug for AwsJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsJson")
            .field("service", &self.service.name)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl AwsJson {
    /// `service` with `config`'s credentials and region, at the service's
    /// own endpoint variable, the configuration's endpoint
    /// (`AWS_ENDPOINT_URL`), or the region's public one.
    pub fn new(config: &aws_config::SdkConfig, service: Service) -> Self {
        let region = config.region().map(|r| r.as_ref().to_owned());
        let endpoint = std::env::var(service.endpoint_variable)
            .ok()
            .filter(|url| !url.is_empty())
            .or_else(|| config.endpoint_url().map(str::to_owned))
            .unwrap_or_else(|| {
                public_endpoint(service.name, region.as_deref().unwrap_or("us-east-1"))
            });
        // Built once per process, at cold start; a failure to build (no
        // TLS roots) shows as a failed call, with its reason.
        let http = https_builder()
            .connect_timeout(ATTEMPT_TIMEOUT)
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::error::chain(&e));
        AwsJson {
            service,
            http,
            credentials: config.credentials_provider(),
            region,
            endpoint,
        }
    }

    /// Calls `operation` with `body`, retrying what the SDK's standard mode
    /// retries; the answer's body on success.
    pub async fn call(&self, operation: &str, body: &[u8]) -> Result<bytes::Bytes, CallError> {
        self.call_keeping(operation, body)
            .await
            .map_err(|(error, _)| error)
    }

    /// [`AwsJson::call`], keeping the body of a refusal too: DynamoDB's
    /// failed condition carries the item as it is now. That body is the
    /// caller's to read, never to log.
    pub async fn call_keeping(
        &self,
        operation: &str,
        body: &[u8],
    ) -> Result<bytes::Bytes, (CallError, bytes::Bytes)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (failure, answer) = match self.send(operation, body).await {
                Ok((status, answer)) if status < 300 => return Ok(answer),
                Ok((status, answer)) => {
                    let refusal: Refusal = serde_json::from_slice(&answer).unwrap_or_default();
                    let code = error_code(&refusal.kind).to_owned();
                    let again = status >= 500 || status == 429 || is_throttling(&code);
                    let error = CallError::Refused {
                        status,
                        code,
                        message: refusal.message,
                    };
                    match again {
                        true => (Attempt::Again(error), answer),
                        false => (Attempt::Final(error), answer),
                    }
                }
                Err(failure) => (failure, bytes::Bytes::new()),
            };
            match failure {
                Attempt::Again(_) if attempt < ATTEMPTS => {
                    // Full jitter, as the SDK's standard mode, but short:
                    // this runs in a cold start or before a webhook's answer.
                    let cap = 100u64 << attempt;
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..cap))).await;
                }
                Attempt::Again(error) | Attempt::Final(error) => return Err((error, answer)),
            }
        }
    }

    /// One signed request: its status and body.
    async fn send(&self, operation: &str, body: &[u8]) -> Result<(u16, bytes::Bytes), Attempt> {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let failed = |why: String| Attempt::Final(CallError::Failed(why));
        let region = self.region.as_deref().ok_or_else(|| {
            failed("no AWS region is configured (AWS_REGION, or the profile's region)".into())
        })?;
        let credentials = self
            .credentials
            .as_ref()
            .ok_or_else(|| failed("no AWS credentials are configured".into()))?
            .provide_credentials()
            .await
            .map_err(|e| {
                use aws_credential_types::provider::error::CredentialsError;
                failed(match e {
                    // Its cause lists each provider of the chain, a line each.
                    CredentialsError::CredentialsNotLoaded(_) => {
                        "no AWS credentials found (environment, profile, web identity, container or instance role)".to_owned()
                    }
                    other => crate::error::chain(&other).replace('\n', " "),
                })
            })?;
        let identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(self.service.name)
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(e.to_string()))?
            .into();
        let url = format!("{}/", self.endpoint.trim_end_matches('/'));
        let target = format!("{}.{operation}", self.service.target_prefix);
        let headers = [
            ("content-type", self.service.content_type),
            ("x-amz-target", target.as_str()),
        ];
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| failed(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed(e.to_string()))?
            .into_parts();
        let http = self.http.as_ref().map_err(|why| failed(why.clone()))?;
        let mut request = http.post(&url).body(body.to_vec());
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            let e = e.without_url();
            let transient = e.is_timeout() || e.is_connect() || e.is_request();
            let error = CallError::Failed(crate::error::chain(&e));
            match transient {
                true => Attempt::Again(error),
                false => Attempt::Final(error),
            }
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            Attempt::Again(CallError::Failed(crate::error::chain(&e.without_url())))
        })?;
        Ok((status, body))
    }
}

/// The error codes the SDK's standard retry mode treats as throttling,
/// whatever the status (DynamoDB answers 400 for its own).
fn is_throttling(code: &str) -> bool {
    code.contains("Throttl")
        || matches!(
            code,
            "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "TransactionInProgressException"
                | "LimitExceededException"
                | "PriorRequestNotComplete"
                | "SlowDown"
        )
}

/// One attempt's failure: worth another, or not.
enum Attempt {
    Again(CallError),
    Final(CallError),
}

/// The public endpoint of `service` in `region`.
fn public_endpoint(service: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{service}.{region}.{suffix}")
}

/// The JSON protocols' error body.
#[derive(serde::Deserialize, Default)]
struct Refusal {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(alias = "Message", default)]
    message: String,
}

/// `AccessDeniedException` from `com.amazonaws.ssm#AccessDeniedException`
/// or `AccessDeniedException:http://...`, as the protocols allow.
fn error_code(kind: &str) -> &str {
    let kind = kind.rsplit('#').next().unwrap_or(kind);
    kind.split(':').next().unwrap_or(kind)
}

/// reqwest with the roots `SSL_CERT_FILE` adds (a proxy's, a local
/// endpoint's), as the Bot API's client has them; the configuration
/// checked the file at start-up ([`crate::config`]). Unset in Lambda.
fn https_builder() -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder();
    let bundle = std::env::var_os("SSL_CERT_FILE").and_then(|path| std::fs::read(path).ok());
    if let Some(Ok(certificates)) = bundle.map(|pem| reqwest::Certificate::from_pem_bundle(&pem)) {
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
}

/// aws-config's HTTPS client, for the credential providers that ask over
/// HTTP (web identity, containers, instance metadata, SSO): reqwest, the
/// process's one TLS stack. The SDK's own client (aws-smithy-http-client)
/// was 11.5 CPU seconds of a first build for those few requests. One per
/// process ([`sdk_config`]); its reqwest client is built on the first
/// request, so that the trusted roots are parsed once and only if needed.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestClient::default())
}

/// What aws-config calls a client: a maker of connectors, one per set of
/// timeouts, all sharing one reqwest client.
#[derive(Debug, Default)]
struct ReqwestClient(std::sync::Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>);

impl HttpClient for ReqwestClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ReqwestConnector {
            client: self.0.clone(),
            connect_timeout: settings.connect_timeout(),
            read_timeout: settings.read_timeout(),
        })
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("reqwest", None))
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    client: std::sync::Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self
            .client
            .get_or_init(|| {
                https_builder()
                    // aws-config's own default; each request has its own
                    // overall limit below.
                    .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_millis(3100)))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| crate::error::chain(&e))
            })
            .clone();
        let timeout = match (self.connect_timeout, self.read_timeout) {
            (Some(connect), Some(read)) => Some(connect + read),
            (one, other) => one.or(other),
        };
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|why| ConnectorError::other(why.into(), None))?;
            let method = reqwest::Method::from_bytes(request.method().as_bytes())
                .map_err(|e| ConnectorError::user(e.into()))?;
            let mut builder = client.request(method, request.uri());
            for (name, value) in request.headers() {
                builder = builder.header(name, value);
            }
            if let Some(timeout) = timeout {
                builder = builder.timeout(timeout);
            }
            // The credential providers send small bodies held in memory.
            let body = request
                .body()
                .bytes()
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            let response = builder.body(body).send().await.map_err(|e| {
                let e = e.without_url();
                match e.is_timeout() {
                    true => ConnectorError::timeout(e.into()),
                    false => ConnectorError::io(e.into()),
                }
            })?;
            let status = StatusCode::try_from(response.status().as_u16())
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let headers = response.headers().clone();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| ConnectorError::io(e.without_url().into()))?;
            let mut answer = HttpResponse::new(status, SdkBody::from(bytes));
            for (name, value) in &headers {
                if let Ok(value) = value.to_str() {
                    let _ = answer
                        .headers_mut()
                        .try_append(name.as_str().to_owned(), value.to_owned());
                }
            }
            Ok(answer)
        })
    }
}

/// The process's AWS configuration (credentials, region, the one HTTPS
/// client), loaded on first need and shared by every AWS call. Loading
/// makes no request.
pub async fn sdk_config() -> aws_config::SdkConfig {
    static SDK: tokio::sync::OnceCell<aws_config::SdkConfig> = tokio::sync::OnceCell::const_new();
    SDK.get_or_init(|| async {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client())
            .load()
            .await
    })
    .await
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_credential_providers_client_sends_the_request_and_reads_the_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut buffer = [0u8; 4096];
            while !String::from_utf8_lossy(&received).ends_with("token=x") {
                let n = stream.read(&mut buffer).await.unwrap();
                assert!(n > 0, "{}", String::from_utf8_lossy(&received));
                received.extend_from_slice(&buffer[..n]);
            }
            let answer = "HTTP/1.1 201 Created\r\nx-amzn-requestid: r-1\r\ncontent-length: 13\r\n\r\n{\"Token\":\"t\"}";
            stream.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&received).into_owned()
        });
        let connector = ReqwestConnector {
            client: Default::default(),
            connect_timeout: Some(Duration::from_secs(2)),
            read_timeout: Some(Duration::from_secs(2)),
        };
        let mut request = HttpRequest::new(SdkBody::from("token=x"));
        request.set_method("PUT").unwrap();
        request
            .set_uri(format!("http://127.0.0.1:{port}/latest/api/token"))
            .unwrap();
        request
            .headers_mut()
            .insert("x-aws-ec2-metadata-token-ttl-seconds", "21600");
        let answer = connector.call(request).await.unwrap();
        assert_eq!(answer.status().as_u16(), 201);
        assert_eq!(answer.headers().get("x-amzn-requestid"), Some("r-1"));
        assert_eq!(answer.body().bytes(), Some(&b"{\"Token\":\"t\"}"[..]));
        let received = server.await.unwrap().to_lowercase();
        assert!(
            received.starts_with("put /latest/api/token http/1.1"),
            "{received}"
        );
        assert!(
            received.contains("x-aws-ec2-metadata-token-ttl-seconds: 21600"),
            "{received}"
        );
    }

    #[test]
    fn an_error_code_is_read_in_each_form_the_protocol_allows() {
        assert_eq!(error_code("AccessDeniedException"), "AccessDeniedException");
        assert_eq!(
            error_code("com.amazonaws.ssm#ThrottlingException"),
            "ThrottlingException"
        );
        assert_eq!(
            error_code("ParameterNotFound:http://internal.amazon.com/coral/com.amazonaws.ssm/"),
            "ParameterNotFound"
        );
    }

    #[test]
    fn the_public_endpoint_follows_the_partition() {
        assert_eq!(
            public_endpoint("ssm", "eu-west-1"),
            "https://ssm.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            public_endpoint("sqs", "cn-north-1"),
            "https://sqs.cn-north-1.amazonaws.com.cn"
        );
    }
}
