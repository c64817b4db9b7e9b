//! Configuration from the environment, read once at cold start: variables,
//! the token (from Parameter Store when asked), and extra trusted
//! certificates. [`InitError`] is every reason the process cannot start.

use crate::ssm::{ParameterError, ParameterStore, Ssm};
use crate::store::StoreConfig;
use secrets::{assistant_config, bot_secrets, declared_with_assistant};
pub use secrets::{
    AssistantConfig, BotToken, Secrets, WebhookSecret, ASSISTANT_API_KEY, ASSISTANT_BASE_URL,
    ASSISTANT_MODEL,
};

mod secrets;
use secrecy::ExposeSecret;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_API_BASE_URL: &str = "https://api.telegram.org";
/// The most a single Bot API request may take. Well under the function's
/// timeout, so a slow answer still leaves time to answer Telegram cleanly.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the configuration could not be built. Each names its variable; none
/// contains a secret's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("SSL_CERT_FILE {path}: {reason}")]
    CertFile { path: PathBuf, reason: String },
    // The cause is part of the message rather than a `source`, so that
    // the runtime's init error (which shows only the message) names it,
    // and a chain of causes does not show it twice.
    #[error(
        "{0} is not set: export it for a local run, or store it with scripts/deploy --secret {0}"
    )]
    MissingSecret(String),
    #[error("{names}: {error}")]
    Parameter {
        /// The variables and the parameters they name, e.g.
        /// `TELEGRAM_BOT_TOKEN_PARAMETER /bot/token`.
        names: String,
        error: ParameterError,
    },
}

/// Why the function or the command-line tool could not start: its
/// configuration, or the HTTP client built from it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("could not open the store file {0}")]
    StoreFile(#[from] crate::store::file::OpenError),
}

/// The variables naming parameters to read the token and the secret from.
const TOKEN_PARAMETER: &str = "TELEGRAM_BOT_TOKEN_PARAMETER";
const SECRET_PARAMETER: &str = "TELEGRAM_WEBHOOK_SECRET_PARAMETER";
/// The variable naming the parameter that holds the bot's own secrets: one
/// SecureString, a JSON object of names to values.
const BOT_SECRETS_PARAMETER: &str = "BOT_SECRETS_PARAMETER";

