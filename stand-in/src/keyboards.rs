//! Inline keyboards: reading a `reply_markup` parameter as Telegram's Bot
//! API server does (Client::get_reply_markup, Client::get_inline_keyboard_button),
//! keeping what tdlib keeps of it (ReplyMarkup.cpp `get_reply_markup`), and
//! writing it as a Message's `reply_markup` (Client::JsonReplyMarkup,
//! Client::JsonInlineKeyboardButton). Also finding a button to press.
//!
//! The server reads JSON with td's JSON getters, whose errors read
//! `Can't find field "x"` and `Field "x" must be of type T`; a button's
//! error is put after "Can't parse inline keyboard button: ", and
//! Client::fail_query_with_error lower-cases the first letter of the whole.

use crate::answers::Refusal;
use serde_json::{json, Map, Value};

/// Longer callback data is refused by Telegram's MTProto server
/// (BUTTON_DATA_INVALID), not by the Bot API server.
const MAX_CALLBACK_DATA_BYTES: usize = 64;
/// tdlib keeps at most 12 buttons a row and 300 in all, dropping the rest
/// without an error (ReplyMarkup.cpp `get_reply_markup`).
const MAX_ROW_BUTTONS: usize = 12;
const MAX_BUTTONS: usize = 300;

fn cannot_find(field: &str) -> String {
    format!("Can't find field \"{field}\"")
}

fn must_be(field: &str, kind: &str) -> String {
    format!("Field \"{field}\" must be of type {kind}")
}

/// A field that is there; JSON null counts as left out, as most clients
/// send it for an unset field.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

/// As td's JsonObject::get_optional_string_field: a string, or a number's
/// text; "" when left out.
fn optional_string(object: &Map<String, Value>, name: &str) -> Result<String, String> {
    match field(object, name) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(must_be(name, "String")),
    }
}

/// As td's JsonObject::get_required_string_field.
fn required_string(object: &Map<String, Value>, name: &str) -> Result<String, String> {
    if field(object, name).is_none() {
        return Err(cannot_find(name));
    }
    optional_string(object, name)
}

/// As td's JsonObject::extract_required_field with type Object.
fn required_object<'a>(
    object: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a Map<String, Value>, String> {
    match field(object, name) {
        None => Err(cannot_find(name)),
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(must_be(name, "Object")),
    }
}

fn optional_bool(object: &Map<String, Value>, name: &str) -> Result<bool, String> {
    match field(object, name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        // td reads "true"/"false" strings and numbers as booleans too.
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(Value::Number(n)) => Ok(n.as_f64().is_some_and(|n| n != 0.0)),
        Some(_) => Err(must_be(name, "Boolean")),
    }
}

