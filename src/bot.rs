//! The bot's behaviour: what it answers to each update.
//!
//! This is the file to edit. The bot is a [`Handler`] in two steps:
//! [`Handler::gather`] looks up what an answer needs from outside (this
//! echo bot needs nothing), and [`Handler::handle`] is a pure function
//! from an update, what was gathered and the chat's [`State`] to the
//! actions to carry out and the chat's new state: no network, no clock, no
//! environment, so it is tested with plain unit tests, and the Lambda
//! function and the long-polling loop run it unchanged. The README's "Call
//! an API from your bot" shows a bot that gathers.

use crate::action::Action;
use crate::handler::{Context, Failed, Handler};
use crate::telegram::{
    AnswerCallbackQuery, CallbackData, CallbackQuery, ChatType, EditMessageText,
    InlineKeyboardButton, InlineKeyboardMarkup, Message, SendMessage, Update, UpdateKind,
};
use serde::{Deserialize, Serialize};

/// The commands the bot knows, as listed by `/help`.
pub const COMMANDS: &[(&str, &str)] = &[("start", "say hello"), ("help", "list the commands")];
/// The commands that need memory (a store), listed only when it has one.
pub const MEMORY_COMMANDS: &[(&str, &str)] = &[
    ("count", "how many messages this chat sent since /start"),
    ("counter", "a count you change with buttons"),
];

/// The update kinds this bot answers. setWebhook and getUpdates ask Telegram
/// for these only: fewer deliveries, fewer invocations, lower cost. Add a kind
/// here when `Bot::handle` learns to answer it.
pub const ALLOWED_UPDATES: &[&str] = &["message", "callback_query"];

/// What the bot remembers about one chat between updates, kept by the store
/// (see the README's section on memory). Give new fields
/// `#[serde(default)]`, so that state saved by an older version still loads.
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
    /// Whether a store keeps [`State`] between updates; without one every
    /// update starts from the default, and `/count` is not offered.
    memory: bool,
}

impl Handler for Bot {
    type State = State;
    /// The echo bot looks nothing up.
    type Gathered = ();

    async fn gather(&self, _: &Update, _: &State, _: &Context<'_>) -> Result<(), Failed> {
        Ok(())
    }

    /// The bot's answer to `update` from a chat whose state is `state`: the
    /// actions to carry out, in order (none when the update needs no
    /// answer), and the chat's state afterwards.
    fn handle(&self, update: &Update, _: &(), mut state: State) -> (Vec<Action>, State) {
        let actions = match &update.kind {
            UpdateKind::Message(message) => self
                .on_message(message, &mut state)
                .into_iter()
                .map(Action::Send)
                .collect(),
            UpdateKind::CallbackQuery(query) => self.on_press(query, &mut state),
            // Edits, channel posts and every other kind are accepted and
            // left unanswered.
            _ => Vec::new(),
        };
        (actions, state)
    }

    /// The answer to a button press, given at once, before the chat's
    /// state is read: so it depends on the press alone. The spinner stops;
    /// add `.with_text(...)` for a notification.
    fn answer_press(&self, query: &CallbackQuery) -> AnswerCallbackQuery {
        let answer = AnswerCallbackQuery::to(query);
        let data = query.data.as_deref();
        let counter = [COUNTER_UP, COUNTER_DOWN]
            .iter()
            .any(|button| Some(button.as_str()) == data);
        if !self.memory && counter {
            // A keyboard shown while a store kept the count: say why
            // nothing changes rather than ignore the press.
            return answer.with_text(COUNT_NOT_KEPT);
        }
        answer
    }

    fn state_is_kept(&mut self, kept: bool) {
        self.memory = kept;
    }
}

impl Bot {
    pub fn new(username: Option<String>) -> Self {
        let username = username
            .map(|u| u.trim().trim_start_matches('@').to_owned())
            .filter(|u| !u.is_empty());
        Bot {
            username,
            memory: false,
        }
    }

    /// Says whether a store keeps the chat's state between updates.
    pub fn keeping_state(mut self, kept: bool) -> Self {
        self.memory = kept;
        self
    }

    /// The commands to list in `/help` and the command menu.
    pub fn commands(&self) -> Vec<(&'static str, &'static str)> {
        let mut commands = COMMANDS.to_vec();
        if self.memory {
            commands.extend_from_slice(MEMORY_COMMANDS);
        }
        commands
    }

