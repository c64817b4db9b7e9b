//! Reading a call's parameters as Telegram does: from the query string, a
//! form or a JSON body, with numbers, booleans, objects and lists accepted
//! both as JSON values and, from forms, as strings.

use crate::answers::Refusal;
use bytes::Bytes;
use hyper::http::request::Parts;
use serde_json::{Map, Value};

/// Merges query string, then form or JSON body, as Telegram accepts all three.
pub(crate) fn parse_params(parts: &Parts, body: &Bytes) -> Result<Map<String, Value>, Refusal> {
    let mut params = Map::new();
    if let Some(query) = parts.uri.query() {
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    if body.is_empty() {
        return Ok(params);
    }
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => params.extend(object),
            Ok(_) => return Err(Refusal::bad_request("JSON object expected")),
            Err(_) => return Err(Refusal::bad_request("can't parse JSON encoded request")),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in form_urlencoded::parse(body) {
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    Ok(params)
}

/// A parameter as the server's `query->arg` holds it: a string as given,
/// any other JSON value as its JSON text (HttpReader::parse_json_parameters
/// keeps it raw, so `null` is "null"), "" when left out.
pub(crate) fn arg_text(params: &Map<String, Value>, name: &str) -> String {
    match params.get(name) {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Reads an integer given as a JSON number or, from forms, a string.
pub(crate) fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn boolean(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// An object parameter, given as JSON or, from forms, as a JSON string.
pub(crate) fn object(value: &Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(o) => Some(o.clone()),
        Value::String(s) => match serde_json::from_str(s) {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        },
        _ => None,
    }
}

/// The update kinds in an `allowed_updates` parameter, given as a JSON
/// array or, from forms, as a string holding one. Entries that are not
/// strings are ignored; an empty list is returned as such, for the caller
/// to read as its method does.
pub(crate) fn allowed_update_kinds(value: &Value) -> Result<Vec<String>, Refusal> {
    let list = match value {
        Value::String(s) => serde_json::from_str::<Value>(s).ok(),
        other => Some(other.clone()),
    };
    let Some(Value::Array(items)) = list else {
        return Err(Refusal::bad_request(
            "can't parse allowed updates JSON array",
        ));
    };
    Ok(items
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allowed_updates_are_read_from_a_list_or_a_string_holding_one() {
        let kinds = vec!["message".to_owned(), "callback_query".to_owned()];
        let list = json!(["message", "callback_query", 7]);
        assert_eq!(allowed_update_kinds(&list), Ok(kinds.clone()));
        let string = json!(r#"["message","callback_query"]"#);
        assert_eq!(allowed_update_kinds(&string), Ok(kinds));
        assert_eq!(allowed_update_kinds(&json!([])), Ok(Vec::new()));
        for bad in [json!("message"), json!({"kind": "message"}), Value::Null] {
            let refusal = allowed_update_kinds(&bad).unwrap_err();
            assert_eq!(
                refusal.description,
                "Bad Request: can't parse allowed updates JSON array"
            );
        }
    }
}
