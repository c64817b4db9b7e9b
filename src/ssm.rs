//! Reading the bot token from AWS Systems Manager Parameter Store at cold
//! start: a SecureString parameter is free, and keeps the token out of the
//! function's environment, where anyone with read access to the function's
//! configuration would see it.

use secrecy::SecretString;
use std::future::Future;

/// Why a parameter could not be read. Never holds the parameter's value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParameterError {
    #[error("parameter not found")]
    NotFound,
    #[error("access denied ({0}); the function's role needs ssm:GetParameter on it and kms:Decrypt on its key")]
    AccessDenied(String),
    #[error("parameter has no value")]
    Empty,
    #[error("could not read it: {0}")]
    Other(String),
}

/// Where secrets come from; a trait so that tests can stand in for AWS at
/// the SDK boundary (an access-denied answer cannot be produced by moto).
pub trait ParameterStore {
    fn get_secure_string(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<SecretString, ParameterError>> + Send;
}

/// Parameter Store through the AWS SDK, configured the usual way
/// (environment, profile, or the Lambda role; `AWS_ENDPOINT_URL` for tests).
#[derive(Debug, Clone)]
pub struct Ssm {
    client: aws_sdk_ssm::Client,
}

/// The SDK's HTTPS client: rustls on ring, the crypto reqwest already uses.
pub fn http_client() -> aws_sdk_ssm::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

impl Ssm {
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client())
            .load()
            .await;
        Self::from_sdk_config(&config)
    }

    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Ssm {
            client: aws_sdk_ssm::Client::new(config),
        }
    }
}

impl ParameterStore for Ssm {
    async fn get_secure_string(&self, name: &str) -> Result<SecretString, ParameterError> {
        use aws_sdk_ssm::error::ProvideErrorMetadata;
        let output = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|error| {
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found())
                {
                    return ParameterError::NotFound;
                }
                let code = error.code().unwrap_or_default().to_owned();
                if code.contains("AccessDenied") || code.contains("KMS.AccessDenied") {
                    return ParameterError::AccessDenied(code);
                }
                ParameterError::Other(crate::error::chain(&error))
            })?;
        output
            .parameter
            .and_then(|p| p.value)
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
            .ok_or(ParameterError::Empty)
    }
}
