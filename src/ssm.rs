//! Reading the bot token and the webhook secret from AWS Systems Manager
//! Parameter Store at cold start, in one GetParameters call: a SecureString
//! parameter is free, and keeps them out of the function's environment,
//! where anyone with read access to the function's configuration would see
//! them (and with the secret, could forge updates).

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use secrecy::SecretString;
use std::future::Future;
use std::time::Duration;

/// Why a parameter could not be read. Never holds the parameter's value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParameterError {
    #[error("parameter not found")]
    NotFound,
    #[error("access denied ({0}); the function's role needs ssm:GetParameters on it and kms:Decrypt on its key")]
    AccessDenied(String),
    #[error("parameter has no value")]
    Empty,
    #[error("could not read it: {0}")]
    Other(String),
}

/// Where secrets come from; a trait so that tests can stand in for AWS at
/// the SDK boundary (an access-denied answer cannot be produced by moto).
pub trait ParameterStore: Sync {
    /// The decrypted values of `names` (at most 10), in their order, read in
    /// one request: each is `Ok`, or [`ParameterError::NotFound`] /
    /// [`ParameterError::Empty`]. A failure of the request as a whole
    /// (access denied, throttling, the network) is the outer error.
    fn get_secure_strings(
        &self,
        names: &[&str],
    ) -> impl Future<Output = Result<Vec<Result<SecretString, ParameterError>>, ParameterError>> + Send;
}

/// Parameter Store's GetParameters, signed with the SDK's own SigV4 signer
/// and sent with reqwest. The one operation the bot uses does not warrant
/// `aws-sdk-ssm`: that crate alone took 68 of a first build's 311 CPU
/// seconds (`cargo build --timings`), ahead of everything else on the
/// critical path of a first `cargo bot chat`. Credentials, region and
/// endpoint come from the same `aws-config` as the DynamoDB store's.
#[derive(Clone)]
pub struct Ssm {
    http: Result<reqwest::Client, String>,
    credentials: Option<SharedCredentialsProvider>,
    region: Option<String>,
    endpoint: String,
}

impl std::fmt::Debug for Ssm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ssm")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Attempts per read: throttling, a 5xx or a failed connection is tried
/// again, as the SDK's standard retry mode does.
const ATTEMPTS: u32 = 3;
/// Each attempt's limit; init on Lambda has 10 s in all.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// The SDK's HTTPS client: rustls on ring, the crypto reqwest already uses.
/// One per process ([`sdk_config`]): it keeps one TLS connector per set of
/// timeouts, built on the first request, so Parameter Store and DynamoDB
/// share it and the trusted roots are parsed once.
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
/// client), loaded on first need and shared by Parameter Store and the
/// DynamoDB store. Loading makes no request.
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

impl Ssm {
    pub async fn from_env() -> Self {
        Self::from_sdk_config(&sdk_config().await)
    }

    /// Parameter Store with `config`'s credentials and region, at
    /// `AWS_ENDPOINT_URL_SSM`, the configuration's endpoint
    /// (`AWS_ENDPOINT_URL`), or the region's public one.
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        let region = config.region().map(|r| r.as_ref().to_owned());
        let endpoint = std::env::var("AWS_ENDPOINT_URL_SSM")
            .ok()
            .filter(|url| !url.is_empty())
            .or_else(|| config.endpoint_url().map(str::to_owned))
            .unwrap_or_else(|| public_endpoint(region.as_deref().unwrap_or("us-east-1")));
        // Built once per process, at cold start; a failure to build (no
        // TLS roots) shows as a failed read, with its reason.
        let http = reqwest::Client::builder()
            .connect_timeout(ATTEMPT_TIMEOUT)
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::error::chain(&e));
        Ssm {
            http,
            credentials: config.credentials_provider(),
            region,
            endpoint,
        }
    }

    /// One signed GetParameters request: its status and body.
    async fn send(&self, body: &[u8]) -> Result<(u16, bytes::Bytes), Attempt> {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let region = self
            .region
            .as_deref()
            .ok_or(Attempt::Final(ParameterError::Other(
                "no AWS region is configured (AWS_REGION, or the profile's region)".into(),
            )))?;
        let credentials = self
            .credentials
            .as_ref()
            .ok_or(Attempt::Final(ParameterError::Other(
                "no AWS credentials are configured".into(),
            )))?
            .provide_credentials()
            .await
            .map_err(|e| {
                use aws_credential_types::provider::error::CredentialsError;
                let why = match e {
                    // Its cause lists each provider of the chain, a line each.
                    CredentialsError::CredentialsNotLoaded(_) => {
                        "no AWS credentials found (environment, profile, web identity, container or instance role)".to_owned()
                    }
                    other => crate::error::chain(&other).replace('\n', " "),
                };
                Attempt::Final(ParameterError::Other(why))
            })?;
        let identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("ssm")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Attempt::Final(ParameterError::Other(e.to_string())))?
            .into();
        let url = format!("{}/", self.endpoint.trim_end_matches('/'));
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "AmazonSSM.GetParameters"),
        ];
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| Attempt::Final(ParameterError::Other(e.to_string())))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Attempt::Final(ParameterError::Other(e.to_string())))?
            .into_parts();
        let http = self
            .http
            .as_ref()
            .map_err(|why| Attempt::Final(ParameterError::Other(why.clone())))?;
        let mut request = http.post(&url).body(body.to_vec());
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            let e = e.without_url();
            let transient = e.is_timeout() || e.is_connect() || e.is_request();
            let error = ParameterError::Other(crate::error::chain(&e));
            if transient {
                Attempt::Again(error)
            } else {
                Attempt::Final(error)
            }
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            Attempt::Again(ParameterError::Other(crate::error::chain(&e.without_url())))
        })?;
        Ok((status, body))
    }
}

