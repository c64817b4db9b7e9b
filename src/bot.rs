//! The bot's behaviour: what it answers to each update. This is the file
//! to edit.
//!
//! The bot is a [`Handler`] in two steps. [`Handler::gather`] looks up
//! what an answer needs from outside (this echo bot needs nothing; the
//! README's "Call an API from your bot" shows one that does).
//! [`Handler::handle`] is pure: from the update, what was gathered and the
//! chat's [`State`] to the actions to carry out and the chat's new state.
//! No network, no clock, no environment, so it is tested with plain unit
//! tests (in `bot/tests.rs`), and the Lambda function and the long-polling
//! loop run it unchanged.

use crate::action::Action;
use crate::assistant::{Answer, Assistant};
use crate::config::Config;
use crate::handler::{Context, Failed, Handler};
use crate::telegram::{
    AnswerCallbackQuery, CallbackData, CallbackQuery, ChatType, Command, EditMessageText,
    InlineKeyboardButton, InlineKeyboardMarkup, Message, SendMessage, Update, UpdateKind,
};
use serde::{Deserialize, Serialize};

/// The commands the bot knows, as listed by `/help` and the command menu.
pub const COMMANDS: &[(&str, &str)] = &[("start", "say hello"), ("help", "list the commands")];
/// The commands that need a store, listed only when there is one.
pub const MEMORY_COMMANDS: &[(&str, &str)] = &[
    ("count", "how many messages this chat sent since /start"),
    ("counter", "a count you change with buttons"),
];

/// The command that asks the assistant, listed only when it is on.
pub const ASSISTANT_COMMANDS: &[(&str, &str)] = &[
    ("ask", "ask the assistant a question"),
    ("reset", "make the assistant forget this conversation"),
];

/// The update kinds this bot answers. setWebhook and getUpdates ask Telegram
/// for these only: fewer deliveries, fewer invocations, lower cost. Add a
/// kind here when the bot learns to answer it.
pub const ALLOWED_UPDATES: &[&str] = &["message", "callback_query"];

/// What the bot remembers about one chat between updates (see the README's
/// "Memory and exactly-once"). Give new fields `#[serde(default)]`, so that
/// state saved by an older version still loads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Messages the chat sent since its last /start (or since the bot first
    /// saw it), that one included.
    #[serde(default)]
    pub messages: u64,
    /// The count `/counter` shows and its buttons change.
    #[serde(default)]
    pub counter: i64,
}

/// What the counter's buttons send back.
const COUNTER_DOWN: CallbackData = CallbackData::new("counter:-1");
const COUNTER_UP: CallbackData = CallbackData::new("counter:+1");

/// The bot. Holds what its answers depend on besides the update.
#[derive(Debug, Clone, Default)]
pub struct Bot {
    /// The bot's username without `@`, to tell `/cmd@ThisBot` from
    /// `/cmd@OtherBot`. Without it, a command naming any bot is taken as ours.
    username: Option<String>,
    /// Whether a store keeps [`State`] between updates (and instances);
    /// without one `/count` and `/counter` are not offered.
    state_kept: bool,
    /// The language model `/ask` (and plain text in private chats) goes to,
    /// when `ASSISTANT_MODEL` is set (README, "An AI assistant").
    assistant: Option<Assistant>,
}

impl Handler for Bot {
    type State = State;
    /// The assistant's answer, when the update asked it something; the
    /// echo looks nothing up.
    type Gathered = Option<Answer>;

    async fn gather(
        &self,
        update: &Update,
        _: &State,
        cx: &Context<'_>,
    ) -> Result<Option<Answer>, Failed> {
        let Some(assistant) = &self.assistant else {
            return Ok(None);
        };
        if self.is_reset(update) {
            assistant.forget(cx).await?;
            return Ok(None);
        }
        match self.question(update) {
            Some((message, question)) => assistant.answer(cx, message, question).await.map(Some),
            None => Ok(None),
        }
    }

