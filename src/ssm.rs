//! Reading the bot token and the webhook secret from AWS Systems Manager
//! Parameter Store at cold start, in one GetParameters call: a SecureString
//! parameter is free, and keeps them out of the function's environment,
//! where anyone with read access to the function's configuration would see
//! them (and with the secret, could forge updates).

use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use secrecy::SecretString;
use std::future::Future;

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

/// Parameter Store through the AWS SDK, configured the usual way
/// (environment, profile, or the Lambda role; `AWS_ENDPOINT_URL` for tests).
#[derive(Debug, Clone)]
pub struct Ssm {
    client: aws_sdk_ssm::Client,
}

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

    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Ssm {
            client: aws_sdk_ssm::Client::new(config),
        }
    }
}

impl ParameterStore for Ssm {
    async fn get_secure_strings(
        &self,
        names: &[&str],
    ) -> Result<Vec<Result<SecretString, ParameterError>>, ParameterError> {
        use aws_sdk_ssm::error::ProvideErrorMetadata;
        let output = self
            .client
            .get_parameters()
            .set_names(Some(names.iter().map(|n| n.to_string()).collect()))
            .with_decryption(true)
            .send()
            .await
            .map_err(|error| {
                let code = error.code().unwrap_or_default().to_owned();
                if code.contains("AccessDenied") {
                    return ParameterError::AccessDenied(code);
                }
                ParameterError::Other(crate::error::chain(&error))
            })?;
        let found = output.parameters.unwrap_or_default();
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
                    .filter(|p| p.name.as_deref() == Some(bare))
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
}