    /// What a press changes: the counter's buttons edit the count.
    fn on_press(&self, query: &CallbackQuery, state: &mut State) -> Vec<Action> {
        // Without memory the count cannot be kept; presses on an old
        // keyboard are only answered.
        let (true, Some(message)) = (self.memory, &query.message) else {
            return Vec::new();
        };
        let step = match query.data.as_deref() {
            Some(data) if data == COUNTER_UP.as_str() => 1,
            Some(data) if data == COUNTER_DOWN.as_str() => -1,
            _ => return Vec::new(),
        };
        state.counter = state.counter.saturating_add(step);
        vec![Action::Edit(EditMessageText {
            chat_id: message.chat.id,
            message_id: message.message_id,
            text: counter_text(state.counter),
            reply_markup: Some(counter_keyboard()),
        })]
    }

    fn on_message(&self, message: &Message, state: &mut State) -> Option<SendMessage> {
        state.messages = state.messages.saturating_add(1);
        let Some(text) = message.text.as_deref() else {
            // Photos, stickers, voice notes...: a hint in private chats only,
            // since in groups the bot would answer every picture.
            return (message.chat.kind == ChatType::Private)
                .then(|| SendMessage::reply_to(message, NOT_TEXT_HINT));
        };
        let reply = match Command::of(message) {
            Some(command) if !self.is_addressed_to_us(command.bot) => return None,
            Some(command) if command.name.eq_ignore_ascii_case("start") => {
                state.messages = 0;
                greeting(message)
            }
            Some(command) if command.name.eq_ignore_ascii_case("help") => self.help(),
            Some(command) if self.memory && command.name.eq_ignore_ascii_case("count") => {
                count(state.messages)
            }
            Some(command) if self.memory && command.name.eq_ignore_ascii_case("counter") => {
                return Some(
                    SendMessage::reply_to(message, counter_text(state.counter))
                        .with_keyboard(counter_keyboard()),
                );
            }
            _ => format!("You said: {text}"),
        };
        Some(SendMessage::reply_to(message, reply))
    }

    fn is_addressed_to_us(&self, bot: Option<&str>) -> bool {
        match (bot, &self.username) {
            (None, _) | (Some(_), None) => true,
            (Some(named), Some(ours)) => named.eq_ignore_ascii_case(ours),
        }
    }
}

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

impl Bot {
    fn help(&self) -> String {
        let mut text = String::from("I repeat any text you send me.\n\nCommands:");
        for (name, description) in self.commands() {
            text.push_str(&format!("\n/{name} - {description}"));
        }
        text
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

fn count(messages: u64) -> String {
    match messages {
        1 => "This chat has sent 1 message since /start.".to_owned(),
        n => format!("This chat has sent {n} messages since /start."),
    }
}

/// A bot command at the start of a message: `/name`, `/name args` or
/// `/name@bot args`, following the Bot API's rules for names (1-32 Latin
/// letters, digits and underscores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    pub name: &'a str,
    /// The bot the command names after `@`, if any.
    pub bot: Option<&'a str>,
    /// The rest of the text, without the whitespace after the command.
    pub args: &'a str,
}

impl<'a> Command<'a> {
    /// The command `message` starts with, where Telegram's `bot_command`
    /// entity at offset 0 says it ends: `/help,` is `/help`, and
    /// `/start@OtherBot!` names the other bot. A message whose update has no
    /// entities (one made by hand) is read with [`Command::parse`].
    pub fn of(message: &'a Message) -> Option<Self> {
        if message.entities.is_none() {
            return Command::parse(message.text.as_deref()?);
        }
        let (command, rest) = message.entity_at("bot_command", 0)?;
        let parsed = Command::parse(command)?;
        Some(Command {
            args: rest.trim_start(),
            ..parsed
        })
    }

