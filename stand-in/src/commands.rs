//! The bot's command lists: setMyCommands, getMyCommands and
//! deleteMyCommands, one list per scope and language code, with the checks
//! in the order they are made: the Bot API server reads the parameters
//! (Client::get_bot_commands, Client::get_bot_command_scope) and looks up
//! the scope's chat (Client::check_bot_command_scope); TDLib checks the
//! scope, the language code and each command (td/telegram/BotCommand.cpp
//! `set_commands`); Telegram's MTProto server checks the rest.

use crate::answers::{MethodResult, Refusal};
use crate::params::arg_text;
use crate::shared::Shared;
use crate::state::{BotCommand, CommandScope, State};
use serde_json::{json, Map, Value};
use std::fmt;

/// TDLib's limits (`set_commands`), in characters.
const MAX_COMMAND_CHARS: usize = 32;
const MAX_DESCRIPTION_CHARS: usize = 256;
/// The documented "at most 100 commands"; Telegram's server checks it.
const MAX_COMMANDS: usize = 100;

/// Why a field of a JSON object could not be read, in the words of td's
/// JsonObject (`get_required_string_field`, `get_required_long_field`).
enum FieldError<'a> {
    Missing(&'a str),
    NotString(&'a str),
    NotNumber(&'a str),
    NotValidNumber(&'a str),
}

impl fmt::Display for FieldError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Missing(name) => write!(f, "Can't find field \"{name}\""),
            FieldError::NotString(name) => write!(f, "Field \"{name}\" must be of type String"),
            FieldError::NotNumber(name) => write!(f, "Field \"{name}\" must be a Number"),
            FieldError::NotValidNumber(name) => {
                write!(f, "Field \"{name}\" must be a valid Number")
            }
        }
    }
}

/// A string field; a number is taken as written.
fn string_field<'a>(object: &Map<String, Value>, name: &'a str) -> Result<String, FieldError<'a>> {
    match object.get(name) {
        None => Err(FieldError::Missing(name)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(FieldError::NotString(name)),
    }
}

/// A 64-bit integer field, from a number or a string; td's
/// `to_integer_safe` takes only text that reads back the same.
fn long_field<'a>(object: &Map<String, Value>, name: &'a str) -> Result<i64, FieldError<'a>> {
    let text = match object.get(name) {
        None => return Err(FieldError::Missing(name)),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(FieldError::NotNumber(name)),
    };
    text.parse::<i64>()
        .ok()
        .filter(|n| n.to_string() == text)
        .ok_or(FieldError::NotValidNumber(name))
}

/// The scopes that name a chat, and a member's user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InChat {
    Chat,
    Administrators,
    Member(i64),
}

/// A scope as the request gives it, its chat not yet looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ScopeArg {
    Whole(CommandScope),
    InChat { chat_id: String, which: InChat },
}

fn unparsable_scope(reason: &dyn fmt::Display) -> Refusal {
    Refusal::bad_request(&format!("can't parse BotCommandScope: {reason}"))
}

/// The `scope` parameter, as Client::get_bot_command_scope reads it: left
/// out (or "") it is the default scope.
fn read_scope(params: &Map<String, Value>) -> Result<ScopeArg, Refusal> {
    let text = arg_text(params, "scope");
    if text.is_empty() {
        return Ok(ScopeArg::Whole(CommandScope::Default));
    }
    let Ok(value) = serde_json::from_str::<Value>(&text) else {
        return Err(Refusal::bad_request(
            "can't parse BotCommandScope JSON object",
        ));
    };
    let Value::Object(object) = value else {
        return Err(unparsable_scope(&"BotCommandScope must be an Object"));
    };
    scope_of(&object).map_err(|reason| unparsable_scope(&reason))
}