    fn handle(
        &self,
        update: &Update,
        answer: &Option<Answer>,
        mut state: State,
    ) -> (Vec<Action>, State) {
        let actions = match (&update.kind, answer) {
            (UpdateKind::Message(message), Some(answer)) => {
                state.messages = state.messages.saturating_add(1);
                answer.replies(message)
            }
            (UpdateKind::Message(message), None) => self.on_message(message, &mut state),
            (UpdateKind::CallbackQuery(query), _) => self.on_press(query, &mut state),
            // Edits, channel posts and every other kind are accepted and
            // left unanswered.
            _ => Vec::new(),
        };
        (actions, state)
    }

    /// Every press is answered at once (the spinner stops); add
    /// `.with_text(...)` for a notification.
    fn answer_press(&self, query: &CallbackQuery) -> AnswerCallbackQuery {
        let answer = AnswerCallbackQuery::to(query);
        if !self.state_kept && is_counter(query) {
            // A keyboard shown while a store kept the count: say why
            // nothing changes rather than ignore the press.
            return answer.with_text(COUNT_NOT_KEPT);
        }
        answer
    }

    /// A question to the assistant takes seconds: with the queue on
    /// (README, "Slow work off the webhook"), the worker answers it.
    fn is_slow(&self, update: &Update, _: &State) -> bool {
        self.question(update).is_some()
    }

    fn state_is_kept(&mut self, kept: bool) {
        self.state_kept = kept;
    }
}

impl Bot {
    /// What a message gets: a reply, or none.
    fn on_message(&self, message: &Message, state: &mut State) -> Vec<Action> {
        state.messages = state.messages.saturating_add(1);
        let Some(text) = message.text.as_deref() else {
            // Photos, stickers, voice notes...: a hint in private chats only,
            // since in groups the bot would answer every picture.
            if message.chat.kind == ChatType::Private {
                return vec![SendMessage::reply_to(message, NOT_TEXT_HINT).into()];
            }
            return Vec::new();
        };
        let reply = match Command::of(message) {
            Some(command) if !command.is_for(self.username.as_deref()) => return Vec::new(),
            Some(command) if command.is("start") => {
                state.messages = 0;
                greeting(message)
            }
            Some(command) if command.is("help") => self.help(),
            // `/ask` with a question went to the assistant; without one:
            Some(command) if self.assistant.is_some() && command.is("ask") => ASK_HOW.to_owned(),
            // The look-up forgot the conversation.
            Some(command) if self.assistant.is_some() && command.is("reset") => FORGOT.to_owned(),
            Some(command) if self.state_kept && command.is("count") => count(state.messages),
            Some(command) if self.state_kept && command.is("counter") => {
                let counter = SendMessage::reply_to(message, counter_text(state.counter))
                    .with_keyboard(counter_keyboard());
                return vec![counter.into()];
            }
            _ => format!("You said: {text}"),
        };
        vec![SendMessage::reply_to(message, reply).into()]
    }

    /// What a press changes: the counter's buttons edit the count.
    fn on_press(&self, query: &CallbackQuery, state: &mut State) -> Vec<Action> {
        // Without a store the count is not kept: the press is only answered.
        let (true, Some(message)) = (self.state_kept, &query.message) else {
            return Vec::new();
        };
        let step = match query.data.as_deref() {
            Some(data) if data == COUNTER_UP.as_str() => 1,
            Some(data) if data == COUNTER_DOWN.as_str() => -1,
            _ => return Vec::new(),
        };
        state.counter = state.counter.saturating_add(step);
        let edit = EditMessageText::of(message, counter_text(state.counter))
            .with_keyboard(counter_keyboard());
        vec![edit.into()]
    }

    /// Whether `update` is `/reset` for this bot.
    fn is_reset(&self, update: &Update) -> bool {
        let UpdateKind::Message(message) = &update.kind else {
            return false;
        };
        Command::of(message).is_some_and(|c| c.is("reset") && c.is_for(self.username.as_deref()))
    }

