//! What a bot is, to the machinery that runs it: a [`Handler`] in two
//! steps, the [`Context`] its outside calls get, and how they fail
//! ([`Failed`]).
//!
//! The contract (the README's "Call an API from your bot" says the same):
//! - [`Handler::gather`] is async and may call outside services; it sees
//!   the update and the chat's state as read, and changes nothing. It runs
//!   at most once per delivery of an update.
//! - [`Handler::handle`] is pure: from the state and what was gathered to
//!   the actions and the new state. When another update of the chat wrote
//!   the chat's record meanwhile, only this step runs again, on the new
//!   state, with the same gathered value.
//! - Telegram actions are carried out exactly once (the outbox). Outside
//!   calls are at least once across deliveries: an update delivered again
//!   after a failure gathers again. [`Context::idempotency_key`] names the
//!   update for services that can drop a repeat.
//! - While `gather` runs past its first await, the update holds a lease in
//!   the chat's record (one write more, only for updates that wait on
//!   something): a delivery that arrives meanwhile gets 503 with a
//!   Retry-After, not a second run.

use crate::action::Action;
use crate::client::ApiError;
use crate::client::BotApi;
use crate::telegram::{
    CallbackQuery, ChatType, SendChatAction, SendMessage, SendMessageDraft, Update, UpdateKind,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// An error from an outside call, as the author's code has it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A bot: what it remembers per chat, what it looks up, and what it
/// answers. `src/bot.rs` holds the one this template deploys.
pub trait Handler: Send + Sync + 'static {
    /// What the bot remembers about one chat between updates.
    type State: Serialize + DeserializeOwned + Default + Clone + PartialEq + Send + Sync;
    /// What [`Handler::gather`] brings back for [`Handler::handle`].
    type Gathered: Send + Sync;

    /// The bot's own secrets and settings (an API key, a service's URL), by
    /// name: read at cold start into [`crate::config::Config::secrets`],
    /// from the environment in local runs and from the stack's one
    /// SecureString parameter on Lambda (`scripts/deploy --secret NAME`),
    /// in the request that reads the token. A declared name found in
    /// neither stops the start with an error naming it.
    const SECRETS: &'static [&'static str] = &[];

    /// Looks up what answering `update` needs from outside (a web API, a
    /// language model), with `state` as read. No change to the state here:
    /// it returns a value for [`Handler::handle`]. A bot that calls nothing
    /// returns at once, and costs nothing more.
    fn gather(
        &self,
        update: &Update,
        state: &Self::State,
        cx: &Context<'_>,
    ) -> impl Future<Output = Result<Self::Gathered, Failed>> + Send;

    /// The answer: the actions to carry out, in order, and the chat's new
    /// state. Pure: no I/O, no clock, so it may run more than once.
    fn handle(
        &self,
        update: &Update,
        gathered: &Self::Gathered,
        state: Self::State,
    ) -> (Vec<Action>, Self::State);

    /// The answer to a button press, given at once, before the chat's state
    /// is read: so it depends on the press alone.
    fn answer_press(&self, query: &CallbackQuery) -> crate::telegram::AnswerCallbackQuery {
        crate::telegram::AnswerCallbackQuery::to(query)
    }

    /// What the user is told when the bot gives an update up (a
    /// [`Failed::give_up`] without words of its own, or a
    /// [`Failed::retry_later`] past [`RETRY_LATER_LIMIT`]).
    fn gave_up(&self, update: &Update) -> Vec<Action> {
        telling(update, GAVE_UP)
    }

    /// Whether answering `update` may take long (a language model, a slow
    /// service): with a queue configured (`BOT_QUEUE_URL`, the stack's
    /// `Queue` parameter) the webhook defers it to the worker instead of
    /// holding Telegram's connection meanwhile. Decided before any outside
    /// call, on the update and the chat's state as read. Button presses
    /// are never deferred, whatever this says.
    fn is_slow(&self, _update: &Update, _state: &Self::State) -> bool {
        false
    }

    /// Told at start-up whether the chat's state outlives the process (a
    /// table or a file), so that the bot offers what needs it only then.
    fn state_is_kept(&mut self, _kept: bool) {}
}

