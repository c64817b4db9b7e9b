//! setMyCommands, getMyCommands and deleteMyCommands: one list per scope
//! and language, and every refusal with Telegram's description.

use crate::helpers::{private_message, stand_in, Api};
use serde_json::{json, Value};
use telegram_stand_in::{BotCommand, CommandScope, StandIn};

const PRIVATE: i64 = 42;
const GROUP: i64 = -1_001_000;
const CHANNEL: i64 = -1_002_000;

/// A stand-in that knows a private chat, a supergroup and a channel.
async fn stand_in_with_chats() -> StandIn {
    let stand_in = stand_in().await;
    stand_in.observe_update(&private_message(1, 10, PRIVATE));
    for (id, kind) in [(GROUP, "supergroup"), (CHANNEL, "channel")] {
        stand_in.observe_update(&json!({"update_id": 2, "channel_post": {
            "message_id": 1, "date": 1, "text": "x", "chat": {"id": id, "type": kind, "title": "T"}
        }}));
    }
    stand_in
}

fn command(name: &str) -> Value {
    json!({"command": name, "description": format!("About {name}")})
}

#[tokio::test]
async fn commands_are_kept_per_scope_and_language_and_an_empty_list_clears() {
    let stand_in = stand_in_with_chats().await;
    let api = Api::new(&stand_in);
    let english = json!({"language_code": "en"});
    let group = json!({"scope": {"type": "chat", "chat_id": GROUP}});
    assert_eq!(api.ok("getMyCommands", json!({})).await, json!([]));

    let set = json!({"commands": [{"command": " /start ", "description": " Start it\n"}, command("help")]});
    assert_eq!(api.ok("setMyCommands", set).await, true);
    // TDLib trims both and drops the leading slash.
    let kept = json!([{"command": "start", "description": "Start it"}, command("help")]);
    assert_eq!(api.ok("getMyCommands", json!({})).await, kept);
    assert_eq!(
        stand_in.commands(),
        [
            BotCommand::new("start", "Start it"),
            BotCommand::new("help", "About help")
        ]
    );
    // Nothing falls back: another language or scope has its own list.
    assert_eq!(api.ok("getMyCommands", english.clone()).await, json!([]));
    assert_eq!(api.ok("getMyCommands", group.clone()).await, json!([]));

    let mut set_english = english.clone();
    set_english["commands"] = json!([command("hilfe")]);
    api.ok("setMyCommands", set_english).await;
    let mut set_group = group.clone();
    set_group["commands"] = json!([command("vote")]);
    api.ok("setMyCommands", set_group).await;
    assert_eq!(
        api.ok("getMyCommands", english.clone()).await,
        json!([command("hilfe")])
    );
    assert_eq!(
        stand_in.commands_for(&CommandScope::Chat { chat_id: GROUP }, ""),
        [BotCommand::new("vote", "About vote")]
    );
    assert_eq!(api.ok("getMyCommands", json!({})).await, kept);

    // An empty list clears; so does deleteMyCommands.
    api.ok(
        "setMyCommands",
        json!({"commands": [], "language_code": "en"}),
    )
    .await;
    assert_eq!(api.ok("getMyCommands", english).await, json!([]));
    assert_eq!(api.ok("deleteMyCommands", group.clone()).await, true);
    assert_eq!(api.ok("getMyCommands", group).await, json!([]));
    assert_eq!(stand_in.commands().len(), 2);
    api.ok("deleteMyCommands", json!({})).await;
    assert!(stand_in.commands().is_empty());
    assert_eq!(stand_in.set_my_commands_calls(), 4);
}

#[tokio::test]
async fn every_scope_type_is_accepted_with_its_fields() {
    let stand_in = stand_in_with_chats().await;
    let api = Api::new(&stand_in);
    let scopes = [
        (json!({"type": "default"}), CommandScope::Default),
        (
            json!({"type": "all_private_chats"}),
            CommandScope::AllPrivateChats,
        ),
        (
            json!({"type": "all_group_chats"}),
            CommandScope::AllGroupChats,
        ),
        (
            json!({"type": "all_chat_administrators"}),
            CommandScope::AllChatAdministrators,
        ),
        (
            json!({"type": "chat", "chat_id": PRIVATE}),
            CommandScope::Chat { chat_id: PRIVATE },
        ),
        (
            json!({"type": "chat_administrators", "chat_id": GROUP.to_string()}),
            CommandScope::ChatAdministrators { chat_id: GROUP },
        ),
        (
            json!({"type": "chat_member", "chat_id": GROUP, "user_id": "7"}),
            CommandScope::ChatMember {
                chat_id: GROUP,
                user_id: 7,
            },
        ),
    ];
    for (scope, kept_as) in scopes {
        let params = json!({"scope": scope, "language_code": "de", "commands": [command("x")]});
        assert_eq!(api.ok("setMyCommands", params).await, true, "{scope}");
        let list = stand_in.commands_for(&kept_as, "de");
        assert_eq!(list, [BotCommand::new("x", "About x")], "{scope}");
        // The scope as getMyCommands takes it: JSON or, from forms, text.
        let get = json!({"scope": scope.to_string(), "language_code": "de"});
        assert_eq!(api.ok("getMyCommands", get).await, json!([command("x")]));
        assert_eq!(json!(kept_as)["type"], scope["type"]);
    }
}