    /// What `update` asks the assistant, when it is on: the words after
    /// `/ask`, or, in a private chat, any text that is not a command.
    fn question<'u>(&self, update: &'u Update) -> Option<(&'u Message, &'u str)> {
        self.assistant.as_ref()?;
        let UpdateKind::Message(message) = &update.kind else {
            return None;
        };
        let text = message.text.as_deref()?;
        let question = match Command::of(message) {
            Some(command) if command.is("ask") && command.is_for(self.username.as_deref()) => {
                command.args
            }
            Some(_) => return None,
            None if message.chat.kind == ChatType::Private => text,
            None => return None,
        };
        let question = question.trim();
        (!question.is_empty()).then_some((message, question))
    }

    fn help(&self) -> String {
        let intro = match self.assistant {
            Some(_) => "I answer questions with a language model: send /ask and your question (in a private chat, just the question).",
            None => "I repeat any text you send me.",
        };
        let mut text = format!("{intro}\n\nCommands:");
        for (name, description) in self.commands() {
            text.push_str(&format!("\n/{name} - {description}"));
        }
        text
    }
}

const FORGOT: &str = "I have forgotten our conversation: the next question starts afresh.";

const ASK_HOW: &str = "Ask me something after the command, for example: /ask What is a webhook?";

const COUNT_NOT_KEPT: &str = "This bot keeps no count now: its store is off.";

const NOT_TEXT_HINT: &str = "I can only read text for now. Send me a message, or /help.";

fn greeting(message: &Message) -> String {
    match message.from.as_ref().map(|u| u.first_name.as_str()) {
        Some(name) if !name.is_empty() => {
            format!("Hello, {name}! I echo what you write. Send /help to see what I can do.")
        }
        _ => "Hello! I echo what you write. Send /help to see what I can do.".to_owned(),
    }
}

fn count(messages: u64) -> String {
    match messages {
        1 => "This chat has sent 1 message since /start.".to_owned(),
        n => format!("This chat has sent {n} messages since /start."),
    }
}

fn counter_text(count: i64) -> String {
    format!("Count: {count}")
}

fn counter_keyboard() -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::row([
        InlineKeyboardButton::callback("−1", COUNTER_DOWN),
        InlineKeyboardButton::callback("+1", COUNTER_UP),
    ])
}

fn is_counter(query: &CallbackQuery) -> bool {
    let data = query.data.as_deref();
    [COUNTER_UP, COUNTER_DOWN]
        .iter()
        .any(|button| Some(button.as_str()) == data)
}

/// Building the bot, and what the shells ask of it besides answering.
impl Bot {
    /// The bot as its configuration makes it, once at cold start. A bot
    /// that declares `SECRETS` in its `Handler` reads them here:
    /// `config.secrets.get("NAME")`.
    pub fn from_config(config: &Config) -> Self {
        let mut bot = Bot::new(config.bot_username.clone());
        bot.assistant = config.assistant.as_ref().map(Assistant::new);
        bot
    }

    /// With `assistant` answering `/ask` (tests, `bot chat --assistant`).
    pub fn with_assistant(mut self, assistant: Assistant) -> Self {
        self.assistant = Some(assistant);
        self
    }

    pub fn new(username: Option<String>) -> Self {
        let username = username
            .map(|u| u.trim().trim_start_matches('@').to_owned())
            .filter(|u| !u.is_empty());
        Bot {
            username,
            state_kept: false,
            assistant: None,
        }
    }

    /// Says whether a store keeps the chat's state between updates.
    pub fn keeping_state(mut self, kept: bool) -> Self {
        self.state_kept = kept;
        self
    }

    /// The commands to list in `/help` and the command menu.
    pub fn commands(&self) -> Vec<(&'static str, &'static str)> {
        let mut commands = COMMANDS.to_vec();
        if self.assistant.is_some() {
            commands.extend_from_slice(ASSISTANT_COMMANDS);
        }
        if self.state_kept {
            commands.extend_from_slice(MEMORY_COMMANDS);
        }
        commands
    }
}

#[cfg(test)]
mod tests;
