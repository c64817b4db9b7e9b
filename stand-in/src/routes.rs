//! Routing: a request's path to a control endpoint or a Bot API method, the
//! checks Telegram makes before any method (the token, the method's name,
//! the parameters), recording each call, and the fault injected into it.
//! Status codes and descriptions follow Telegram's server.

use crate::answers::{
    error_response, html_response, method_response, migrated_response, raw_response, Cut,
    MethodResult, Refusal,
};
use crate::callbacks::answer_callback_query;
use crate::commands::{delete_my_commands, get_my_commands, set_my_commands};
use crate::control::control;
use crate::messages::{
    edit_message_reply_markup, edit_message_text, get_me, send_chat_action, send_message,
    send_message_draft,
};
use crate::params::parse_params;
use crate::shared::Shared;
use crate::state::{Call, Fault};
use crate::updates::{delete_webhook, get_updates, get_webhook_info, set_webhook};
use bytes::Bytes;
use http_body_util::Full;
use hyper::http::request::Parts;
use hyper::Response;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

const KNOWN_METHODS: &[&str] = &[
    "getme",
    "sendmessage",
    "sendchataction",
    "sendmessagedraft",
    "setwebhook",
    "deletewebhook",
    "getwebhookinfo",
    "getupdates",
    "editmessagetext",
    "editmessagereplymarkup",
    "answercallbackquery",
    "setmycommands",
    "getmycommands",
    "deletemycommands",
];

/// A token is `<digits>:<letters, digits, _ and ->`; anything else is not a
/// bot path at all for Telegram and answers 404.
fn well_formed_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

pub(crate) async fn route(
    shared: &Arc<Shared>,
    parts: Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Cut> {
    let path = parts.uri.path();
    if let Some(endpoint) = path.strip_prefix("/_stand-in/") {
        return Ok(control(shared, endpoint, &body).await);
    }
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Ok(error_response(404, "Not Found", None));
    };
    let method_key = method.to_ascii_lowercase();
    // Refused calls are recorded too, so a test can tell "never called" from
    // "called and refused".
    let refusal = if !well_formed_token(token) {
        Some(Refusal::new(404, "Not Found"))
    } else if token != shared.options.token {
        Some(Refusal::new(401, "Unauthorized"))
    } else if !KNOWN_METHODS.contains(&method_key.as_str()) {
        Some(Refusal::new(404, "Not Found"))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        let params = parse_params(&parts, &body).map_or(Value::Null, Value::Object);
        let call = record(shared, method, params);
        finish(shared, call, refusal.status, false);
        return Ok(refusal.into_response());
    }
    let params = match parse_params(&parts, &body) {
        Ok(params) => params,
        Err(refusal) => {
            let call = record(shared, method, Value::Null);
            finish(shared, call, refusal.status, false);
            return Ok(refusal.into_response());
        }
    };
    // Recorded on arrival, so a test can see a call that is still in flight.
    let call = record(shared, method, Value::Object(params.clone()));
    let chat = params.get("chat_id").and_then(Value::as_i64);
    let fault = {
        let mut state = shared.state();
        let sticky =
            chat.and_then(|chat| state.chat_faults.get(&(method_key.clone(), chat)).cloned());
        sticky.or_else(|| {
            state
                .faults
                .get_mut(&method_key)
                .and_then(|queue| queue.pop_front())
        })
    };
    let mut truncate = false;
    let mut answer_after = None;
    match fault {
        Some(Fault::Error {
            status,
            description,
            retry_after,
            migrate_to_chat_id,
        }) => {
            finish(shared, call, status, false);
            return Ok(match migrate_to_chat_id {
                Some(chat_id) => migrated_response(status, &description, chat_id),
                None => error_response(status, &description, retry_after),
            });
        }
        Some(Fault::Html { status }) => {
            finish(shared, call, status, false);
            return Ok(html_response(status));
        }
        Some(Fault::Drop) => return Err(Cut::Drop),
        Some(Fault::Raw { status, body }) => {
            finish(shared, call, status, false);
            return Ok(raw_response(status, body));
        }
        Some(Fault::Truncated) => truncate = true,
        Some(Fault::Delay { millis }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        Some(Fault::SlowAnswer { millis }) => answer_after = Some(millis),
        None => {}
    }
    let result = call_method(shared, &method_key, &params).await;
    if method_key == "setwebhook" {
        // Wake the delivery loop for the new webhook.
        shared.updates_arrived.notify_waiters();
    }
    let (status, response) = method_response(result);
    finish(shared, call, status, status == 200);
    if let Some(millis) = answer_after {
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }
    if truncate {
        return Err(Cut::MidAnswer(response));
    }
    Ok(response)
}

/// Carries out the method named `method_key` (lower case, known).
async fn call_method(
    shared: &Shared,
    method_key: &str,
    params: &Map<String, Value>,
) -> MethodResult {
    match method_key {
        "getme" => Ok(get_me(shared)),
        "sendmessage" => send_message(shared, params),
        "sendchataction" => send_chat_action(shared, params),
        "sendmessagedraft" => send_message_draft(shared, params),
        "setwebhook" => set_webhook(shared, params),
        "deletewebhook" => delete_webhook(shared, params),
        "getwebhookinfo" => Ok(get_webhook_info(shared)),
        "getupdates" => get_updates(shared, params).await,
        "editmessagetext" => edit_message_text(shared, params),
        "editmessagereplymarkup" => edit_message_reply_markup(shared, params),
        "answercallbackquery" => answer_callback_query(shared, params),
        "setmycommands" => set_my_commands(shared, params),
        "getmycommands" => get_my_commands(shared, params),
        "deletemycommands" => delete_my_commands(shared, params),
        _ => Err(Refusal::new(404, "Not Found")),
    }
}

/// Where a call was recorded: its place, in the list of calls since the
/// last reset.
#[derive(Clone, Copy)]
struct CallRef {
    generation: u64,
    index: usize,
}

fn record(shared: &Shared, method: &str, params: Value) -> CallRef {
    let mut state = shared.state();
    state.calls.push(Call {
        method: method.to_owned(),
        params,
        status: 0,
        performed: false,
        performed_at: None,
    });
    CallRef {
        generation: state.calls_generation,
        index: state.calls.len() - 1,
    }
}

/// Sets the status of a recorded call, and whether it was carried out,
/// unless a reset forgot it meanwhile.
fn finish(shared: &Shared, call: CallRef, status: u16, performed: bool) {
    let mut state = shared.state();
    if state.calls_generation == call.generation {
        if let Some(recorded) = state.calls.get_mut(call.index) {
            recorded.status = status;
            recorded.performed = performed;
            recorded.performed_at = performed.then(std::time::Instant::now);
        }
    }
}