/// `text` as the answer to `update`: a reply to its message. A press was
/// answered before the look-up, and other kinds have no one to tell.
pub fn telling(update: &Update, text: &str) -> Vec<Action> {
    match &update.kind {
        UpdateKind::Message(message) => vec![Action::Send(SendMessage::reply_to(message, text))],
        _ => Vec::new(),
    }
}

/// A key naming `update` of the bot `bot_id`, the same on every delivery
/// and unique across Telegram's restarts of update ids: the bot's id, the
/// update's id, and its message's or press's id.
pub fn update_key(bot_id: &str, update: &Update) -> String {
    let item = match &update.kind {
        UpdateKind::Message(m)
        | UpdateKind::EditedMessage(m)
        | UpdateKind::ChannelPost(m)
        | UpdateKind::EditedChannelPost(m) => format!("{}.{}", m.chat.id.0, m.message_id.0),
        UpdateKind::CallbackQuery(query) => query.id.clone(),
        UpdateKind::Other { .. } => String::new(),
    };
    format!("{bot_id}:{}:{item}", update.id.0)
}

/// What a bot that gives up says, unless it says something else.
pub const GAVE_UP: &str =
    "Sorry, I could not answer that: a service I need is not answering. Please try again later.";

/// How long after a message's date a bot may keep asking for it again
/// ([`Failed::retry_later`]): past it the update is given up, so that one
/// broken outside service does not hold a chat for Telegram's full day.
pub const RETRY_LATER_LIMIT: Duration = Duration::from_secs(10 * 60);

/// Time kept back from a handler for what follows it: the store's write,
/// the replies and the store's last write.
pub const ANSWER_RESERVE: Duration = Duration::from_secs(3);

/// The longest a handler's look-up may take where nothing shorter limits
/// it (`bot poll`): the chat waits meanwhile. The worker's is its timeout.
pub const MAX_GATHER: Duration = Duration::from_secs(60);

/// Why a handler could not gather what it needs, sorted by what should
/// happen to the update.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    /// A failure that time may fix (a timeout, a 5xx, a 429): nothing is
    /// sent, Telegram delivers the update again (the chat waits meanwhile),
    /// up to [`RETRY_LATER_LIMIT`] after the message's date.
    #[error("an outside call failed; the update is to be tried again: {0}")]
    RetryLater(#[source] BoxError),
    /// A failure no retry fixes (a 4xx, an answer the bot cannot read): the
    /// update is acknowledged, and the user told `tell` (or
    /// [`Handler::gave_up`]'s words when `None`).
    #[error("an outside call failed; the update is given up: {source}")]
    GiveUp {
        #[source]
        source: BoxError,
        tell: Option<String>,
    },
    /// The bot's own configuration is wrong (a service refused its key):
    /// given up as [`Failed::GiveUp`] is, since no redelivery fixes it and a
    /// 500 would hold the chat at Telegram for a day, but logged at ERROR
    /// and counted as a configuration failure, which the errors alarm
    /// reports.
    #[error("an outside service refused the bot's configuration: {source}")]
    Misconfigured {
        #[source]
        source: BoxError,
        tell: Option<String>,
    },
}

impl Failed {
    pub fn retry_later(error: impl Into<BoxError>) -> Self {
        Failed::RetryLater(error.into())
    }

    pub fn give_up(error: impl Into<BoxError>) -> Self {
        Failed::GiveUp {
            source: error.into(),
            tell: None,
        }
    }

    pub fn misconfigured(error: impl Into<BoxError>) -> Self {
        Failed::Misconfigured {
            source: error.into(),
            tell: None,
        }
    }

    /// The same, telling the user `text` when the update is given up.
    pub fn telling(self, text: impl Into<String>) -> Self {
        let tell = Some(text.into());
        match self {
            Failed::Misconfigured { source, .. } => Failed::Misconfigured { source, tell },
            Failed::RetryLater(source) | Failed::GiveUp { source, .. } => {
                Failed::GiveUp { source, tell }
            }
        }
    }

    /// The words for the user, when the failure has its own.
    pub fn words(&self) -> Option<&str> {
        match self {
            Failed::GiveUp { tell, .. } | Failed::Misconfigured { tell, .. } => tell.as_deref(),
            Failed::RetryLater(_) => None,
        }
    }
}

