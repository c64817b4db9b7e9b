//! What the doctor needs to talk to the bot's services as the function
//! does: the configuration (the token from the stack's parameter) and the
//! webhook secret stored with the stack, for the authenticated probe.

use telegram_lambda_bot::config::{Config, ConfigError, WebhookSecret};
use telegram_lambda_bot::runtime::ssm::Ssm;

use super::aws::{aws, AwsError};

/// Why the webhook secret stored with the stack could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    // The cause is in the message, not a `source`, so it is shown once.
    #[error("WebhookSecretParameter {name}: {error}")]
    Read { name: String, error: AwsError },
    #[error("WebhookSecretParameter {name} does not hold a webhook secret")]
    Invalid {
        name: String,
        #[source]
        source: ConfigError,
    },
}

pub(super) async fn read_secret(
    name: &str,
    region: Option<&str>,
) -> Result<WebhookSecret, SecretError> {
    let value = aws(
        "ssm get-parameter",
        &[
            "ssm",
            "get-parameter",
            "--name",
            name,
            "--with-decryption",
            "--query",
            "Parameter.Value",
            "--output",
            "text",
        ],
        region,
    )
    .await
    .map_err(|error| SecretError::Read {
        name: name.to_owned(),
        error,
    })?;
    let value = String::from_utf8_lossy(&value);
    WebhookSecret::parse(value.trim()).map_err(|source| SecretError::Invalid {
        name: name.to_owned(),
        source,
    })
}

/// The configuration as the function reads it. The token comes from the
/// stack's parameter when the stack names one, even with TELEGRAM_BOT_TOKEN
/// set in this shell: that may be another bot's (a test bot's), and the
/// doctor checks the deployed one. The shell's token is used when there is
/// no stack, or when its parameter cannot be read (this profile may not
/// read it); the note returned says so. The parameter's name is given
/// through the lookup rather than by changing this process's environment,
/// which other threads read.
pub(super) async fn load_config(
    token_parameter: Option<String>,
    region: Option<String>,
) -> (Result<Config, ConfigError>, Option<String>) {
    let read = |region: Option<String>| async move {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(telegram_lambda_bot::runtime::ssm::http_client());
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region));
        }
        Ssm::from_sdk_config(&loader.load().await)
    };
    let Some(parameter) = token_parameter else {
        return (
            Config::load_with(|name| std::env::var(name).ok(), || read(region)).await,
            None,
        );
    };
    let from_stack = Config::load_with(
        |name| match name {
            "TELEGRAM_BOT_TOKEN" => None,
            "TELEGRAM_BOT_TOKEN_PARAMETER" => Some(parameter.clone()),
            _ => std::env::var(name).ok(),
        },
        || read(region.clone()),
    )
    .await;
    let shell_has_token = std::env::var("TELEGRAM_BOT_TOKEN").is_ok_and(|t| !t.is_empty());
    match from_stack {
        Err(error) if shell_has_token => {
            let note = format!(
                "the stack's token could not be read ({}); checked with TELEGRAM_BOT_TOKEN from this shell instead, which may be another bot's",
                telegram_lambda_bot::runtime::error::chain(&error)
            );
            let from_shell = Config::load_with(
                |name| match name {
                    "TELEGRAM_BOT_TOKEN_PARAMETER" => None,
                    _ => std::env::var(name).ok(),
                },
                || read(region),
            )
            .await;
            (from_shell, Some(note))
        }
        loaded => (loaded, None),
    }
}