/// `VAR /name, VAR /name` for an error about several parameters.
fn describe_parameters(wanted: &[(&str, String)]) -> String {
    wanted
        .iter()
        .map(|(var, name)| format!("{var} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Named when no token source is configured.
const TOKEN_VARS: &str = "TELEGRAM_BOT_TOKEN (or TELEGRAM_BOT_TOKEN_PARAMETER)";

/// Everything the bot needs from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub token: BotToken,
    /// Without trailing slash, e.g. `https://api.telegram.org`.
    pub api_base_url: String,
    pub bot_username: Option<String>,
    pub webhook_secret: Option<WebhookSecret>,
    /// The bot's own secrets, by the names it declares.
    pub secrets: Secrets,
    /// Certificates trusted besides the compiled-in roots, read from the PEM
    /// bundle `SSL_CERT_FILE` names (for an HTTPS stand-in or a proxy).
    pub extra_root_certificates: Vec<reqwest::Certificate>,
    pub http_timeout: Duration,
    /// Where the bot's memory lives: `BOT_STORE_TABLE` (DynamoDB) or
    /// `BOT_STORE_FILE`; neither is no memory.
    pub store: StoreConfig,
    /// How long a quiet chat's record is kept (`BOT_STATE_TTL_DAYS`, 0 or
    /// unset for ever).
    pub keep_chats: Option<Duration>,
    /// How long an update's lease outlives its run's deadline
    /// (`BOT_LEASE_MARGIN_SECS`, 0.1-60, default 5).
    pub lease_margin: Duration,
    /// Where alarms are told (`BOT_ADMIN_CHAT_ID`), when monitoring's
    /// topic invokes the function.
    pub admin_chat: Option<crate::telegram::ChatId>,
    /// The language model `/ask` uses, when `ASSISTANT_MODEL` names one.
    pub assistant: Option<AssistantConfig>,
    /// The queue slow updates are deferred to, when `BOT_QUEUE_URL` names
    /// one.
    pub queue: Option<crate::queue::QueueConfig>,
}

impl Config {
    /// Reads the process environment, and the token from Parameter Store
    /// when `TELEGRAM_BOT_TOKEN_PARAMETER` names it and `TELEGRAM_BOT_TOKEN`
    /// is not set. Call once, at cold start.
    pub async fn load() -> Result<Self, ConfigError> {
        Self::load_declaring(&[]).await
    }

    /// As [`Config::load`], with the bot's `declared` secrets: each from
    /// the environment, or from the JSON object in the parameter
    /// `BOT_SECRETS_PARAMETER` names, read in the token's request.
    pub async fn load_declaring(declared: &[&str]) -> Result<Self, ConfigError> {
        Self::load_declaring_with(|name| std::env::var(name).ok(), Ssm::from_env, declared).await
    }

    /// As [`Config::load`], with the environment and the parameter store
    /// given; the store is only built when the token is in a parameter.
    pub async fn load_with<S, F, Fut>(
        lookup: impl Fn(&str) -> Option<String>,
        make_store: F,
    ) -> Result<Self, ConfigError>
    where
        S: ParameterStore,
        F: FnOnce() -> Fut,
        Fut: Future<Output = S>,
    {
        Self::load_declaring_with(lookup, make_store, &[]).await
    }

    /// As [`Config::load_declaring`], with the environment and the
    /// parameter store given.
    pub async fn load_declaring_with<S, F, Fut>(
        lookup: impl Fn(&str) -> Option<String>,
        make_store: F,
        declared: &[&str],
    ) -> Result<Self, ConfigError>
    where
        S: ParameterStore,
        F: FnOnce() -> Fut,
        Fut: Future<Output = S>,
    {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // What is not in the environment comes from Parameter Store, both in
        // one request: one round trip at cold start.
        let mut wanted = Vec::new();
        if get("TELEGRAM_BOT_TOKEN").is_none() {
            let name =
                get("TELEGRAM_BOT_TOKEN_PARAMETER").ok_or(ConfigError::Missing(TOKEN_VARS))?;
            wanted.push((TOKEN_PARAMETER, name.trim().to_owned()));
        }
        if get("TELEGRAM_WEBHOOK_SECRET").is_none() {
            if let Some(name) = get(SECRET_PARAMETER) {
                wanted.push((SECRET_PARAMETER, name.trim().to_owned()));
            }
        }
        let declared = declared_with_assistant(declared, &get);
        if declared.iter().any(|name| get(name).is_none()) {
            if let Some(name) = get(BOT_SECRETS_PARAMETER) {
                wanted.push((BOT_SECRETS_PARAMETER, name.trim().to_owned()));
            }
        }
        let mut stored = Vec::new();
        if !wanted.is_empty() {
            let names: Vec<&str> = wanted.iter().map(|(_, name)| name.as_str()).collect();
            let values = make_store()
                .await
                .get_secure_strings(&names)
                .await
                .map_err(|error| ConfigError::Parameter {
                    names: describe_parameters(&wanted),
                    error,
                })?;
            for ((var, name), value) in wanted.iter().zip(values) {
                let value = value.map_err(|error| ConfigError::Parameter {
                    names: format!("{var} {name}"),
                    error,
                })?;
                stored.push((*var, value));
            }
        }
        let from_store = |var: &str| {
            stored
                .iter()
                .find(|(v, _)| *v == var)
                .map(|(_, value)| value.expose_secret().to_owned())
        };
        let token = match (get("TELEGRAM_BOT_TOKEN"), from_store(TOKEN_PARAMETER)) {
            (Some(token), _) => BotToken::parse(&token)?,
            (None, Some(token)) => BotToken::parse_from(TOKEN_PARAMETER, &token)?,
            (None, None) => return Err(ConfigError::Missing(TOKEN_VARS)),
        };
        let secret = from_store(SECRET_PARAMETER)
            .map(|secret| WebhookSecret::parse_from(SECRET_PARAMETER, &secret))
            .transpose()?;
        let mut config = Self::with_token(&get, token)?;
        if secret.is_some() {
            config.webhook_secret = secret;
        }
        config.secrets = bot_secrets(
            &declared,
            &get,
            from_store(BOT_SECRETS_PARAMETER).as_deref(),
        )?;
        config.assistant = assistant_config(&get, &config.secrets)?;
        Ok(config)
    }

    /// Reads the bot's `declared` secrets from the environment `lookup`
    /// gives, as local runs (`bot poll`, `bot chat`) keep them.
    pub fn read_secrets(
        &mut self,
        declared: &[&str],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let declared = declared_with_assistant(declared, &get);
        self.secrets = bot_secrets(&declared, &get, None)?;
        self.assistant = assistant_config(&get, &self.secrets)?;
        Ok(())
    }

    /// Reads variables through `lookup`, so tests need not touch the process
    /// environment. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let token =
            BotToken::parse(&get("TELEGRAM_BOT_TOKEN").ok_or(ConfigError::Missing(TOKEN_VARS))?)?;
        Self::with_token(&get, token)
    }

    fn with_token(
        get: &dyn Fn(&str) -> Option<String>,
        token: BotToken,
    ) -> Result<Self, ConfigError> {
        let api_base_url = parse_base_url(
            get("TELEGRAM_API_BASE_URL")
                .as_deref()
                .unwrap_or(DEFAULT_API_BASE_URL),
        )?;
        let webhook_secret = get("TELEGRAM_WEBHOOK_SECRET")
            .map(|s| WebhookSecret::parse(&s))
            .transpose()?;
        let http_timeout = match get("TELEGRAM_HTTP_TIMEOUT_SECS") {
            None => DEFAULT_HTTP_TIMEOUT,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s <= 300.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| ConfigError::Invalid {
                    var: "TELEGRAM_HTTP_TIMEOUT_SECS",
                    reason: format!("expected seconds between 0 and 300, got {v:?}"),
                })?,
        };
        let store = StoreConfig::from_lookup(get)?;
        let keep_chats = match get("BOT_STATE_TTL_DAYS") {
            None => None,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(0) => None,
                Ok(days) if days <= 36_500 => Some(Duration::from_secs(u64::from(days) * 86_400)),
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "BOT_STATE_TTL_DAYS",
                        reason: format!("expected whole days, 0 to 36500, got {v:?}"),
                    })
                }
            },
        };
        let lease_margin = match get("BOT_LEASE_MARGIN_SECS") {
            None => crate::memory::LEASE_MARGIN,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && (0.1..=60.0).contains(s))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| ConfigError::Invalid {
                    var: "BOT_LEASE_MARGIN_SECS",
                    reason: format!("expected seconds between 0.1 and 60, got {v:?}"),
                })?,
        };
        let admin_chat = match get("BOT_ADMIN_CHAT_ID") {
            None => None,
            Some(v) => Some(crate::telegram::ChatId(v.trim().parse::<i64>().map_err(
                |_| ConfigError::Invalid {
                    var: "BOT_ADMIN_CHAT_ID",
                    reason: format!("expected a chat id (a whole number), got {v:?}"),
                },
            )?)),
        };
        let queue = crate::queue::QueueConfig::from_lookup(&get)?;
        Ok(Config {
            queue,
            assistant: None,
            secrets: Secrets::default(),
            store,
            keep_chats,
            lease_margin,
            admin_chat,
            token,
            api_base_url,
            bot_username: get("TELEGRAM_BOT_USERNAME")
                .map(|u| u.trim().trim_start_matches('@').to_owned()),
            webhook_secret,
            extra_root_certificates: match get("SSL_CERT_FILE") {
                Some(path) => read_certificates(Path::new(path.trim()))?,
                None => Vec::new(),
            },
            http_timeout,
        })
    }
}