#[tokio::test]
async fn set_my_commands_refuses_what_telegram_refuses() {
    let stand_in = stand_in_with_chats().await;
    let api = Api::new(&stand_in);
    let scope = |scope: Value| json!({"scope": scope, "commands": [command("x")]});
    let cases = [
        // Client::get_bot_commands
        (
            json!({"commands": "[{"}),
            "can't parse commands JSON object",
        ),
        (
            json!({"commands": {"command": "x"}}),
            "expected an Array of BotCommand",
        ),
        (json!({"commands": null}), "expected an Array of BotCommand"),
        (
            json!({"commands": ["start"]}),
            "can't parse BotCommand: expected an Object",
        ),
        (
            json!({"commands": [{"description": "d"}]}),
            "can't parse BotCommand: Can't find field \"command\"",
        ),
        (
            json!({"commands": [{"command": ["x"], "description": "d"}]}),
            "can't parse BotCommand: Field \"command\" must be of type String",
        ),
        (
            json!({"commands": [{"command": "x"}]}),
            "can't parse BotCommand: Can't find field \"description\"",
        ),
        (
            json!({"commands": [{"command": "x", "description": false}]}),
            "can't parse BotCommand: Field \"description\" must be of type String",
        ),
        // Client::get_bot_command_scope
        (
            json!({"scope": "{", "commands": []}),
            "can't parse BotCommandScope JSON object",
        ),
        (
            scope(json!(["default"])),
            "can't parse BotCommandScope: BotCommandScope must be an Object",
        ),
        (
            scope(json!({})),
            "can't parse BotCommandScope: Can't find field \"type\"",
        ),
        (
            scope(json!({"type": "everyone"})),
            "can't parse BotCommandScope: Unsupported type specified",
        ),
        (
            scope(json!({"type": "chat"})),
            "can't parse BotCommandScope: Can't find field \"chat_id\"",
        ),
        (
            scope(json!({"type": "chat", "chat_id": ""})),
            "can't parse BotCommandScope: Empty chat_id specified",
        ),
        (
            scope(json!({"type": "chat_member", "chat_id": GROUP})),
            "can't parse BotCommandScope: Can't find field \"user_id\"",
        ),
        (
            scope(json!({"type": "chat_member", "chat_id": GROUP, "user_id": "seven"})),
            "can't parse BotCommandScope: Field \"user_id\" must be a valid Number",
        ),
        (
            scope(json!({"type": "chat_member", "chat_id": GROUP, "user_id": 0})),
            "can't parse BotCommandScope: Invalid user_id specified",
        ),
        // Client::check_bot_command_scope, then TDLib's scope checks
        (
            scope(json!({"type": "chat", "chat_id": 7})),
            "chat not found",
        ),
        (
            scope(json!({"type": "chat", "chat_id": "@some_group"})),
            "chat not found",
        ),
        (
            scope(json!({"type": "chat_administrators", "chat_id": PRIVATE})),
            "can't use specified scope in private chats",
        ),
        (
            scope(json!({"type": "chat_member", "chat_id": PRIVATE, "user_id": PRIVATE})),
            "can't use specified scope in private chats",
        ),
        (
            scope(json!({"type": "chat", "chat_id": CHANNEL})),
            "can't change commands in channel chats",
        ),
        // TDLib: the language code, then each command
        (
            json!({"language_code": "EN", "commands": [command("x")]}),
            "invalid language code specified",
        ),
        (
            json!({"language_code": "eng", "commands": [command("x")]}),
            "invalid language code specified",
        ),
        (
            json!({"commands": [{"command": " / ", "description": "d"}]}),
            "command must be non-empty",
        ),
        (
            json!({"commands": [{"command": "a".repeat(33), "description": "d"}]}),
            "command length must not exceed 32",
        ),
        (
            json!({"commands": [{"command": "x", "description": " \n "}]}),
            "command description must be non-empty",
        ),
        (
            json!({"commands": [{"command": "x", "description": "é".repeat(257)}]}),
            "command description length must not exceed 256",
        ),
        // Telegram's server, by the documented rules
        (
            json!({"commands": (0..101).map(|n| command(&format!("c{n}"))).collect::<Vec<_>>()}),
            "BOT_COMMANDS_TOO_MUCH",
        ),
        (
            json!({"commands": [command("Start")]}),
            "BOT_COMMAND_INVALID",
        ),
        (
            json!({"commands": [command("say-hi")]}),
            "BOT_COMMAND_INVALID",
        ),
        (
            json!({"commands": [command("//start")]}),
            "BOT_COMMAND_INVALID",
        ),
        (
            json!({"commands": [command("пуск")]}),
            "BOT_COMMAND_INVALID",
        ),
    ];
    for (params, description) in &cases {
        let reply = api.call("setMyCommands", params.clone()).await;
        assert_eq!(
            reply.body,
            json!({"ok": false, "error_code": 400,
                   "description": format!("Bad Request: {description}")}),
            "{params}"
        );
        assert_eq!(reply.status, 400, "{params}");
    }
    assert!(stand_in.commands().is_empty());
    assert_eq!(stand_in.set_my_commands_calls(), cases.len());
}