/// A failed HTTP call, sorted: a timeout, a connection that failed, a 5xx
/// or a 429 is retried later; any other status, or a body that does not
/// decode, gives up. The URL is dropped from the error: an API key in a
/// query string must not reach a log line.
impl From<reqwest::Error> for Failed {
    fn from(error: reqwest::Error) -> Self {
        let retryable = error.is_timeout()
            || error.is_connect()
            || error.is_request()
            || error.is_body()
            || error
                .status()
                .is_some_and(|s| s.is_server_error() || s.as_u16() == 429);
        let error = error.without_url();
        if retryable {
            Failed::retry_later(error)
        } else {
            Failed::give_up(error)
        }
    }
}

/// A note that could not be read or written: a store that is throttled,
/// slow or unreachable is retried later; one that refuses (permissions, a
/// record it cannot read) gives up.
impl From<crate::store::StoreError> for Failed {
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match error {
            StoreError::Throttled(_)
            | StoreError::Timeout
            | StoreError::Unavailable(_)
            | StoreError::Conflict(_) => Failed::retry_later(error),
            _ => Failed::give_up(error),
        }
    }
}

/// What a handler's look-up gets: the process's HTTP client, the time it
/// has, and a way to show progress.
pub struct Context<'a> {
    api: &'a BotApi,
    update: &'a Update,
    deadline: Instant,
    memory: &'a crate::memory::Memory,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        api: &'a BotApi,
        update: &'a Update,
        deadline: Instant,
        memory: &'a crate::memory::Memory,
    ) -> Self {
        Context {
            api,
            update,
            deadline,
            memory,
        }
    }

    /// The chat's note `name`: a document of the bot's own (the
    /// assistant's conversation) kept in the bot's store apart from the
    /// chat's state, so that its size weighs on no other update's writes.
    /// Kept as long as the chat's record (`BOT_STATE_TTL_DAYS`); in the
    /// process's memory without a store. Reading and writing it is the
    /// handler's own I/O: at least once, last writer wins.
    pub async fn note(&self, name: &str) -> Result<Option<String>, crate::store::StoreError> {
        let note = self.memory.note(name, self.update);
        match tokio::time::timeout_at(self.deadline, note).await {
            Ok(note) => note,
            Err(_) => Err(crate::store::StoreError::Timeout),
        }
    }

    /// Keeps `note` as the chat's note `name`, replacing it whole.
    pub async fn keep_note(&self, name: &str, note: &str) -> Result<(), crate::store::StoreError> {
        let kept = self.memory.keep_note(name, self.update, note);
        match tokio::time::timeout_at(self.deadline, kept).await {
            Ok(kept) => kept,
            Err(_) => Err(crate::store::StoreError::Timeout),
        }
    }

    /// Forgets the chat's note `name`.
    pub async fn forget_note(&self, name: &str) -> Result<(), crate::store::StoreError> {
        let forgotten = self.memory.forget_note(name, self.update);
        match tokio::time::timeout_at(self.deadline, forgotten).await {
            Ok(forgotten) => forgotten,
            Err(_) => Err(crate::store::StoreError::Timeout),
        }
    }

    /// The process's one HTTP client (rustls, pooled: warm invocations
    /// reuse its connections). It follows no redirects. Give each request
    /// [`Context::timeout`].
    pub fn http(&self) -> &reqwest::Client {
        self.api.http()
    }

    /// A GET request with [`Context::timeout`] of the time left.
    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.http().get(url).timeout(self.time_left())
    }

    /// A POST request with [`Context::timeout`] of the time left.
    pub fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.http().post(url).timeout(self.time_left())
    }

    /// The time the look-up has left: the invocation's, less what sending
    /// the answer needs ([`ANSWER_RESERVE`]). Past it the look-up is cut and
    /// the update tried again later.
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// When the look-up's time ends ([`Context::time_left`] from now).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// `wanted`, or the time left when that is shorter: a per-call timeout
    /// that never outlasts the invocation.
    pub fn timeout(&self, wanted: Duration) -> Duration {
        wanted.min(self.time_left())
    }

    /// A key naming this update, the same on every delivery of it and
    /// unique across Telegram's restarts of update ids: the bot's id, the
    /// update's id and its message's or press's id.
    pub fn idempotency_key(&self) -> String {
        update_key(self.api.bot_id(), self.update)
    }

    /// Shows "typing..." in the update's chat for about 5 s, or until the
    /// bot's next message: progress that is not an answer. Best effort: a
    /// failure is logged at debug level and changes nothing.
    pub async fn typing(&self) {
        let Some(chat) = self.update.chat() else {
            return;
        };
        let thread = match &self.update.kind {
            UpdateKind::Message(message) => message.topic(),
            _ => None,
        };
        let action = SendChatAction::typing(chat.id, thread);
        if let Err(error) = self
            .api
            .send_chat_action(&action, Some(self.deadline))
            .await
        {
            tracing::debug!(error = %crate::error::Chain(&error), "could not show typing");
        }
    }
}

