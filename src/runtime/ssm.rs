//! Reading the bot token and the webhook secret from AWS Systems Manager
//! Parameter Store at cold start, in one GetParameters call: a SecureString
//! parameter is free, and keeps them out of the function's environment,
//! where anyone with read access to the function's configuration would see
//! them (and with the secret, could forge updates).

use crate::aws::{AwsJson, CallError, SSM};
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

/// Parameter Store's GetParameters ([`crate::aws`]: signed with the SDK's
/// SigV4 signer and sent with reqwest, without `aws-sdk-ssm`).
#[derive(Debug, Clone)]
pub struct Ssm(AwsJson);

/// The process's AWS configuration; see [`crate::aws::sdk_config`].
pub use crate::aws::{http_client, sdk_config};

impl Ssm {
    pub async fn from_env() -> Self {
        Self::from_sdk_config(&sdk_config().await)
    }

    /// Parameter Store with `config`'s credentials and region, at
    /// `AWS_ENDPOINT_URL_SSM`, the configuration's endpoint
    /// (`AWS_ENDPOINT_URL`), or the region's public one.
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Ssm(AwsJson::new(config, SSM))
    }
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
        let answer = self
            .0
            .call("GetParameters", &body)
            .await
            .map_err(|e| match e {
                CallError::Refused { code, .. } if code.contains("AccessDenied") => {
                    ParameterError::AccessDenied(code)
                }
                other => ParameterError::Other(other.to_string().trim_end().to_owned()),
            })?;
        let found: Found = serde_json::from_slice(&answer).map_err(|e| {
            ParameterError::Other(format!("an answer that is not GetParameters's: {e}"))
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
}
