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
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
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
        let http = reqwest::Client::builder()
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

/// The SDK's HTTPS client: rustls on ring, the crypto reqwest already uses.
/// One per process ([`sdk_config`]): it keeps one TLS connector per set of
/// timeouts, built on the first request, so every SDK client shares it and
/// the trusted roots are parsed once.
pub fn http_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    SharedHttpClient::new(NoEagerConnector(client))
}

/// The SDK's client, without the connector it builds and throws away each
/// time an SDK client is made (`validate_base_client_config`, so that the
/// system's roots load at construction): a TLS connector parses every
/// trusted root, which with a CA bundle of 140 roots (`SSL_CERT_FILE`, or
/// Lambda's own) costs about a millisecond each time. The connector is
/// built once, on the first request.
#[derive(Debug)]
struct NoEagerConnector(SharedHttpClient);

impl HttpClient for NoEagerConnector {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
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