impl Context<'_> {
    /// Shows `text` as a draft of the answer in the update's chat
    /// (sendMessageDraft): a preview Telegram keeps for about 30 s, in
    /// private chats only. Progress, not an answer: the answer itself is
    /// an action. Drafts with the same non-zero `draft_id` replace each
    /// other. An error says why it was not shown (a 429's
    /// [`ApiError::retry_after`] says how long to wait); nothing is retried.
    pub async fn draft(&self, draft_id: i64, text: &str) -> Result<(), ApiError> {
        let message = match &self.update.kind {
            UpdateKind::Message(message) if message.chat.kind == ChatType::Private => message,
            _ => return Ok(()),
        };
        let draft = SendMessageDraft {
            chat_id: message.chat.id,
            draft_id,
            text: crate::telegram::truncate_to_limit(text.to_owned()),
            message_thread_id: message.topic(),
        };
        self.api
            .send_message_draft(&draft, Some(self.deadline))
            .await
            .map(|_| ())
    }
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("update", &self.update.id)
            .field("time_left", &self.time_left())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::FakeService;

    /// What a handler's `?` makes of a call to `path` on the service.
    async fn sorted(service: &FakeService, path: &str) -> Failed {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("{}{path}", service.base_url());
        let answer = async {
            let response = client
                .get(url)
                .timeout(Duration::from_millis(300))
                .send()
                .await?
                .error_for_status()?;
            response.json::<serde_json::Value>().await?;
            Ok::<(), Failed>(())
        };
        answer.await.unwrap_err()
    }

    #[tokio::test]
    async fn failed_calls_are_sorted_by_what_a_retry_can_fix() {
        let service = FakeService::start().await;
        service.fail_next(1, 503);
        let query = "/weather?city=Oslo&appid=key-9c1f";
        assert!(matches!(
            sorted(&service, query).await,
            Failed::RetryLater(_)
        ));
        service.fail_next(1, 429);
        assert!(matches!(
            sorted(&service, query).await,
            Failed::RetryLater(_)
        ));
        service.hang_next(1);
        assert!(matches!(
            sorted(&service, query).await,
            Failed::RetryLater(_)
        ));
        service.fail_next(1, 401);
        let refused = sorted(&service, query).await;
        assert!(matches!(refused, Failed::GiveUp { tell: None, .. }));
        service.bad_json_next(1);
        assert!(matches!(
            sorted(&service, query).await,
            Failed::GiveUp { .. }
        ));
        // No URL in the error, so no key from a query string in a log line.
        let shown = crate::error::Chain(&refused).to_string();
        assert!(
            !shown.contains("key-9c1f") && !shown.contains("127.0.0.1"),
            "{shown}"
        );
        // A service that is gone: the connection is refused.
        let gone = service.base_url();
        drop(service);
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let refused = client.get(gone).send().await.unwrap_err();
        assert!(matches!(Failed::from(refused), Failed::RetryLater(_)));
    }

    #[test]
    fn telling_keeps_the_cause_and_gives_up() {
        let failed = Failed::retry_later("the service is down").telling("Try later.");
        let Failed::GiveUp { source, tell } = failed else {
            panic!("a failure with words for the user is given up");
        };
        assert_eq!(source.to_string(), "the service is down");
        assert_eq!(tell.as_deref(), Some("Try later."));
    }
}