#[tokio::test]
async fn get_and_delete_check_the_scope_and_language_as_set_does() {
    let stand_in = stand_in_with_chats().await;
    let api = Api::new(&stand_in);
    for method in ["getMyCommands", "deleteMyCommands"] {
        for (params, description) in [
            (
                json!({"scope": {"type": "nobody"}}),
                "can't parse BotCommandScope: Unsupported type specified",
            ),
            (
                json!({"scope": {"type": "chat", "chat_id": 7}}),
                "chat not found",
            ),
            (
                json!({"language_code": "e"}),
                "invalid language code specified",
            ),
            (
                json!({"language_code": null}),
                "invalid language code specified",
            ),
        ] {
            let reply = api.call(method, params.clone()).await;
            assert_eq!(
                reply.description(),
                format!("Bad Request: {description}"),
                "{method} {params}"
            );
        }
    }
}

#[tokio::test]
async fn limits_are_counted_in_characters_and_reached_exactly() {
    let stand_in = stand_in().await;
    let api = Api::new(&stand_in);
    // 100 commands of 32 characters, each described in 256 characters that
    // take 4 bytes each.
    let commands: Vec<Value> = (0..100)
        .map(|n| json!({"command": format!("{n:0>32}"), "description": "😀".repeat(256)}))
        .collect();
    let params = json!({"commands": commands});
    assert_eq!(api.ok("setMyCommands", params).await, true);
    let kept = stand_in.commands();
    assert_eq!(kept.len(), 100);
    assert_eq!(kept[99].command, format!("{:0>32}", 99));
    assert_eq!(kept[0].description.chars().count(), 256);
}

#[tokio::test]
async fn commands_come_from_forms_and_leaving_them_out_clears() {
    let stand_in = stand_in().await;
    let url = format!(
        "{}/bot{}/setMyCommands",
        stand_in.base_url(),
        stand_in.token()
    );
    let http = reqwest::Client::new();
    let list = json!([command("start"), command("stop_all_2")]).to_string();
    let response = http
        .post(&url)
        .form(&[("commands", list.as_str()), ("language_code", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(stand_in.commands().len(), 2);
    // Client::get_bot_commands reads a missing list as an empty one.
    let response = http.post(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(stand_in.commands().is_empty());
    assert_eq!(stand_in.set_my_commands_calls(), 2);
}

#[tokio::test]
async fn an_unchanged_list_is_seen_as_no_call_and_a_reset_keeps_the_list() {
    let stand_in = stand_in().await;
    let api = Api::new(&stand_in);
    api.ok("setMyCommands", json!({"commands": [command("start")]}))
        .await;
    assert_eq!(stand_in.set_my_commands_calls(), 1);
    stand_in.reset();
    assert_eq!(stand_in.set_my_commands_calls(), 0);
    assert_eq!(
        stand_in.commands(),
        [BotCommand::new("start", "About start")]
    );
    // Reading the list is not setting it.
    api.ok("getMyCommands", json!({})).await;
    assert_eq!(stand_in.set_my_commands_calls(), 0);
}