/// A scope object's fields, in the order the server reads them.
fn scope_of(object: &Map<String, Value>) -> Result<ScopeArg, String> {
    let kind = string_field(object, "type").map_err(|e| e.to_string())?;
    let whole = match kind.as_str() {
        "default" => Some(CommandScope::Default),
        "all_private_chats" => Some(CommandScope::AllPrivateChats),
        "all_group_chats" => Some(CommandScope::AllGroupChats),
        "all_chat_administrators" => Some(CommandScope::AllChatAdministrators),
        "chat" | "chat_administrators" | "chat_member" => None,
        _ => return Err("Unsupported type specified".to_owned()),
    };
    if let Some(scope) = whole {
        return Ok(ScopeArg::Whole(scope));
    }
    let chat_id = string_field(object, "chat_id").map_err(|e| e.to_string())?;
    if chat_id.is_empty() {
        return Err("Empty chat_id specified".to_owned());
    }
    let which = match kind.as_str() {
        "chat" => InChat::Chat,
        "chat_administrators" => InChat::Administrators,
        _ => {
            let user_id = long_field(object, "user_id").map_err(|e| e.to_string())?;
            if user_id <= 0 {
                return Err("Invalid user_id specified".to_owned());
            }
            InChat::Member(user_id)
        }
    };
    Ok(ScopeArg::InChat { chat_id, which })
}

/// The scope with its chat looked up: Client::check_bot_command_scope finds
/// the chat ("@username" is a public chat's, and the stand-in knows none),
/// then TDLib's BotCommandScope::get_bot_command_scope checks its type.
fn resolve_scope(state: &State, scope: ScopeArg) -> Result<CommandScope, Refusal> {
    let (chat_id, which) = match scope {
        ScopeArg::Whole(scope) => return Ok(scope),
        ScopeArg::InChat { chat_id, which } => (chat_id, which),
    };
    let chat_id = chat_id.parse::<i64>().ok();
    let Some((chat_id, chat)) = chat_id.and_then(|id| Some((id, state.chats.get(&id)?))) else {
        return Err(Refusal::bad_request("chat not found"));
    };
    match chat.raw.get("type").and_then(Value::as_str) {
        Some("private") if which != InChat::Chat => Err(Refusal::bad_request(
            "can't use specified scope in private chats",
        )),
        Some("channel") => Err(Refusal::bad_request(
            "can't change commands in channel chats",
        )),
        _ => Ok(match which {
            InChat::Chat => CommandScope::Chat { chat_id },
            InChat::Administrators => CommandScope::ChatAdministrators { chat_id },
            InChat::Member(user_id) => CommandScope::ChatMember { chat_id, user_id },
        }),
    }
}

/// TDLib's `validate_bot_language_code`: "" (every language) or two
/// lowercase ASCII letters.
fn check_language(language_code: &str) -> Result<(), Refusal> {
    let valid = language_code.is_empty()
        || (language_code.len() == 2 && language_code.bytes().all(|b| b.is_ascii_lowercase()));
    if valid {
        Ok(())
    } else {
        Err(Refusal::bad_request("invalid language code specified"))
    }
}

/// The scope and language code every one of the three methods names,
/// checked in the server's and TDLib's order.
fn list_key(state: &State, params: &Map<String, Value>) -> Result<(CommandScope, String), Refusal> {
    let scope = read_scope(params)?;
    let scope = resolve_scope(state, scope)?;
    let language_code = arg_text(params, "language_code");
    check_language(&language_code)?;
    Ok((scope, language_code))
}

fn unparsable_command(reason: &dyn fmt::Display) -> Refusal {
    Refusal::bad_request(&format!("can't parse BotCommand: {reason}"))
}

/// The `commands` parameter, as Client::get_bot_commands reads it: left
/// out (or "") it is an empty list.
fn read_commands(params: &Map<String, Value>) -> Result<Vec<BotCommand>, Refusal> {
    let text = arg_text(params, "commands");
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Ok(value) = serde_json::from_str::<Value>(&text) else {
        return Err(Refusal::bad_request("can't parse commands JSON object"));
    };
    let Value::Array(items) = value else {
        return Err(Refusal::bad_request("expected an Array of BotCommand"));
    };
    items.iter().map(read_command).collect()
}

/// Client::get_bot_command.
fn read_command(item: &Value) -> Result<BotCommand, Refusal> {
    let Value::Object(object) = item else {
        return Err(unparsable_command(&"expected an Object"));
    };
    let command = string_field(object, "command").map_err(|e| unparsable_command(&e))?;
    let description = string_field(object, "description").map_err(|e| unparsable_command(&e))?;
    Ok(BotCommand {
        command,
        description,
    })
}

/// td::trim's whitespace (td::is_space).
fn td_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\0' | '\u{b}')
}

