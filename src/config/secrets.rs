//! What the configuration holds that must never be shown: the token, the
//! webhook's secret, the bot's own secrets and the assistant's key. Each
//! type's `Debug` names it and shows no value.

use super::{ConfigError, BOT_SECRETS_PARAMETER};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// The bot's own secrets and settings (API keys, a service's URL), by the
/// names its handler declares ([`crate::handler::Handler::SECRETS`]). Its
/// `Debug` shows the names, never a value.
#[derive(Clone, Default)]
pub struct Secrets(std::collections::BTreeMap<String, SecretString>);

impl Secrets {
    /// The value of `name`, when it was declared and found.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|value| value.expose_secret())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("names", &self.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The bot's secrets: each `declared` name from the environment (a local
/// run), or else from `stored`, the JSON object kept in Parameter Store.
pub(super) fn bot_secrets(
    declared: &[&str],
    get: &dyn Fn(&str) -> Option<String>,
    stored: Option<&str>,
) -> Result<Secrets, ConfigError> {
    let stored: serde_json::Map<String, serde_json::Value> = match stored {
        None => serde_json::Map::new(),
        Some(json) => serde_json::from_str(json).map_err(|error| ConfigError::Invalid {
            var: BOT_SECRETS_PARAMETER,
            // Where, never what: serde's message could quote a value.
            reason: format!(
                "expected a JSON object of names to strings ({})",
                crate::store::unreadable(&error)
            ),
        })?,
    };
    let mut secrets = std::collections::BTreeMap::new();
    for name in declared {
        let value = match (get(name), stored.get(*name)) {
            (Some(value), _) => value,
            (None, Some(serde_json::Value::String(value))) if !value.trim().is_empty() => {
                value.clone()
            }
            _ => return Err(ConfigError::MissingSecret((*name).to_owned())),
        };
        secrets.insert((*name).to_owned(), SecretString::from(value));
    }
    Ok(Secrets(secrets))
}

/// A bot token. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct BotToken(SecretString);

impl BotToken {
    /// Checks the shape `<bot id>:<secret>` so that the token can be placed in
    /// a URL path as is.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        Self::parse_from("TELEGRAM_BOT_TOKEN", value)
    }

    /// As [`BotToken::parse`], naming `var` as where the value came from.
    pub fn parse_from(var: &'static str, value: &str) -> Result<Self, ConfigError> {
        let value = value.trim();
        let well_formed = value.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !well_formed {
            return Err(ConfigError::Invalid {
                var,
                reason: "expected <bot id>:<secret> as BotFather gives it".to_owned(),
            });
        }
        Ok(BotToken(SecretString::from(value)))
    }

    /// The token, for building a request URL only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The bot's numeric id, the public part of the token.
    pub fn bot_id(&self) -> &str {
        self.expose().split(':').next().unwrap_or_default()
    }
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BotToken({}:[redacted])", self.bot_id())
    }
}

/// The webhook's `secret_token`: 1-256 characters of `A-Z a-z 0-9 _ -`.
#[derive(Clone)]
pub struct WebhookSecret(SecretString);

impl WebhookSecret {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        Self::parse_from("TELEGRAM_WEBHOOK_SECRET", value)
    }

    /// As [`WebhookSecret::parse`], naming `var` as where it came from.
    pub fn parse_from(var: &'static str, value: &str) -> Result<Self, ConfigError> {
        let valid = (1..=256).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(ConfigError::Invalid {
                var,
                reason: "expected 1-256 characters of A-Z a-z 0-9 _ -".to_owned(),
            });
        }
        Ok(WebhookSecret(SecretString::from(value)))
    }

    /// Compares in constant time, so the answer's timing tells nothing about
    /// how much of a guess was right, nor how long the secret is: both sides
    /// are padded to the longest allowed secret first.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        const MAX: usize = 256;
        let secret = self.0.expose_secret().as_bytes();
        if candidate.len() > MAX {
            return false; // says only that the guess was too long
        }
        let mut expected = [0u8; MAX];
        let mut given = [0u8; MAX];
        expected[..secret.len()].copy_from_slice(secret);
        given[..candidate.len()].copy_from_slice(candidate);
        let same_bytes = expected.ct_eq(&given);
        let same_length = (secret.len() as u64).ct_eq(&(candidate.len() as u64));
        (same_bytes & same_length).into()
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// The assistant's model: an OpenAI-compatible Chat Completions API.
#[derive(Clone)]
pub struct AssistantConfig {
    /// `ASSISTANT_BASE_URL` without trailing slash (default OpenAI's).
    pub base_url: String,
    /// `ASSISTANT_MODEL`, for example `gpt-4o-mini`.
    pub model: String,
    /// `ASSISTANT_API_KEY`: a secret of the bot, read as the declared ones
    /// are (the environment locally, the stack's secrets parameter on
    /// Lambda).
    pub api_key: SecretString,
}

impl fmt::Debug for AssistantConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssistantConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// The model `/ask` uses; setting it turns the assistant on.
pub const ASSISTANT_MODEL: &str = "ASSISTANT_MODEL";
/// Where its API is: any OpenAI-compatible Chat Completions API.
pub const ASSISTANT_BASE_URL: &str = "ASSISTANT_BASE_URL";
/// The secret the assistant needs, declared for the bot when it is on.
pub const ASSISTANT_API_KEY: &str = "ASSISTANT_API_KEY";
const DEFAULT_ASSISTANT_BASE_URL: &str = "https://api.openai.com/v1";

/// The bot's declared secrets, and the assistant's key when it is on.
pub(super) fn declared_with_assistant<'a>(
    declared: &[&'a str],
    get: &dyn Fn(&str) -> Option<String>,
) -> Vec<&'a str> {
    let mut names = declared.to_vec();
    if get(ASSISTANT_MODEL).is_some() && !names.contains(&ASSISTANT_API_KEY) {
        names.push(ASSISTANT_API_KEY);
    }
    names
}

/// The assistant's settings, once the secrets are read.
pub(super) fn assistant_config(
    get: &dyn Fn(&str) -> Option<String>,
    secrets: &Secrets,
) -> Result<Option<AssistantConfig>, ConfigError> {
    let Some(model) = get(ASSISTANT_MODEL) else {
        return Ok(None);
    };
    let base_url = get(ASSISTANT_BASE_URL)
        .unwrap_or_else(|| DEFAULT_ASSISTANT_BASE_URL.to_owned())
        .trim()
        .trim_end_matches('/')
        .to_owned();
    let url_ok = reqwest::Url::parse(&base_url)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.query().is_none());
    if !url_ok {
        return Err(ConfigError::Invalid {
            var: ASSISTANT_BASE_URL,
            reason: "expected an http:// or https:// URL such as https://api.openai.com/v1"
                .to_owned(),
        });
    }
    let api_key = secrets
        .0
        .get(ASSISTANT_API_KEY)
        .cloned()
        .ok_or_else(|| ConfigError::MissingSecret(ASSISTANT_API_KEY.to_owned()))?;
    Ok(Some(AssistantConfig {
        base_url,
        model: model.trim().to_owned(),
        api_key,
    }))
}