/// Reads a PEM bundle; a file that is missing, unreadable or holds no
/// certificate stops the start rather than being silently ignored.
fn read_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let error = |reason: String| ConfigError::CertFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| error(format!("not a PEM bundle: {}", e.without_url())))?;
    if certificates.is_empty() {
        return Err(error("holds no certificate".to_owned()));
    }
    Ok(certificates)
}

fn parse_base_url(value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    let invalid = |reason: &str| ConfigError::Invalid {
        var: "TELEGRAM_API_BASE_URL",
        reason: reason.to_owned(),
    };
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| invalid("expected an http:// or https:// URL"))?;
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err(invalid("expected scheme, host, optional port and path"));
    }
    Ok(trimmed.to_owned())
}

impl StoreConfig {
    /// The store `BOT_STORE_TABLE` or `BOT_STORE_FILE` names, read through
    /// `lookup` (empty values count as unset). Needs no token, so that the
    /// store can be reached while the token is being read.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        match (get("BOT_STORE_TABLE"), get("BOT_STORE_FILE")) {
            (None, None) => Ok(StoreConfig::Off),
            (Some(table), None) => Ok(StoreConfig::DynamoDb {
                table: table.trim().to_owned(),
            }),
            (None, Some(path)) => Ok(StoreConfig::File {
                path: PathBuf::from(path.trim()),
            }),
            (Some(_), Some(_)) => Err(ConfigError::Invalid {
                var: "BOT_STORE_FILE",
                reason: "set BOT_STORE_TABLE or BOT_STORE_FILE, not both".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    const TOKEN: &str = "123456:AAE-some_Secret-value";

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_apply_when_only_the_token_is_set() {
        let config = Config::from_lookup(lookup(&[("TELEGRAM_BOT_TOKEN", TOKEN)])).unwrap();
        assert_eq!(config.api_base_url, DEFAULT_API_BASE_URL);
        assert_eq!(config.http_timeout, DEFAULT_HTTP_TIMEOUT);
        assert!(config.webhook_secret.is_none());
    }

    #[test]
    fn a_missing_token_names_the_variable() {
        let error = Config::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "TELEGRAM_BOT_TOKEN (or TELEGRAM_BOT_TOKEN_PARAMETER) is not set"
        );
    }

    #[test]
    fn a_malformed_token_is_rejected_without_echoing_it() {
        let error = BotToken::parse("12345:abc/def?x").unwrap_err().to_string();
        assert!(error.contains("TELEGRAM_BOT_TOKEN"));
        assert!(!error.contains("abc/def"));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let config = Config::from_lookup(lookup(&[
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("TELEGRAM_WEBHOOK_SECRET", "hush-hush_1"),
        ]))
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("AAE-some_Secret-value"), "{debug}");
        assert!(!debug.contains("hush-hush_1"), "{debug}");
        assert!(debug.contains("123456"), "the bot id is public: {debug}");
    }