/// A command as TDLib's `set_commands` takes it: trimmed, one leading `/`
/// dropped, then both lengths checked in characters.
fn tdlib_checked(given: BotCommand) -> Result<BotCommand, Refusal> {
    let trimmed = given.command.trim_matches(td_space);
    let command = trimmed.strip_prefix('/').unwrap_or(trimmed);
    if command.is_empty() {
        return Err(Refusal::bad_request("command must be non-empty"));
    }
    if command.chars().count() > MAX_COMMAND_CHARS {
        return Err(Refusal::bad_request("command length must not exceed 32"));
    }
    let description = given.description.trim_matches(td_space);
    if description.is_empty() {
        return Err(Refusal::bad_request(
            "command description must be non-empty",
        ));
    }
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Refusal::bad_request(
            "command description length must not exceed 256",
        ));
    }
    Ok(BotCommand::new(command, description))
}

/// What Telegram's MTProto server refuses after TDLib, by the documented
/// rules (the checks are not in any public source): more than 100
/// commands, and a command of anything but lowercase English letters,
/// digits and underscores. Its error names are passed through as they are
/// (Client::fail_query_with_error); which it checks first is an assumption.
fn server_check(commands: &[BotCommand]) -> Result<(), Refusal> {
    if commands.len() > MAX_COMMANDS {
        return Err(Refusal::bad_request("BOT_COMMANDS_TOO_MUCH"));
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    if commands.iter().any(|c| !c.command.bytes().all(allowed)) {
        return Err(Refusal::bad_request("BOT_COMMAND_INVALID"));
    }
    Ok(())
}

/// setMyCommands (Client::process_set_my_commands_query): the list
/// replaces the one for its scope and language; an empty list clears it.
pub(crate) fn set_my_commands(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let given = read_commands(params)?;
    let mut state = shared.state();
    let key = list_key(&state, params)?;
    let commands = given
        .into_iter()
        .map(tdlib_checked)
        .collect::<Result<Vec<_>, _>>()?;
    server_check(&commands)?;
    if commands.is_empty() {
        state.commands.remove(&key);
    } else {
        state.commands.insert(key, commands);
    }
    Ok(json!(true))
}

/// getMyCommands (Client::process_get_my_commands_query): the list set for
/// exactly this scope and language, or [].
pub(crate) fn get_my_commands(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let state = shared.state();
    let key = list_key(&state, params)?;
    Ok(json!(state.commands.get(&key).cloned().unwrap_or_default()))
}

/// deleteMyCommands (Client::process_delete_my_commands_query).
pub(crate) fn delete_my_commands(shared: &Shared, params: &Map<String, Value>) -> MethodResult {
    let mut state = shared.state();
    let key = list_key(&state, params)?;
    state.commands.remove(&key);
    Ok(json!(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(object) => object,
            _ => Map::new(),
        }
    }

    fn error<T>(read: Result<T, FieldError>) -> Option<String> {
        read.err().map(|e| e.to_string())
    }

    #[test]
    fn fields_are_read_as_tds_json_object_reads_them() {
        let fields = object(json!({"s": "x", "n": 42, "b": true, "big": "0042", "neg": "-7"}));
        assert_eq!(string_field(&fields, "n").ok(), Some("42".to_owned()));
        assert_eq!(
            error(string_field(&fields, "b")),
            Some("Field \"b\" must be of type String".to_owned())
        );
        assert_eq!(
            error(string_field(&fields, "none")),
            Some("Can't find field \"none\"".to_owned())
        );
        assert_eq!(long_field(&fields, "neg").ok(), Some(-7));
        assert_eq!(
            error(long_field(&fields, "big")),
            Some("Field \"big\" must be a valid Number".to_owned())
        );
        assert_eq!(
            error(long_field(&fields, "b")),
            Some("Field \"b\" must be a Number".to_owned())
        );
    }

    #[test]
    fn tdlib_trims_a_command_and_drops_one_slash() {
        let checked = tdlib_checked(BotCommand::new(" /start\n", "\tStart it "));
        assert_eq!(checked, Ok(BotCommand::new("start", "Start it")));
        let twice = tdlib_checked(BotCommand::new("//x", "d"));
        assert_eq!(twice, Ok(BotCommand::new("/x", "d")));
        let slash = tdlib_checked(BotCommand::new(" / ", "d")).map_err(|r| r.description);
        assert_eq!(
            slash,
            Err("Bad Request: command must be non-empty".to_owned())
        );
    }
}