/// One button as Telegram answers it in a Message: its text and its one
/// action. As Client::get_inline_keyboard_button, which takes the first
/// action found in this order and ignores any others; an empty `url` or
/// `callback_data` counts as none.
fn inline_button(button: &Value) -> Result<Value, String> {
    let Value::Object(object) = button else {
        return Err("InlineKeyboardButton must be an Object".to_owned());
    };
    let text = required_string(object, "text")?;
    let with = |key: &str, value: Value| {
        let mut out = Map::new();
        out.insert("text".to_owned(), json!(text));
        out.insert(key.to_owned(), value);
        Ok(Value::Object(out))
    };
    let url = optional_string(object, "url")?;
    if !url.is_empty() {
        return with("url", json!(url));
    }
    let data = optional_string(object, "callback_data")?;
    if !data.is_empty() {
        return with("callback_data", json!(data));
    }
    if field(object, "callback_game").is_some() {
        return with("callback_game", json!({}));
    }
    if field(object, "pay").is_some() {
        return with("pay", json!(true));
    }
    if field(object, "switch_inline_query").is_some() {
        let query = required_string(object, "switch_inline_query")?;
        return with("switch_inline_query", json!(query));
    }
    if field(object, "switch_inline_query_chosen_chat").is_some() {
        let chosen = required_object(object, "switch_inline_query_chosen_chat")?;
        let query = optional_string(chosen, "query")?;
        let kinds = [
            "allow_user_chats",
            "allow_bot_chats",
            "allow_group_chats",
            "allow_channel_chats",
        ];
        let mut out = Map::new();
        out.insert("query".to_owned(), json!(query));
        for kind in kinds {
            out.insert(kind.to_owned(), json!(optional_bool(chosen, kind)?));
        }
        // All four allowed is a plain switch_inline_query when written back.
        if kinds.iter().all(|k| out[*k] == json!(true)) {
            return with("switch_inline_query", json!(query));
        }
        return with("switch_inline_query_chosen_chat", Value::Object(out));
    }
    if field(object, "switch_inline_query_current_chat").is_some() {
        let query = required_string(object, "switch_inline_query_current_chat")?;
        return with("switch_inline_query_current_chat", json!(query));
    }
    if field(object, "login_url").is_some() {
        let login = required_object(object, "login_url")?;
        let url = required_string(login, "url")?;
        // Written back as a plain url (JsonInlineKeyboardButton).
        return with("url", json!(url));
    }
    if field(object, "web_app").is_some() {
        let web_app = required_object(object, "web_app")?;
        let url = required_string(web_app, "url")?;
        return with("web_app", json!({"url": url}));
    }
    Err("Text buttons are unallowed in the inline keyboard".to_owned())
}

/// Checks a reply keyboard (`keyboard`) as Client::get_keyboard_button does,
/// and says whether it has rows: a reply keyboard wins over an inline one.
fn has_reply_keyboard(object: &Map<String, Value>) -> Result<bool, Refusal> {
    let rows = match field(object, "keyboard") {
        None => return Ok(false),
        Some(Value::Array(rows)) => rows,
        Some(_) => {
            return Err(Refusal::bad_request(&lowered(&must_be(
                "keyboard", "Array",
            ))))
        }
    };
    for row in rows {
        let Value::Array(buttons) = row else {
            return Err(Refusal::bad_request(
                "field \"keyboard\" must be an Array of Arrays",
            ));
        };
        for button in buttons {
            let problem = match button {
                Value::String(_) => None,
                Value::Object(o) => required_string(o, "text").err(),
                _ => Some("KeyboardButton must be a String or an Object".to_owned()),
            };
            if let Some(problem) = problem {
                return Err(Refusal::bad_request(&format!(
                    "can't parse keyboard button: {problem}"
                )));
            }
        }
    }
    Ok(!rows.is_empty())
}

/// Lower-cases the first letter, as Client::fail_query_with_error does to a
/// message whose second letter is not upper case.
fn lowered(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The inline keyboard a `reply_markup` parameter gives the message, as
/// Telegram returns it (`{"inline_keyboard": [[...]]}`), or None: left out,
/// empty, every button dropped, or a reply keyboard, which a Message never
/// shows. Refused as Client::get_reply_markup refuses it. Given as JSON or,
/// from forms, as a string holding JSON.
pub(crate) fn reply_markup(value: Option<&Value>) -> Result<Option<Value>, Refusal> {
    let parsed;
    let value = match value {
        None | Some(Value::Null) => return Ok(None),
        // An empty parameter is no markup (Client::get_reply_markup).
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|_| {
                Refusal::bad_request("can't parse reply keyboard markup JSON object")
            })?;
            &parsed
        }
        Some(other) => other,
    };
    let Value::Object(object) = value else {
        return Err(Refusal::bad_request("object expected as reply markup"));
    };
    let reply_keyboard = has_reply_keyboard(object)?;
    let rows = match field(object, "inline_keyboard") {
        None => return Ok(None),
        Some(Value::Array(rows)) => rows,
        Some(_) => {
            return Err(Refusal::bad_request(&lowered(&must_be(
                "inline_keyboard",
                "Array",
            ))))
        }
    };
    let mut kept = Vec::new();
    let mut total = 0;
    for row in rows {
        let Value::Array(buttons) = row else {
            return Err(Refusal::bad_request(
                "field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays",
            ));
        };
        let mut kept_row = Vec::new();
        for button in buttons {
            let button = inline_button(button).map_err(|problem| {
                Refusal::bad_request(&format!("can't parse inline keyboard button: {problem}"))
            })?;
            // tdlib drops buttons without text, and rows and keyboards left
            // empty, without an error; and stops at its limits.
            if total >= MAX_BUTTONS || kept_row.len() >= MAX_ROW_BUTTONS {
                continue;
            }
            if button["text"].as_str().is_some_and(|t| !t.is_empty()) {
                kept_row.push(button);
                total += 1;
            }
        }
        if !kept_row.is_empty() {
            kept.push(Value::Array(kept_row));
        }
    }
    if reply_keyboard || kept.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({ "inline_keyboard": kept })))
}