    /// Answers every name with the same value, or fails the request.
    struct FakeStore(Result<&'static str, ParameterError>);

    impl ParameterStore for FakeStore {
        async fn get_secure_strings(
            &self,
            names: &[&str],
        ) -> Result<Vec<Result<SecretString, ParameterError>>, ParameterError> {
            let value = self.0.clone()?;
            Ok(names
                .iter()
                .map(|_| Ok(SecretString::from(value)))
                .collect())
        }
    }

    /// Holds named values, and counts requests.
    #[derive(Default)]
    struct Parameters {
        values: Vec<(&'static str, &'static str)>,
        requests: std::sync::atomic::AtomicUsize,
    }

    impl ParameterStore for &Parameters {
        async fn get_secure_strings(
            &self,
            names: &[&str],
        ) -> Result<Vec<Result<SecretString, ParameterError>>, ParameterError> {
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(names
                .iter()
                .map(|name| {
                    self.values
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| SecretString::from(*v))
                        .ok_or(ParameterError::NotFound)
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn the_token_and_the_secret_are_read_in_one_request() {
        let store = Parameters {
            values: vec![("/bot/token", TOKEN), ("/bot/secret", "s3cret_from-ssm")],
            ..Parameters::default()
        };
        let vars = [
            ("TELEGRAM_BOT_TOKEN_PARAMETER", "/bot/token"),
            ("TELEGRAM_WEBHOOK_SECRET_PARAMETER", "/bot/secret"),
        ];
        let config = Config::load_with(lookup(&vars), || async { &store })
            .await
            .unwrap();
        assert_eq!(config.token.expose(), TOKEN);
        let secret = config.webhook_secret.unwrap();
        assert!(secret.matches(b"s3cret_from-ssm"));
        assert_eq!(store.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_missing_secret_parameter_is_named_and_an_environment_secret_wins() {
        let store = Parameters {
            values: vec![("/bot/token", TOKEN)],
            ..Parameters::default()
        };
        let vars = [
            ("TELEGRAM_BOT_TOKEN_PARAMETER", "/bot/token"),
            ("TELEGRAM_WEBHOOK_SECRET_PARAMETER", "/bot/secret"),
        ];
        let error = Config::load_with(lookup(&vars), || async { &store })
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "TELEGRAM_WEBHOOK_SECRET_PARAMETER /bot/secret: parameter not found"
        );
        let vars = [
            ("TELEGRAM_BOT_TOKEN_PARAMETER", "/bot/token"),
            ("TELEGRAM_WEBHOOK_SECRET_PARAMETER", "/bot/secret"),
            ("TELEGRAM_WEBHOOK_SECRET", "from_the_environment"),
        ];
        let config = Config::load_with(lookup(&vars), || async { &store })
            .await
            .unwrap();
        assert!(config
            .webhook_secret
            .unwrap()
            .matches(b"from_the_environment"));
    }

    #[tokio::test]
    async fn a_failed_request_names_both_parameters() {
        let vars = [
            ("TELEGRAM_BOT_TOKEN_PARAMETER", "/bot/token"),
            ("TELEGRAM_WEBHOOK_SECRET_PARAMETER", "/bot/secret"),
        ];
        let error = load(
            &vars,
            Err(ParameterError::AccessDenied("AccessDeniedException".into())),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "TELEGRAM_BOT_TOKEN_PARAMETER /bot/token, TELEGRAM_WEBHOOK_SECRET_PARAMETER /bot/secret: \
             access denied (AccessDeniedException); the function's role needs ssm:GetParameters \
             on it and kms:Decrypt on its key"
        );
    }

    async fn load(
        vars: &[(&str, &str)],
        store: Result<&'static str, ParameterError>,
    ) -> Result<Config, ConfigError> {
        Config::load_with(lookup(vars), || async move { FakeStore(store) }).await
    }

    #[tokio::test]
    async fn the_token_is_read_from_the_named_parameter() {
        let config = load(&[("TELEGRAM_BOT_TOKEN_PARAMETER", "/bot/token")], Ok(TOKEN))
            .await
            .unwrap();
        assert_eq!(config.token.expose(), TOKEN);
    }

    #[tokio::test]
    async fn an_environment_token_wins_and_the_store_is_not_asked() {
        let vars = [
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("TELEGRAM_BOT_TOKEN_PARAMETER", "/bot/token"),
        ];
        let config = Config::load_with(lookup(&vars), || async {
            FakeStore(Err(ParameterError::Other(
                "the store must not be asked".into(),
            )))
        })
        .await;
        assert!(config.is_ok());
    }

    #[tokio::test]
    async fn parameter_failures_name_the_parameter_and_never_the_token() {
        let vars = [("TELEGRAM_BOT_TOKEN_PARAMETER", "/bot/token")];
        let cases = [
            (
                Err(ParameterError::NotFound),
                "TELEGRAM_BOT_TOKEN_PARAMETER /bot/token: parameter not found",
            ),
            (
                Err(ParameterError::AccessDenied("AccessDeniedException".into())),
                "TELEGRAM_BOT_TOKEN_PARAMETER /bot/token: access denied (AccessDeniedException)",
            ),
            (
                Ok("not a token at all"),
                "TELEGRAM_BOT_TOKEN_PARAMETER is invalid",
            ),
        ];
        for (store, expected) in cases {
            let error = load(&vars, store).await.unwrap_err().to_string();
            assert!(error.starts_with(expected), "{error}");
            assert!(!error.contains("not a token at all"), "{error}");
        }
    }

    #[test]
    fn webhook_secret_follows_telegrams_alphabet() {
        assert!(WebhookSecret::parse("abc_DEF-123").is_ok());
        assert!(WebhookSecret::parse("").is_err());
        assert!(WebhookSecret::parse("has space").is_err());
        assert!(WebhookSecret::parse(&"a".repeat(257)).is_err());
        assert!(WebhookSecret::parse(&"a".repeat(256)).is_ok());
    }

    #[test]
    fn secret_comparison_needs_the_exact_bytes() {
        let secret = WebhookSecret::parse("s3cret").unwrap();
        assert!(secret.matches(b"s3cret"));
        assert!(!secret.matches(b"s3cre"));
        assert!(!secret.matches(b"s3cret "));
        assert!(!secret.matches(b"S3CRET"));
        assert!(!secret.matches(b""));
        assert!(
            !secret.matches(b"s3cret\0"),
            "padding must not make a match"
        );
        assert!(!secret.matches(&[b'a'; 300]));
        let longest = "x".repeat(256);
        assert!(WebhookSecret::parse(&longest)
            .unwrap()
            .matches(longest.as_bytes()));
    }

    #[test]
    fn the_store_is_chosen_by_its_variable() {
        let with = |vars: &[(&str, &str)]| {
            let mut all = vec![("TELEGRAM_BOT_TOKEN", TOKEN)];
            all.extend_from_slice(vars);
            Config::from_lookup(lookup(&all))
        };
        assert_eq!(with(&[]).unwrap().store, StoreConfig::Off);
        assert_eq!(
            with(&[("BOT_STORE_TABLE", "bot-memory")]).unwrap().store,
            StoreConfig::DynamoDb {
                table: "bot-memory".into()
            }
        );
        assert_eq!(
            with(&[("BOT_STORE_FILE", "/tmp/x.redb"), ("BOT_STORE_TABLE", " ")])
                .unwrap()
                .store,
            StoreConfig::File {
                path: "/tmp/x.redb".into()
            }
        );
        assert!(with(&[("BOT_STORE_FILE", "a"), ("BOT_STORE_TABLE", "b")]).is_err());
        assert_eq!(
            with(&[("BOT_STATE_TTL_DAYS", "30")]).unwrap().keep_chats,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            with(&[("BOT_STATE_TTL_DAYS", "0")]).unwrap().keep_chats,
            None
        );
        assert!(with(&[("BOT_STATE_TTL_DAYS", "-1")]).is_err());
        assert_eq!(with(&[]).unwrap().lease_margin, Duration::from_secs(5));
        assert_eq!(
            with(&[("BOT_LEASE_MARGIN_SECS", "0.5")])
                .unwrap()
                .lease_margin,
            Duration::from_millis(500)
        );
        for bad in ["0", "61", "soon", "NaN"] {
            assert!(with(&[("BOT_LEASE_MARGIN_SECS", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_assistant_is_on_with_a_model_and_needs_its_key() {
        let with = |vars: &[(&str, &str)]| {
            let mut all = vec![("TELEGRAM_BOT_TOKEN", TOKEN)];
            all.extend_from_slice(vars);
            let mut config = Config::from_lookup(lookup(&all))?;
            config.read_secrets(&[], lookup(&all)).map(|()| config)
        };
        assert!(with(&[]).unwrap().assistant.is_none());
        let on = with(&[("ASSISTANT_MODEL", "m-1"), ("ASSISTANT_API_KEY", "sk-9")])
            .unwrap()
            .assistant
            .unwrap();
        assert_eq!(
            (on.base_url.as_str(), on.model.as_str()),
            ("https://api.openai.com/v1", "m-1")
        );
        assert!(!format!("{on:?}").contains("sk-9"));
        assert!(matches!(
            with(&[("ASSISTANT_MODEL", "m-1")]),
            Err(ConfigError::MissingSecret(name)) if name == "ASSISTANT_API_KEY"
        ));
        let url = |u: &str| {
            with(&[
                ("ASSISTANT_MODEL", "m"),
                ("ASSISTANT_API_KEY", "k"),
                ("ASSISTANT_BASE_URL", u),
            ])
            .map(|c| c.assistant.unwrap().base_url)
        };
        assert_eq!(
            url("http://127.0.0.1:9/v1/").unwrap(),
            "http://127.0.0.1:9/v1"
        );
        assert!(url("ftp://x").is_err());
        assert!(url("https://x/v1?key=1").is_err());
    }

    #[test]
    fn base_url_is_normalised_and_checked() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:8081/").unwrap(),
            "http://127.0.0.1:8081"
        );
        assert!(parse_base_url("ftp://x").is_err());
        assert!(parse_base_url("https://").is_err());
    }

    #[test]
    fn timeout_must_be_a_sane_number_of_seconds() {
        let with = |v| {
            Config::from_lookup(lookup(&[
                ("TELEGRAM_BOT_TOKEN", TOKEN),
                ("TELEGRAM_HTTP_TIMEOUT_SECS", v),
            ]))
        };
        assert_eq!(
            with("2.5").unwrap().http_timeout,
            Duration::from_millis(2500)
        );
        assert!(with("0").is_err());
        assert!(with("NaN").is_err());
        assert!(with("1e9").is_err());
    }

    /// Parameter Store holding named values, recording each request.
    #[derive(Default)]
    struct Named {
        values: Vec<(&'static str, &'static str)>,
        requests: std::sync::Mutex<Vec<Vec<String>>>,
    }

    impl ParameterStore for &Named {
        async fn get_secure_strings(
            &self,
            names: &[&str],
        ) -> Result<Vec<Result<SecretString, ParameterError>>, ParameterError> {
            self.requests
                .lock()
                .unwrap()
                .push(names.iter().map(|n| n.to_string()).collect());
            Ok(names
                .iter()
                .map(|name| {
                    self.values
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| SecretString::from(*v))
                        .ok_or(ParameterError::NotFound)
                })
                .collect())
        }
    }

    const KEY: &str = "wx-key-5f3a9c";

    #[tokio::test]
    async fn declared_secrets_come_with_the_token_in_one_request_and_never_show() {
        let store = Named {
            values: vec![
                ("/bot/token", TOKEN),
                (
                    "/bot/secrets",
                    r#"{"WEATHER_API_KEY": "wx-key-5f3a9c", "OTHER": "x"}"#,
                ),
            ],
            ..Named::default()
        };
        let vars = [
            ("TELEGRAM_BOT_TOKEN_PARAMETER", "/bot/token"),
            ("BOT_SECRETS_PARAMETER", "/bot/secrets"),
        ];
        let config =
            Config::load_declaring_with(lookup(&vars), || async { &store }, &["WEATHER_API_KEY"])
                .await
                .unwrap();
        assert_eq!(config.secrets.get("WEATHER_API_KEY"), Some(KEY));
        assert_eq!(
            config.secrets.get("OTHER"),
            None,
            "only what the bot declares"
        );
        assert_eq!(
            *store.requests.lock().unwrap(),
            [vec!["/bot/token".to_owned(), "/bot/secrets".to_owned()]],
            "one request for the token and the secrets"
        );
        let shown = format!("{config:?}");
        assert!(
            shown.contains("WEATHER_API_KEY") && !shown.contains(KEY),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_secret_in_the_environment_wins_and_a_missing_one_is_named() {
        let store = Named::default();
        let vars = [("TELEGRAM_BOT_TOKEN", TOKEN), ("WEATHER_API_KEY", KEY)];
        let config =
            Config::load_declaring_with(lookup(&vars), || async { &store }, &["WEATHER_API_KEY"])
                .await
                .unwrap();
        assert_eq!(config.secrets.get("WEATHER_API_KEY"), Some(KEY));
        assert!(store.requests.lock().unwrap().is_empty(), "nothing to read");
        let vars = [("TELEGRAM_BOT_TOKEN", TOKEN)];
        let error =
            Config::load_declaring_with(lookup(&vars), || async { &store }, &["WEATHER_API_KEY"])
                .await
                .unwrap_err();
        assert!(matches!(&error, ConfigError::MissingSecret(name) if name == "WEATHER_API_KEY"));
        assert!(
            error
                .to_string()
                .contains("scripts/deploy --secret WEATHER_API_KEY"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_unreadable_secrets_parameter_is_refused_without_quoting_it() {
        let store = Named {
            values: vec![("/bot/secrets", r#"{"WEATHER_API_KEY": wx-key-5f3a9c}"#)],
            ..Named::default()
        };
        let vars = [
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("BOT_SECRETS_PARAMETER", "/bot/secrets"),
        ];
        let error =
            Config::load_declaring_with(lookup(&vars), || async { &store }, &["WEATHER_API_KEY"])
                .await
                .unwrap_err();
        let shown = error.to_string();
        assert!(shown.contains("BOT_SECRETS_PARAMETER"), "{shown}");
        assert!(!shown.contains("wx-key"), "{shown}");
    }
}