/// One attempt's failure: worth another, or not.
enum Attempt {
    Again(ParameterError),
    Final(ParameterError),
}

/// The public endpoint of SSM in `region`.
fn public_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://ssm.{region}.{suffix}")
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetParameters<'a> {
    names: &'a [&'a str],
    with_decryption: bool,
}

/// No `Debug`: it holds the values.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Found {
    #[serde(default)]
    parameters: Vec<Parameter>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Parameter {
    name: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    version: i64,
}

/// The awsJson 1.1 protocol's error body.
#[derive(serde::Deserialize)]
struct Refusal {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(alias = "Message", default)]
    message: String,
}

/// `AccessDeniedException` from `com.amazonaws.ssm#AccessDeniedException`
/// or `AccessDeniedException:http://...`, as the protocol allows.
fn error_code(kind: &str) -> &str {
    let kind = kind.rsplit('#').next().unwrap_or(kind);
    kind.split(':').next().unwrap_or(kind)
}

impl ParameterStore for Ssm {
    async fn get_secure_strings(
        &self,
        names: &[&str],
    ) -> Result<Vec<Result<SecretString, ParameterError>>, ParameterError> {
        let body = serde_json::to_vec(&GetParameters {
            names,
            with_decryption: true,
        })
        .map_err(|e| ParameterError::Other(e.to_string()))?;
        let mut attempt = 0;
        let (status, answer) = loop {
            attempt += 1;
            let failure = match self.send(&body).await {
                Ok((status, answer)) if status < 300 => break (status, answer),
                Ok((status, answer)) => {
                    let refusal: Refusal = serde_json::from_slice(&answer).unwrap_or(Refusal {
                        kind: String::new(),
                        message: String::new(),
                    });
                    let code = error_code(&refusal.kind).to_owned();
                    if code.contains("AccessDenied") {
                        return Err(ParameterError::AccessDenied(code));
                    }
                    let error = ParameterError::Other(
                        format!("{status} {code} {}", refusal.message)
                            .trim_end()
                            .to_owned(),
                    );
                    if status >= 500 || status == 429 || code.contains("Throttl") {
                        Attempt::Again(error)
                    } else {
                        Attempt::Final(error)
                    }
                }
                Err(failure) => failure,
            };
            match failure {
                Attempt::Again(_) if attempt < ATTEMPTS => {
                    // Full jitter, as the SDK's standard mode, but short:
                    // this runs in a cold start.
                    let cap = 100u64 << attempt;
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..cap))).await;
                }
                Attempt::Again(error) | Attempt::Final(error) => return Err(error),
            }
        };
        let found: Found = serde_json::from_slice(&answer).map_err(|e| {
            ParameterError::Other(format!(
                "{status}: an answer that is not GetParameters's: {e}"
            ))
        })?;
        let found = found.parameters;
        Ok(names
            .iter()
            .map(|name| {
                // Names not found come back in InvalidParameters, not here.
                // A name asked for at a version (`/bot/token:3`) comes back
                // as the bare name.
                let bare = without_version(name);
                let version = name
                    .get(bare.len() + 1..)
                    .and_then(|v| v.parse::<i64>().ok());
                // Unversioned means the latest.
                let answer = found
                    .iter()
                    .filter(|p| p.name == bare)
                    .filter(|p| version.is_none_or(|v| p.version == v))
                    .max_by_key(|p| p.version);
                match answer {
                    None => Err(ParameterError::NotFound),
                    Some(parameter) => parameter
                        .value
                        .as_deref()
                        .filter(|v| !v.is_empty())
                        .map(SecretString::from)
                        .ok_or(ParameterError::Empty),
                }
            })
            .collect())
    }
}

/// `/bot/token` for `/bot/token:3`: a parameter name has no `:`, so one
/// ending in `:<digits>` names a version.
pub fn without_version(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((bare, version))
            if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) =>
        {
            bare
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_selector_is_not_part_of_the_name() {
        assert_eq!(without_version("/bot/token:3"), "/bot/token");
        assert_eq!(without_version("/bot/token"), "/bot/token");
        assert_eq!(without_version("/bot/token:"), "/bot/token:");
        assert_eq!(without_version("/bot/token:latest"), "/bot/token:latest");
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
            public_endpoint("eu-west-1"),
            "https://ssm.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            public_endpoint("cn-north-1"),
            "https://ssm.cn-north-1.amazonaws.com.cn"
        );
    }
}