/// The checks Telegram's MTProto server makes of a keyboard that the Bot
/// API server let through: callback data of 1-64 bytes. Its error is the
/// server's code as is ("Bad Request: BUTTON_DATA_INVALID", as commonly
/// reported; Client.cpp passes it through).
pub(crate) fn server_check(markup: Option<&Value>) -> Result<(), Refusal> {
    let too_long = markup.is_some_and(|markup| {
        buttons(markup).any(|b| {
            b.get("callback_data")
                .and_then(Value::as_str)
                .is_some_and(|d| d.len() > MAX_CALLBACK_DATA_BYTES)
        })
    });
    if too_long {
        return Err(Refusal::bad_request("BUTTON_DATA_INVALID"));
    }
    Ok(())
}

/// A kept keyboard's buttons in reading order: row by row, left to right.
pub(crate) fn buttons(markup: &Value) -> impl Iterator<Item = &Value> {
    markup
        .get("inline_keyboard")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
}

/// Which button a press means.
#[derive(Debug, Clone)]
pub(crate) enum Which {
    /// The callback button with this data.
    Data(String),
    /// The first button with this label.
    Label(String),
    /// The n-th button in reading order, from 1.
    Index(usize),
}

/// The callback data of the button `which` names in `markup`, or why there
/// is none: a user can only press a button the message shows, and only a
/// callback button makes a callback query.
pub(crate) fn callback_data(markup: Option<&Value>, which: &Which) -> Result<String, String> {
    let Some(markup) = markup else {
        return Err("the message has no inline keyboard".to_owned());
    };
    let button = match which {
        Which::Data(data) => buttons(markup)
            .find(|b| b.get("callback_data").and_then(Value::as_str) == Some(data.as_str()))
            .ok_or_else(|| format!("no button has callback_data {data:?}"))?,
        Which::Label(label) => buttons(markup)
            .find(|b| b.get("text").and_then(Value::as_str) == Some(label.as_str()))
            .ok_or_else(|| format!("no button is labelled {label:?}"))?,
        Which::Index(n) => n
            .checked_sub(1)
            .and_then(|i| buttons(markup).nth(i))
            .ok_or_else(|| {
                format!(
                    "no button number {n}: the keyboard has {}",
                    buttons(markup).count()
                )
            })?,
    };
    match button.get("callback_data").and_then(Value::as_str) {
        Some(data) => Ok(data.to_owned()),
        None => Err(format!(
            "the button {} is not a callback button",
            button.get("text").unwrap_or(&Value::Null)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(markup: Value) -> Result<Option<Value>, String> {
        reply_markup(Some(&markup)).map_err(|r| r.description)
    }

    #[test]
    fn the_first_action_wins_and_is_written_back_alone() {
        let markup = json!({"inline_keyboard": [[
            {"text": "both", "url": "https://example.com", "callback_data": "x"},
            {"text": "n", "callback_data": 5},
            {"text": "empty url", "url": "", "callback_data": "y"},
        ]]});
        assert_eq!(
            read(markup),
            Ok(Some(json!({"inline_keyboard": [[
                {"text": "both", "url": "https://example.com"},
                {"text": "n", "callback_data": "5"},
                {"text": "empty url", "callback_data": "y"},
            ]]})))
        );
    }

    #[test]
    fn buttons_without_text_and_empty_rows_are_dropped_as_tdlib_drops_them() {
        let markup = json!({"inline_keyboard": [[{"text": "", "callback_data": "x"}], [],
            [{"text": "ok", "callback_data": "y"}]]});
        assert_eq!(
            read(markup),
            Ok(Some(
                json!({"inline_keyboard": [[{"text": "ok", "callback_data": "y"}]]})
            ))
        );
        assert_eq!(read(json!({"inline_keyboard": []})), Ok(None));
        assert_eq!(read(json!({"inline_keyboard": [[], []]})), Ok(None));
        let wide: Vec<Value> = (0..13)
            .map(|i| json!({"text": i.to_string(), "callback_data": i.to_string()}))
            .collect();
        let kept = read(json!({"inline_keyboard": [wide]})).unwrap().unwrap();
        assert_eq!(buttons(&kept).count(), 12);
    }

    #[test]
    fn a_reply_keyboard_or_a_removal_gives_the_message_no_inline_keyboard() {
        assert_eq!(
            read(
                json!({"keyboard": [["a"]], "inline_keyboard": [[{"text": "x", "callback_data": "x"}]]})
            ),
            Ok(None)
        );
        assert_eq!(read(json!({"remove_keyboard": true})), Ok(None));
        assert_eq!(reply_markup(Some(&json!(""))), Ok(None));
    }

    #[test]
    fn field_errors_use_tds_wording() {
        let cases = [
            (json!({"inline_keyboard": [[{}]]}),
             "Bad Request: can't parse inline keyboard button: Can't find field \"text\""),
            (json!({"inline_keyboard": [[{"text": []}]]}),
             "Bad Request: can't parse inline keyboard button: Field \"text\" must be of type String"),
            (json!({"inline_keyboard": [[{"text": "x", "web_app": "https://x"}]]}),
             "Bad Request: can't parse inline keyboard button: Field \"web_app\" must be of type Object"),
            (json!({"inline_keyboard": [["x"]]}),
             "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object"),
            (json!({"inline_keyboard": {}}),
             "Bad Request: field \"inline_keyboard\" must be of type Array"),
            (json!({"keyboard": [[7]]}),
             "Bad Request: can't parse keyboard button: KeyboardButton must be a String or an Object"),
            (json!("{"), "Bad Request: can't parse reply keyboard markup JSON object"),
            (json!("[]"), "Bad Request: object expected as reply markup"),
        ];
        for (markup, description) in cases {
            assert_eq!(
                read(markup.clone()),
                Err(description.to_owned()),
                "{markup}"
            );
        }
    }

    #[test]
    fn a_button_is_found_by_data_label_or_place() {
        let markup = json!({"inline_keyboard": [
            [{"text": "+1", "callback_data": "inc"}, {"text": "site", "url": "https://x"}],
            [{"text": "-1", "callback_data": "dec"}]]});
        let find = |which| callback_data(Some(&markup), &which);
        assert_eq!(find(Which::Data("dec".into())), Ok("dec".to_owned()));
        assert_eq!(find(Which::Label("+1".into())), Ok("inc".to_owned()));
        assert_eq!(find(Which::Index(3)), Ok("dec".to_owned()));
        assert!(find(Which::Index(2))
            .unwrap_err()
            .contains("not a callback button"));
        assert!(find(Which::Index(0)).is_err());
        assert!(find(Which::Data("nope".into())).is_err());
        assert!(callback_data(None, &Which::Index(1)).is_err());
    }
}
