//! The echo bot's tests: what it answers, with and without a store, and
//! properties every reply keeps.

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
    let (actions, _state) = bot.handle(update, &None, State::default());
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
        let (actions, next) = bot.handle(&private_text(text), &None, state);
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
    let (actions, _) = bot.handle(&group_text("/counter"), &None, state);
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
    let (actions, state) = bot.handle(&press("counter:+1", 1), &None, State::default());
    assert_eq!(state.counter, 1);
    let [Action::Edit(edit)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!((edit.message_id.0, edit.text.as_str()), (50, "Count: 1"));
    assert!(edit.reply_markup.is_some());
    let (_, state) = bot.handle(&press("counter:-1", 2), &None, state);
    let (_, state) = bot.handle(&press("counter:-1", 2), &None, state);
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
        .handle(&press("other", 1), &None, State::default())
        .0
        .is_empty());
    assert!(super::Bot::new(None)
        .handle(&press("counter:+1", 1), &None, State::default())
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

fn with_assistant() -> Bot {
    let config = crate::config::AssistantConfig {
        base_url: "http://127.0.0.1:9/v1".to_owned(),
        model: "m".to_owned(),
        api_key: "sk-unit".to_owned().into(),
    };
    bot().with_assistant(Assistant::new(&config))
}

#[test]
fn ask_is_offered_only_with_an_assistant() {
    for (bot, offered) in [(bot(), false), (with_assistant(), true)] {
        let menu = bot.commands();
        assert_eq!(menu.iter().any(|(c, _)| *c == "ask"), offered);
        let help = texts(&replies(&bot, &private_text("/help"))).concat();
        assert_eq!(help.contains("/ask"), offered, "{help}");
    }
    // Without one, /ask is text like any other.
    let echoed = replies(&bot(), &private_text("/ask What is Rust?"));
    assert_eq!(texts(&echoed), ["You said: /ask What is Rust?"]);
}

#[test]
fn questions_are_ask_anywhere_and_plain_text_in_private_chats() {
    let bot = with_assistant();
    let asked = |update: &Update| bot.question(update).map(|(_, q)| q.to_owned());
    assert_eq!(
        asked(&private_text("What is Rust?")).as_deref(),
        Some("What is Rust?")
    );
    assert_eq!(asked(&private_text("/ask  Why? ")).as_deref(), Some("Why?"));
    assert_eq!(
        asked(&group_text("/ask@EchoLambdaBot Why?")).as_deref(),
        Some("Why?")
    );
    assert_eq!(asked(&group_text("/ask@OtherBot Why?")), None);
    assert_eq!(asked(&group_text("Why?")), None, "groups ask with /ask");
    assert_eq!(asked(&private_text("/help")), None);
    assert_eq!(asked(&private_text("/ask")), None);
    // /ask alone says how to ask.
    let how = replies(&bot, &private_text("/ask"));
    assert!(texts(&how)[0].starts_with("Ask me something"), "{how:?}");
}

#[test]
fn an_answer_is_replies_to_the_question_with_its_note() {
    use crate::assistant::Ending;
    let bot = with_assistant();
    let question = private_text("Why?");
    for (ending, tail) in [
        (Ending::Complete, "Because."),
        (Ending::OutOfTime, "longer than a bot may take to answer.)"),
    ] {
        let answer = Answer {
            text: "Because.".to_owned(),
            ending,
        };
        let (actions, state) = bot.handle(&question, &Some(answer), State::default());
        assert_eq!(state.messages, 1);
        let [Action::Send(reply)] = actions.as_slice() else {
            panic!("one reply: {actions:?}");
        };
        assert!(reply.text.ends_with(tail), "{}", reply.text);
        assert_eq!(
            reply.reply_parameters.as_ref().map(|r| r.message_id),
            Some(MessageId(7))
        );
    }
}
