//! The Bot API client: one `reqwest::Client` for the life of the process, so
//! warm invocations reuse its TLS connections.
//!
//! Every failure is an [`ApiError`], and [`ApiError::failure`] says what the
//! caller should do about it ([`answer`] reads Telegram's answers). The token
//! is part of every request URL, so no error kept here carries a URL.

mod answer;

pub use answer::{ApiError, Failure, MAX_RETRY_AFTER};

use crate::config::{BotToken, Config, InitError};
use crate::telegram::{
    AnswerCallbackQuery, BotCommand, DeleteWebhook, EditMessageText, GetUpdates, Me, Message,
    SendChatAction, SendMessage, SendMessageDraft, SetMyCommands, SetWebhook, Update, WebhookInfo,
};
use answer::{decode, retry_after_secs};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// Connecting must be quick: a host that does not answer within this is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Below this much time before a deadline, a request is not started at all.
const MIN_REQUEST_TIME: Duration = Duration::from_millis(50);

/// The Bot API, as one bot sees it.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    base_url: String,
    token: BotToken,
    timeout: Duration,
}

impl fmt::Debug for BotApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotApi")
            .field("base_url", &self.base_url)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl BotApi {
    /// Builds the client once; call at cold start.
    pub fn new(config: &Config) -> Result<Self, InitError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(config.http_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            // The Bot API never redirects a method call; following one
            // would carry the token's path to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ));
        for certificate in &config.extra_root_certificates {
            builder = builder.add_root_certificate(certificate.clone());
        }
        let http = builder
            .build()
            .map_err(|e| InitError::HttpClient(e.without_url()))?;
        Ok(BotApi {
            http,
            base_url: config.api_base_url.clone(),
            token: config.token.clone(),
            timeout: config.http_timeout,
        })
    }

    pub async fn send_message(
        &self,
        request: &SendMessage,
        deadline: Option<Instant>,
    ) -> Result<Message, ApiError> {
        self.call_before("sendMessage", request, deadline).await
    }

    /// The edited message, or `true` for a message sent via inline mode.
    pub async fn edit_message_text(
        &self,
        request: &EditMessageText,
        deadline: Option<Instant>,
    ) -> Result<Value, ApiError> {
        self.call_before("editMessageText", request, deadline).await
    }

    pub async fn answer_callback_query(
        &self,
        request: &AnswerCallbackQuery,
        deadline: Option<Instant>,
    ) -> Result<bool, ApiError> {
        self.call_before("answerCallbackQuery", request, deadline)
            .await
    }

    pub async fn send_chat_action(
        &self,
        request: &SendChatAction,
        deadline: Option<Instant>,
    ) -> Result<bool, ApiError> {
        self.call_before("sendChatAction", request, deadline).await
    }

    /// Shows `request`'s draft, if there is time before `deadline`.
    pub async fn send_message_draft(
        &self,
        request: &SendMessageDraft,
        deadline: Option<Instant>,
    ) -> Result<bool, ApiError> {
        self.call_before("sendMessageDraft", request, deadline)
            .await
    }

    /// The process's one HTTP client, for the bot's own outside calls.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The bot's numeric id: the public part of the token.
    pub fn bot_id(&self) -> &str {
        self.token.bot_id()
    }

    pub async fn get_me(&self) -> Result<Me, ApiError> {
        self.call("getMe", &serde_json::json!({}), self.timeout)
            .await
    }

    /// The command menu of the default scope and language.
    pub async fn get_my_commands(&self) -> Result<Vec<BotCommand>, ApiError> {
        self.call("getMyCommands", &serde_json::json!({}), self.timeout)
            .await
    }

    /// The command menu of a scope that applies to whole kinds of chat
    /// (`all_private_chats`, `all_group_chats`, `all_chat_administrators`),
    /// in no particular language.
    pub async fn get_my_commands_in(&self, scope: &str) -> Result<Vec<BotCommand>, ApiError> {
        let params = serde_json::json!({"scope": {"type": scope}});
        self.call("getMyCommands", &params, self.timeout).await
    }

    pub async fn set_my_commands(&self, commands: &[BotCommand]) -> Result<bool, ApiError> {
        let request = SetMyCommands {
            commands: commands.to_vec(),
        };
        self.call("setMyCommands", &request, self.timeout).await
    }

    pub async fn set_webhook(&self, request: &SetWebhook) -> Result<bool, ApiError> {
        self.call("setWebhook", request, self.timeout).await
    }

    pub async fn delete_webhook(&self, drop_pending_updates: bool) -> Result<bool, ApiError> {
        self.call(
            "deleteWebhook",
            &DeleteWebhook {
                drop_pending_updates,
            },
            self.timeout,
        )
        .await
    }

    pub async fn get_webhook_info(&self) -> Result<WebhookInfo, ApiError> {
        self.call("getWebhookInfo", &serde_json::json!({}), self.timeout)
            .await
    }

    /// As [`BotApi::get_webhook_info`], given up at `deadline`.
    pub async fn get_webhook_info_before(
        &self,
        deadline: Instant,
    ) -> Result<WebhookInfo, ApiError> {
        self.call_before("getWebhookInfo", &serde_json::json!({}), Some(deadline))
            .await
    }

    /// Long-polls for updates. The HTTP timeout is the poll's own timeout plus
    /// the client's, so a long poll is never cut short by the client.
    /// Elements without an `update_id` cannot be confirmed and are dropped.
    pub async fn get_updates(&self, request: &GetUpdates) -> Result<Vec<Update>, ApiError> {
        let wait = Duration::from_secs(u64::from(request.timeout.unwrap_or(0)));
        let raw: Vec<Value> = self
            .call("getUpdates", request, wait + self.timeout)
            .await?;
        Ok(raw
            .into_iter()
            .filter_map(|value| Update::from_value(value).ok())
            .collect())
    }

    /// Calls `method` with as much of the time left before `deadline` as
    /// the client's timeout allows; not at all when too little is left.
    async fn call_before<P, R>(
        &self,
        method: &'static str,
        params: &P,
        deadline: Option<Instant>,
    ) -> Result<R, ApiError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let timeout = match deadline {
            None => self.timeout,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left < MIN_REQUEST_TIME {
                    return Err(ApiError::NoTimeLeft { method });
                }
                left.min(self.timeout)
            }
        };
        self.call(method, params, timeout).await
    }

    /// Calls `method` with `params` as JSON and decodes Telegram's envelope.
    pub async fn call<P, R>(
        &self,
        method: &'static str,
        params: &P,
        timeout: Duration,
    ) -> Result<R, ApiError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let url = format!("{}/bot{}/{method}", self.base_url, self.token.expose());
        let started = Instant::now();
        let transport = |source: reqwest::Error| {
            let source = source.without_url();
            if source.is_timeout() {
                ApiError::Timeout {
                    method,
                    waited: started.elapsed(),
                }
            } else if source.is_connect() {
                ApiError::Connect { method, source }
            } else {
                ApiError::Transport { method, source }
            }
        };
        // Timed whole, the answer's body too, for the update's metrics.
        let exchange = async {
            let response = self
                .http
                .post(url)
                .timeout(timeout)
                .json(params)
                .send()
                .await
                .map_err(transport)?;
            let status = response.status().as_u16();
            let header_retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(retry_after_secs);
            let body = response.bytes().await.map_err(transport)?;
            Ok((status, header_retry_after, body))
        };
        let (status, header_retry_after, body) =
            crate::metrics::timed(crate::metrics::Call::BotApi, exchange).await?;
        tracing::debug!(
            method,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Bot API call"
        );
        decode(method, status, header_retry_after, &body)
    }
}