    /// A command at the start of `text` by the Bot API's rules, up to the
    /// first whitespace.
    pub fn parse(text: &'a str) -> Option<Self> {
        let rest = text.strip_prefix('/')?;
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, args) = rest.split_at(end);
        let (name, bot) = match word.split_once('@') {
            Some((name, bot)) => (name, Some(bot)),
            None => (word, None),
        };
        let valid_name = (1..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let valid_bot = bot.is_none_or(|b| {
            !b.is_empty() && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        });
        (valid_name && valid_bot).then(|| Command {
            name,
            bot,
            args: args.trim_start(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::{ChatId, MessageId, ReplyParameters, ThreadId, Update};
    use serde_json::json;

    #[test]
    fn the_command_menu_follows_telegrams_rules_and_matches_help() {
        use crate::telegram::BotCommand;
        for memory in [false, true] {
            let bot = Bot::default().keeping_state(memory);
            let menu = BotCommand::menu(&bot.commands()).expect("valid for setMyCommands");
            let help: String = replies(&bot, &private_text("/help"))
                .iter()
                .map(|m| m.text.clone())
                .collect();
            for entry in &menu {
                assert!(help.contains(&format!("/{}", entry.command)), "{help}");
            }
            let counter = menu.iter().any(|c| c.command == "counter");
            assert_eq!(counter, memory, "/counter only with a store");
            assert_eq!(help.contains("/counter"), memory, "{help}");
        }
    }

    fn update(message: serde_json::Value) -> Update {
        Update::from_value(json!({"update_id": 1, "message": message})).unwrap()
    }

    fn private_text(text: &str) -> Update {
        update(json!({
            "message_id": 7, "date": 1,
            "from": {"id": 42, "is_bot": false, "first_name": "Ali"},
            "chat": {"id": 42, "type": "private"},
            "text": text
        }))
    }

    fn group_text(text: &str) -> Update {
        update(json!({
            "message_id": 8, "date": 1,
            "from": {"id": 42, "is_bot": false, "first_name": "Ali"},
            "chat": {"id": -100_123, "type": "supergroup", "title": "G"},
            "text": text
        }))
    }

    fn bot() -> Bot {
        Bot::new(Some("@EchoLambdaBot".to_owned()))
    }

    /// The messages `bot` sends for `update`; the echo bot only sends.
    fn replies(bot: &Bot, update: &Update) -> Vec<SendMessage> {
        let (actions, _state) = bot.handle(update, &(), State::default());
        actions
            .into_iter()
            .map(|action| match action {
                Action::Send(message) => message,
                other => panic!("the echo bot only sends messages: {other:?}"),
            })
            .collect()
    }

    fn texts(replies: &[SendMessage]) -> Vec<&str> {
        replies.iter().map(|r| r.text.as_str()).collect()
    }

    #[test]
    fn start_greets_the_user_by_name() {
        let replies = replies(&bot(), &private_text("/start"));
        assert_eq!(
            texts(&replies),
            ["Hello, Ali! I echo what you write. Send /help to see what I can do."]
        );
    }

    #[test]
    fn help_lists_every_command() {
        let replies = replies(&bot(), &private_text("/help"));
        assert_eq!(
            texts(&replies),
            ["I repeat any text you send me.\n\nCommands:\n/start - say hello\n/help - list the commands"]
        );
    }

    #[test]
    fn other_text_is_echoed_as_a_reply_that_survives_deletion() {
        let replies = replies(&bot(), &private_text("Hi!"));
        assert_eq!(
            replies,
            [SendMessage {
                chat_id: ChatId(42),
                text: "You said: Hi!".to_owned(),
                message_thread_id: None,
                reply_parameters: Some(ReplyParameters {
                    message_id: MessageId(7),
                    allow_sending_without_reply: true
                }),
                reply_markup: None,
            }]
        );
    }

    /// The texts of the replies to `texts`, sent one after the other, each
    /// on the state the one before left.
    fn conversation(bot: &Bot, texts: &[&str]) -> Vec<String> {
        let mut state = State::default();
        let mut said = Vec::new();
        for text in texts {
            let (actions, next) = bot.handle(&private_text(text), &(), state);
            state = next;
            for action in actions {
                if let Action::Send(message) = action {
                    said.push(message.text);
                }
            }
        }
        said
    }

    #[test]
    fn count_says_how_many_messages_the_chat_sent_since_start() {
        let bot = bot().keeping_state(true);
        let said = conversation(&bot, &["hi", "/start", "one", "two", "/count"]);
        assert_eq!(said[4], "This chat has sent 3 messages since /start.");
        let said = conversation(&bot, &["/start", "/count"]);
        assert_eq!(said[1], "This chat has sent 1 message since /start.");
    }

    #[test]
    fn count_is_offered_only_with_memory() {
        let with = conversation(&bot().keeping_state(true), &["/help"]);
        assert!(with[0].contains("/count - "), "{with:?}");
        let without = conversation(&bot(), &["/help", "/count"]);
        assert!(!without[0].contains("/count"), "{without:?}");
        assert_eq!(
            without[1], "You said: /count",
            "an unknown command is echoed"
        );
    }

    fn press(data: &str, from: i64) -> Update {
        Update::from_value(json!({"update_id": 9, "callback_query": {
            "id": "q1", "chat_instance": "c",
            "from": {"id": from, "is_bot": false, "first_name": "Bo"},
            "message": {"message_id": 50, "date": 1, "chat": {"id": -100_123, "type": "supergroup"},
                        "text": "Count: 0"},
            "data": data
        }}))
        .unwrap()
    }

    #[test]
    fn counter_shows_the_count_with_two_buttons() {
        let bot = bot().keeping_state(true);
        let state = State {
            counter: 7,
            ..State::default()
        };
        let (actions, _) = bot.handle(&group_text("/counter"), &(), state);
        let [Action::Send(message)] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        assert_eq!(message.text, "Count: 7");
        let keyboard = message.reply_markup.as_ref().unwrap();
        let data: Vec<&str> = keyboard.inline_keyboard[0]
            .iter()
            .map(|b| b.callback_data.as_ref().unwrap().as_str())
            .collect();
        assert_eq!(data, ["counter:-1", "counter:+1"]);
    }

    #[test]
    fn a_press_edits_the_count_and_keeps_the_buttons() {
        let bot = bot().keeping_state(true);
        let (actions, state) = bot.handle(&press("counter:+1", 1), &(), State::default());
        assert_eq!(state.counter, 1);
        let [Action::Edit(edit)] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        assert_eq!((edit.message_id.0, edit.text.as_str()), (50, "Count: 1"));
        assert!(edit.reply_markup.is_some());
        let (_, state) = bot.handle(&press("counter:-1", 2), &(), state);
        let (_, state) = bot.handle(&press("counter:-1", 2), &(), state);
        assert_eq!(state.counter, -1);
    }

    #[test]
    fn a_press_is_answered_without_looking_at_the_state() {
        let bot = bot().keeping_state(true);
        let UpdateKind::CallbackQuery(query) = &press("counter:+1", 1).kind else {
            unreachable!()
        };
        assert_eq!(bot.answer_press(query).callback_query_id, "q1");
        // Unknown data, or no memory: answered, nothing else.
        assert!(bot
            .handle(&press("other", 1), &(), State::default())
            .0
            .is_empty());
        assert!(super::Bot::new(None)
            .handle(&press("counter:+1", 1), &(), State::default())
            .0
            .is_empty());
        // Without a store the spinner stops with a word on why.
        let answer = Bot::new(None).answer_press(query);
        assert_eq!(answer.text.as_deref(), Some(COUNT_NOT_KEPT));
        assert_eq!(bot.answer_press(query).text, None);
    }

    #[test]
    fn counter_is_offered_only_with_memory() {
        let with = conversation(&bot().keeping_state(true), &["/help"]);
        assert!(with[0].contains("/counter - "), "{with:?}");
        let without = conversation(&bot(), &["/help", "/counter"]);
        assert!(!without[0].contains("/counter"));
        assert_eq!(without[1], "You said: /counter");
    }

    #[test]
    fn callback_data_is_one_to_64_bytes() {
        assert!(CallbackData::parse("x".repeat(64)).is_ok());
        assert_eq!(
            CallbackData::parse("x".repeat(65)),
            Err(crate::telegram::CallbackDataError(65))
        );
        assert!(CallbackData::parse("").is_err());
        let json = serde_json::to_value(counter_keyboard()).unwrap();
        assert_eq!(json["inline_keyboard"][0][1]["callback_data"], "counter:+1");
        assert!(serde_json::from_value::<CallbackData>(json!("x".repeat(65))).is_err());
    }

    #[test]
    fn the_echo_is_the_same_with_memory_and_without() {
        let texts = ["hello", "/start", "/nope", "again"];
        let with = conversation(&bot().keeping_state(true), &texts);
        let without = conversation(&bot(), &texts);
        assert_eq!(with, without);
    }

    #[test]
    fn commands_for_this_bot_match_its_username_in_any_case() {
        assert_eq!(replies(&bot(), &group_text("/help@echolambdabot")).len(), 1);
        assert_eq!(
            replies(&bot(), &group_text("/start@EchoLambdaBot now")).len(),
            1
        );
    }

    #[test]
    fn commands_for_another_bot_are_ignored() {
        assert!(replies(&bot(), &group_text("/start@OtherBot")).is_empty());
        assert!(replies(&bot(), &group_text("/whatever@OtherBot hi")).is_empty());
    }

    #[test]
    fn unknown_commands_and_slash_text_are_echoed() {
        assert_eq!(
            texts(&replies(&bot(), &private_text("/nope"))),
            ["You said: /nope"]
        );
        assert_eq!(texts(&replies(&bot(), &private_text("/"))), ["You said: /"]);
        assert_eq!(
            texts(&replies(&bot(), &private_text("/путь домой"))),
            ["You said: /путь домой"]
        );
    }

    #[test]
    fn command_parsing_follows_the_bot_api_rules() {
        assert_eq!(
            Command::parse("/start@Bot  a b"),
            Some(Command {
                name: "start",
                bot: Some("Bot"),
                args: "a b"
            })
        );
        assert_eq!(
            Command::parse("/help\nmore"),
            Some(Command {
                name: "help",
                bot: None,
                args: "more"
            })
        );
        assert_eq!(Command::parse("start"), None);
        assert_eq!(Command::parse("/start@"), None);
        assert_eq!(Command::parse(&format!("/{}", "a".repeat(33))), None);
    }

    #[test]
    fn replies_in_a_forum_topic_stay_in_the_topic() {
        let replies = replies(
            &bot(),
            &update(json!({
                "message_id": 9, "date": 1, "message_thread_id": 77, "is_topic_message": true,
                "chat": {"id": -1005, "type": "supergroup", "is_forum": true},
                "text": "in a topic"
            })),
        );
        assert_eq!(replies[0].message_thread_id, Some(ThreadId(77)));
    }

    #[test]
    fn a_reply_thread_outside_forums_is_not_a_topic() {
        let replies = replies(
            &bot(),
            &update(json!({
                "message_id": 9, "date": 1, "message_thread_id": 3,
                "chat": {"id": -1005, "type": "supergroup"},
                "text": "a reply"
            })),
        );
        assert_eq!(replies[0].message_thread_id, None);
    }

    #[test]
    fn echoing_a_full_length_emoji_message_stays_within_the_limit() {
        let text = "👍".repeat(2048); // 4096 UTF-16 units
        let replies = replies(&bot(), &private_text(&text));
        assert!(replies[0].text.encode_utf16().count() <= 4096);
        assert!(replies[0].text.starts_with("You said: 👍"));
    }

    #[test]
    fn media_gets_a_hint_in_private_and_silence_in_groups() {
        let photo = |chat: serde_json::Value| {
            update(json!({"message_id": 3, "date": 1, "chat": chat,
                          "photo": [{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}]}))
        };
        assert_eq!(
            texts(&replies(
                &bot(),
                &photo(json!({"id": 1, "type": "private"}))
            )),
            [NOT_TEXT_HINT]
        );
        assert!(replies(&bot(), &photo(json!({"id": -1, "type": "group"}))).is_empty());
    }

    #[test]
    fn other_update_kinds_are_accepted_and_ignored() {
        for kind in ["edited_message", "channel_post", "my_chat_member", "poll"] {
            let update = Update::from_value(json!({"update_id": 5, kind: {
                "message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}, "text": "x"
            }}))
            .unwrap();
            assert!(replies(&bot(), &update).is_empty(), "{kind}");
        }
    }

    fn with_command(text: &str, length: usize) -> Update {
        update(json!({
            "message_id": 8, "date": 1,
            "from": {"id": 42, "is_bot": false, "first_name": "Ali"},
            "chat": {"id": -100_123, "type": "supergroup", "title": "G"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": length}]
        }))
    }

    #[test]
    fn a_command_ends_where_telegrams_entity_ends() {
        assert_eq!(
            texts(&replies(&bot(), &with_command("/help, please", 5))),
            [bot().help()]
        );
        assert!(replies(&bot(), &with_command("/start@OtherBot!", 15)).is_empty());
        assert_eq!(
            texts(&replies(
                &bot(),
                &with_command("/start@EchoLambdaBot: hi", 20)
            )),
            ["Hello, Ali! I echo what you write. Send /help to see what I can do."]
        );
    }

    #[test]
    fn text_that_telegram_did_not_mark_as_a_command_is_echoed() {
        // Entities, but none a bot_command at the start: "/" in the middle of
        // a word, or a path.
        let update = update(json!({
            "message_id": 8, "date": 1,
            "chat": {"id": 42, "type": "private"},
            "text": "/start is what I typed",
            "entities": [{"type": "bold", "offset": 0, "length": 6}]
        }));
        assert_eq!(
            texts(&replies(&bot(), &update)),
            ["You said: /start is what I typed"]
        );
    }

    #[test]
    fn without_a_username_commands_naming_a_bot_are_taken_as_ours() {
        assert_eq!(replies(&Bot::new(None), &group_text("/help@Any")).len(), 1);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// The entities Telegram sends with `text`: a `bot_command` where a
        /// command starts it (`/`, name characters, optionally `@` and a
        /// username), after a bold first character.
        fn entities(text: &str) -> serde_json::Value {
            let word = |s: &str| {
                s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(s.len())
            };
            let mut entities = vec![json!({"type": "bold", "offset": 0, "length": 1})];
            if let Some(rest) = text.strip_prefix('/') {
                let mut end = word(rest);
                if end > 0 {
                    if let Some(bot) = rest[end..].strip_prefix('@') {
                        let bot_end = word(bot);
                        if bot_end > 0 {
                            end += 1 + bot_end;
                        }
                    }
                    entities.push(json!({"type": "bot_command", "offset": 0, "length": 1 + end}));
                }
            }
            json!(entities)
        }

        fn message(text: &str, chat_type: &str, thread: Option<i64>) -> Update {
            let mut message = json!({
                "message_id": 77, "date": 1,
                "from": {"id": 5, "is_bot": false, "first_name": "Ali"},
                "chat": {"id": -1_001_234_567_890_i64, "type": chat_type},
                "text": text,
                "entities": entities(text)
            });
            if let Some(thread) = thread {
                message["message_thread_id"] = json!(thread);
                message["is_topic_message"] = json!(true);
            }
            update(message)
        }

        fn command_name() -> impl Strategy<Value = String> {
            "[A-Za-z0-9_]{1,32}"
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn every_reply_is_valid_for_telegram(
                text in any::<String>().prop_filter("Telegram sends non-empty text", |t| !t.is_empty()),
                long in proptest::collection::vec(any::<char>(), 4000..6000),
                chat_type in prop_oneof!["private", "group", "supergroup"],
                thread in proptest::option::of(1i64..1_000_000),
            ) {
                let long: String = long.into_iter().collect();
                for text in [text, long] {
                    let incoming = message(&text, &chat_type, thread);
                    for reply in replies(&bot(), &incoming) {
                        let units = reply.text.encode_utf16().count();
                        prop_assert!((1..=4096).contains(&units), "{} UTF-16 units", units);
                        prop_assert!(!reply.text.trim().is_empty());
                        prop_assert_eq!(reply.chat_id, ChatId(-1_001_234_567_890));
                        prop_assert_eq!(reply.message_thread_id, thread.map(ThreadId));
                        let quoted = reply.reply_parameters.as_ref().map(|r| (r.message_id, r.allow_sending_without_reply));
                        prop_assert_eq!(quoted, Some((MessageId(77), true)));
                    }
                }
            }

            #[test]
            fn commands_parse_as_the_bot_api_defines_them(
                name in command_name(),
                target in proptest::option::of(command_name()),
                separator in prop_oneof![" ", "\n", "\t", "  "],
                args in "[^\\s].{0,40}",
            ) {
                let text = match &target {
                    Some(bot) => format!("/{name}@{bot}{separator}{args}"),
                    None => format!("/{name}{separator}{args}"),
                };
                let command = Command::parse(&text);
                prop_assert_eq!(command, Some(Command { name: &name, bot: target.as_deref(), args: args.as_str() }));
            }

            #[test]
            fn names_outside_the_rules_are_not_commands(
                name in "[A-Za-z0-9_]{33,40}|[A-Za-z0-9_]{0,5}[^A-Za-z0-9_@\\s][A-Za-z0-9_]{0,5}",
            ) {
                let text = format!("/{name}");
                prop_assert_eq!(Command::parse(&text), None);
            }

            #[test]
            fn commands_for_another_bot_get_no_reply(
                name in command_name(),
                other in command_name().prop_filter("another bot", |b| !b.eq_ignore_ascii_case("EchoLambdaBot")),
            ) {
                let incoming = message(&format!("/{name}@{other} x"), "supergroup", None);
                prop_assert!(replies(&bot(), &incoming).is_empty());
            }

            #[test]
            fn commands_for_this_bot_always_get_a_reply(
                name in command_name(),
                username in "(?i)echolambdabot",
            ) {
                let incoming = message(&format!("/{name}@{username}"), "group", None);
                prop_assert_eq!(replies(&bot(), &incoming).len(), 1);
            }
        }
    }
}
