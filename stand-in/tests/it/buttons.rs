//! Inline keyboards and button presses: keyboards sent and edited with
//! Telegram's checks and descriptions, presses delivered as callback
//! queries by webhook and by getUpdates, and answers to them within
//! Telegram's rules.

use crate::helpers::{
    private_message, scaled_stand_in, set_webhook, stand_in, Api, Receiver, Verdict,
};
use serde_json::{json, Value};
use std::time::Duration;
use telegram_stand_in::{PressError, StandIn};

const CHAT: i64 = 42;

const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
const QUERY_INVALID: &str =
    "Bad Request: query is too old and response timeout expired or query ID is invalid";

fn counter_keyboard() -> Value {
    json!({"inline_keyboard": [
        [{"text": "+1", "callback_data": "inc"}, {"text": "-1", "callback_data": "dec"}],
        [{"text": "Docs", "url": "https://example.com/docs"}]
    ]})
}

async fn stand_in_with_chat() -> StandIn {
    let stand_in = stand_in().await;
    stand_in.observe_update(&private_message(1, 10, CHAT));
    stand_in
}

/// Sends "Count: 0" with the counter keyboard to [`CHAT`]; returns its id.
async fn send_counter(api: &Api) -> i64 {
    let message = api
        .ok(
            "sendMessage",
            json!({"chat_id": CHAT, "text": "Count: 0", "reply_markup": counter_keyboard()}),
        )
        .await;
    message["message_id"].as_i64().unwrap()
}

/// Calls a control with a JSON body; returns the status and the answer.
async fn control(stand_in: &StandIn, endpoint: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/_stand-in/{endpoint}", stand_in.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_keyboard_sent_with_a_message_comes_back_as_telegram_writes_it() {
    let stand_in = stand_in_with_chat().await;
    let api = Api::new(&stand_in);
    // Fields beside the first action are dropped; numbers become strings.
    let given = json!({"inline_keyboard": [
        [{"text": "+1", "callback_data": "inc", "url": ""}, {"text": "n", "callback_data": 7}],
        [{"text": "Docs", "url": "https://example.com/docs", "callback_data": "ignored"}]
    ]});
    let written = json!({"inline_keyboard": [
        [{"text": "+1", "callback_data": "inc"}, {"text": "n", "callback_data": "7"}],
        [{"text": "Docs", "url": "https://example.com/docs"}]
    ]});
    let message = api
        .ok(
            "sendMessage",
            json!({"chat_id": CHAT, "text": "pick", "reply_markup": given}),
        )
        .await;
    assert_eq!(message["reply_markup"], written);
    let id = message["message_id"].as_i64().unwrap();
    assert_eq!(stand_in.bot_message(CHAT, id).unwrap(), message);

    // Form clients send the keyboard as a JSON string.
    let url = format!(
        "{}/bot{}/sendMessage",
        stand_in.base_url(),
        stand_in.token()
    );
    let form: Value = reqwest::Client::new()
        .post(url)
        .form(&[
            ("chat_id", CHAT.to_string()),
            ("text", "from a form".to_owned()),
            ("reply_markup", counter_keyboard().to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(form["result"]["reply_markup"], counter_keyboard());

    // An empty keyboard is allowed, and the message then has none.
    let plain = api
        .ok(
            "sendMessage",
            json!({"chat_id": CHAT, "text": "no buttons", "reply_markup": {"inline_keyboard": []}}),
        )
        .await;
    assert!(plain.get("reply_markup").is_none(), "{plain}");

    // The record of sent messages shows the keyboards as the messages got them.
    let sent = stand_in.sent_messages();
    assert_eq!(sent[0]["reply_markup"], written);
    assert_eq!(sent[1]["reply_markup"], counter_keyboard());
    assert!(sent[2].get("reply_markup").is_none(), "{}", sent[2]);
    let over_http: Value = reqwest::get(format!("{}/_stand-in/sent", stand_in.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, json!(sent));
}

#[tokio::test]
async fn a_bad_keyboard_is_refused_with_telegrams_description() {
    let stand_in = stand_in_with_chat().await;
    let api = Api::new(&stand_in);
    let data_65 = "d".repeat(65);
    let cases = [
        (
            json!({"inline_keyboard": [{"text": "flat", "callback_data": "x"}]}),
            "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays",
        ),
        (
            json!({"inline_keyboard": "[]"}),
            "Bad Request: field \"inline_keyboard\" must be of type Array",
        ),
        (
            json!({"inline_keyboard": [["+1"]]}),
            "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object",
        ),
        (
            json!({"inline_keyboard": [[{"callback_data": "x"}]]}),
            "Bad Request: can't parse inline keyboard button: Can't find field \"text\"",
        ),
        (
            json!({"inline_keyboard": [[{"text": "no action"}]]}),
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            json!({"inline_keyboard": [[{"text": "empty data", "callback_data": ""}]]}),
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            json!({"inline_keyboard": [[{"text": "long", "callback_data": data_65}]]}),
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (json!([]), "Bad Request: object expected as reply markup"),
        (
            json!("{not json"),
            "Bad Request: can't parse reply keyboard markup JSON object",
        ),
    ];
    for (markup, description) in cases {
        let reply = api
            .call(
                "sendMessage",
                json!({"chat_id": CHAT, "text": "x", "reply_markup": markup}),
            )
            .await;
        assert_eq!(
            (reply.status, reply.description()),
            (400, description),
            "{markup}"
        );
    }
    assert!(stand_in.sent_messages().is_empty());
    // 64 bytes is the most: "é" is two bytes.
    let data_64 = "é".repeat(32);
    let message = api
        .ok(
            "sendMessage",
            json!({"chat_id": CHAT, "text": "x", "reply_markup":
                {"inline_keyboard": [[{"text": "max", "callback_data": data_64}]]}}),
        )
        .await;
    assert_eq!(
        message["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        data_64
    );
}

#[tokio::test]
async fn edits_change_the_bots_message_and_a_missing_keyboard_removes_it() {
    let stand_in = stand_in_with_chat().await;
    let api = Api::new(&stand_in);
    let id = send_counter(&api).await;
    let one_button = json!({"inline_keyboard": [[{"text": "+1", "callback_data": "inc"}]]});

    let edited = api
        .ok(
            "editMessageText",
            json!({"chat_id": CHAT, "message_id": id, "text": "Count: 1",
                   "reply_markup": one_button}),
        )
        .await;
    assert_eq!(
        (&edited["message_id"], &edited["text"]),
        (&json!(id), &json!("Count: 1"))
    );
    assert_eq!(edited["reply_markup"], one_button);
    assert!(edited["edit_date"].is_i64(), "{edited}");
    assert_eq!(stand_in.bot_message(CHAT, id).unwrap(), edited);

    // editMessageText without a keyboard removes it.
    let bare = api
        .ok(
            "editMessageText",
            json!({"chat_id": CHAT, "message_id": id, "text": "Count: 2"}),
        )
        .await;
    assert!(bare.get("reply_markup").is_none(), "{bare}");

    let with_keyboard = api
        .ok(
            "editMessageReplyMarkup",
            json!({"chat_id": CHAT, "message_id": id, "reply_markup": counter_keyboard()}),
        )
        .await;
    assert_eq!(
        (&with_keyboard["text"], &with_keyboard["reply_markup"]),
        (&json!("Count: 2"), &counter_keyboard())
    );
    let removed = api
        .ok(
            "editMessageReplyMarkup",
            json!({"chat_id": CHAT, "message_id": id}),
        )
        .await;
    assert!(removed.get("reply_markup").is_none(), "{removed}");
    assert_eq!(removed["text"], "Count: 2");
}

#[tokio::test]
async fn an_edit_that_changes_nothing_is_refused_as_not_modified() {
    let stand_in = stand_in_with_chat().await;
    let api = Api::new(&stand_in);
    let id = send_counter(&api).await;
    for (method, params) in [
        (
            "editMessageText",
            json!({"chat_id": CHAT, "message_id": id, "text": "Count: 0",
                   "reply_markup": counter_keyboard()}),
        ),
        (
            "editMessageReplyMarkup",
            json!({"chat_id": CHAT, "message_id": id,
                   "reply_markup": counter_keyboard().to_string()}),
        ),
    ] {
        let reply = api.call(method, params).await;
        assert_eq!((reply.status, reply.description()), (400, NOT_MODIFIED));
    }
    // Same text without the keyboard is a change: the keyboard goes.
    api.ok(
        "editMessageText",
        json!({"chat_id": CHAT, "message_id": id, "text": "Count: 0"}),
    )
    .await;
    let reply = api
        .call(
            "editMessageReplyMarkup",
            json!({"chat_id": CHAT, "message_id": id}),
        )
        .await;
    assert_eq!(reply.description(), NOT_MODIFIED);
}

#[tokio::test]
async fn an_edit_of_a_message_the_bot_did_not_send_is_refused_as_telegram_refuses_it() {
    let stand_in = stand_in_with_chat().await;
    let api = Api::new(&stand_in);
    let id = send_counter(&api).await;
    let cases = [
        (
            json!({"chat_id": CHAT, "message_id": 999_999, "text": "x"}),
            "Bad Request: message to edit not found",
        ),
        (
            json!({"chat_id": CHAT, "message_id": 0, "text": "x"}),
            "Bad Request: message to edit not found",
        ),
        // Message 10 is the user's (private_message), not the bot's.
        (
            json!({"chat_id": CHAT, "message_id": 10, "text": "x"}),
            "Bad Request: message can't be edited",
        ),
        (
            json!({"chat_id": 7, "message_id": id, "text": "x"}),
            "Bad Request: chat not found",
        ),
        (
            json!({"message_id": id, "text": "x"}),
            "Bad Request: chat_id is empty",
        ),
        (
            json!({"text": "x"}),
            "Bad Request: message identifier is not specified",
        ),
        (
            json!({"inline_message_id": "AgAAA", "text": "x"}),
            "Bad Request: inline_message_id is not supported by the stand-in",
        ),
        (
            json!({"chat_id": CHAT, "message_id": id}),
            "Bad Request: message text is empty",
        ),
        (
            json!({"chat_id": CHAT, "message_id": id, "text": " "}),
            "Bad Request: text must be non-empty",
        ),
        (
            json!({"chat_id": CHAT, "message_id": id, "text": "a".repeat(4097)}),
            "Bad Request: message is too long",
        ),
        (
            json!({"chat_id": CHAT, "message_id": id, "text": "x", "reply_markup":
                {"inline_keyboard": [[{"text": "x", "callback_data": "d".repeat(65)}]]}}),
            "Bad Request: BUTTON_DATA_INVALID",
        ),
    ];
    for (params, description) in cases {
        let reply = api.call("editMessageText", params.clone()).await;
        assert_eq!(
            (reply.status, reply.description()),
            (400, description),
            "{params}"
        );
    }
    let reply = api
        .call(
            "editMessageReplyMarkup",
            json!({"chat_id": CHAT, "message_id": 999_999}),
        )
        .await;
    assert_eq!(
        reply.description(),
        "Bad Request: message to edit not found"
    );
    assert_eq!(stand_in.bot_message(CHAT, id).unwrap()["text"], "Count: 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_is_delivered_by_webhook_and_its_query_is_answered_once() {
    // Unscaled: the answer must come within the 15 s window, however busy
    // the machine.
    let stand_in = stand_in_with_chat().await;
    let receiver = Receiver::start(&stand_in, |_| Verdict::ok()).await;
    let api = set_webhook(&stand_in, receiver.url(), &["message", "callback_query"]).await;
    let id = send_counter(&api).await;
    let update_id = stand_in.press_button(CHAT, "Ali", CHAT, id, "dec").unwrap();
    assert!(
        stand_in
            .wait_settled(update_id, Duration::from_secs(10))
            .await
    );
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let update = &received[0].update;
    assert_eq!(update["update_id"], update_id);
    let query = &update["callback_query"];
    assert_eq!(
        query["from"],
        json!({"id": CHAT, "is_bot": false, "first_name": "Ali"})
    );
    assert_eq!(query["data"], "dec");
    assert_eq!(query["message"], stand_in.bot_message(CHAT, id).unwrap());
    assert_eq!(query["message"]["chat"]["id"], CHAT);
    assert_eq!(query["message"]["reply_markup"], counter_keyboard());
    assert!(query["chat_instance"].is_string(), "{query}");
    let query_id = query["id"].as_str().unwrap();
    assert!(query_id.parse::<i64>().is_ok(), "{query_id}");

    let answered = api
        .ok(
            "answerCallbackQuery",
            json!({"callback_query_id": query_id, "text": "-1", "show_alert": true}),
        )
        .await;
    assert_eq!(answered, true);
    let again = api
        .call(
            "answerCallbackQuery",
            json!({"callback_query_id": query_id}),
        )
        .await;
    assert_eq!((again.status, again.description()), (400, QUERY_INVALID));
    assert_eq!(stand_in.callback_answer_count(query_id), 2);
    let answers = stand_in.callback_answers();
    assert_eq!(answers[0].text.as_deref(), Some("-1"));
    assert!(answers[0].show_alert && answers[0].accepted);
    assert!(!answers[1].accepted);
    assert_eq!(answers[1].error.as_deref(), Some(QUERY_INVALID));

    // Every press is a new query, in the same chat_instance.
    let second = stand_in.press_button(CHAT, "Ali", CHAT, id, "inc").unwrap();
    assert!(stand_in.wait_settled(second, Duration::from_secs(10)).await);
    let next = &receiver.received()[1].update["callback_query"];
    assert_ne!(next["id"], query["id"]);
    assert_eq!(next["chat_instance"], query["chat_instance"]);
}

#[tokio::test]
async fn a_press_is_delivered_by_get_updates_with_the_message_as_it_now_is() {
    let stand_in = stand_in_with_chat().await;
    let api = Api::new(&stand_in);
    let id = send_counter(&api).await;
    api.ok(
        "editMessageText",
        json!({"chat_id": CHAT, "message_id": id, "text": "Count: 5",
               "reply_markup": counter_keyboard()}),
    )
    .await;
    let update_id = stand_in.press_button(7, "Sam", CHAT, id, "inc").unwrap();
    let updates = api.ok("getUpdates", json!({"timeout": 5})).await;
    assert_eq!(updates.as_array().unwrap().len(), 1);
    let query = &updates[0]["callback_query"];
    assert_eq!(updates[0]["update_id"], update_id);
    assert_eq!(query["from"]["id"], 7);
    assert_eq!(query["data"], "inc");
    assert_eq!(query["message"]["text"], "Count: 5");
    assert!(query["message"]["edit_date"].is_i64(), "{query}");
    let answered = api
        .ok(
            "answerCallbackQuery",
            json!({"callback_query_id": query["id"], "text": "+1"}),
        )
        .await;
    assert_eq!(answered, true);
    api.ok("getUpdates", json!({"offset": update_id + 1})).await;
    assert!(stand_in.pending_updates().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_after_the_answer_window_is_refused() {
    // 15 Telegram seconds are 0.15 s here.
    let stand_in = scaled_stand_in().await;
    stand_in.observe_update(&private_message(1, 10, CHAT));
    let api = Api::new(&stand_in);
    let id = send_counter(&api).await;
    stand_in.press_button(CHAT, "Ali", CHAT, id, "inc").unwrap();
    let updates = api.ok("getUpdates", json!({})).await;
    let query_id = updates[0]["callback_query"]["id"].clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = api
        .call(
            "answerCallbackQuery",
            json!({"callback_query_id": query_id}),
        )
        .await;
    assert_eq!((late.status, late.description()), (400, QUERY_INVALID));
}

#[tokio::test]
async fn an_answer_to_an_unknown_query_or_with_too_long_a_text_is_refused() {
    let stand_in = stand_in_with_chat().await;
    let api = Api::new(&stand_in);
    for id in [json!("12345"), json!("not a number"), json!(null)] {
        let reply = api
            .call("answerCallbackQuery", json!({"callback_query_id": id}))
            .await;
        assert_eq!((reply.status, reply.description()), (400, QUERY_INVALID));
    }
    let id = send_counter(&api).await;
    stand_in.press_button(CHAT, "Ali", CHAT, id, "inc").unwrap();
    let query_id = api.ok("getUpdates", json!({})).await[0]["callback_query"]["id"].clone();
    let long = api
        .call(
            "answerCallbackQuery",
            json!({"callback_query_id": query_id, "text": "é".repeat(201)}),
        )
        .await;
    assert_eq!(
        (long.status, long.description()),
        (400, "Bad Request: MESSAGE_TOO_LONG")
    );
    // The refused answer did not use the query up.
    let fits = api
        .ok(
            "answerCallbackQuery",
            json!({"callback_query_id": query_id, "text": "é".repeat(200)}),
        )
        .await;
    assert_eq!(fits, true);
}

#[tokio::test]
async fn only_buttons_the_bots_message_shows_can_be_pressed() {
    let stand_in = stand_in_with_chat().await;
    let api = Api::new(&stand_in);
    let id = send_counter(&api).await;
    assert_eq!(
        stand_in.press_button(CHAT, "Ali", CHAT, 10, "inc"),
        Err(PressError::MessageNotFound {
            chat_id: CHAT,
            message_id: 10
        })
    );
    assert!(matches!(
        stand_in.press_button(CHAT, "Ali", CHAT, id, "reset"),
        Err(PressError::NoSuchButton { .. })
    ));
    api.ok(
        "editMessageReplyMarkup",
        json!({"chat_id": CHAT, "message_id": id}),
    )
    .await;
    assert!(matches!(
        stand_in.press_button(CHAT, "Ali", CHAT, id, "inc"),
        Err(PressError::NoSuchButton { .. })
    ));
    // No update is made for a kind the bot did not ask for.
    api.ok(
        "editMessageReplyMarkup",
        json!({"chat_id": CHAT, "message_id": id, "reply_markup": counter_keyboard()}),
    )
    .await;
    api.ok(
        "getUpdates",
        json!({"allowed_updates": ["message"], "timeout": 0}),
    )
    .await;
    assert_eq!(
        stand_in.press_button(CHAT, "Ali", CHAT, id, "inc"),
        Err(PressError::NotAllowed)
    );
    assert!(stand_in.pending_updates().is_empty());
}

/// A polling bot that counts presses: it edits the count into the message
/// and answers each query, then confirms the update.
async fn run_counter_bot(api: Api) {
    let mut offset = 0;
    let mut count = 0;
    loop {
        let updates = api
            .ok("getUpdates", json!({"offset": offset, "timeout": 5}))
            .await;
        for update in updates.as_array().unwrap() {
            offset = update["update_id"].as_i64().unwrap() + 1;
            let query = &update["callback_query"];
            if query.is_null() {
                continue;
            }
            count += if query["data"] == "inc" { 1 } else { -1 };
            let message = &query["message"];
            api.ok(
                "editMessageText",
                json!({"chat_id": message["chat"]["id"], "message_id": message["message_id"],
                       "text": format!("Count: {count}"), "reply_markup": message["reply_markup"]}),
            )
            .await;
            api.ok(
                "answerCallbackQuery",
                json!({"callback_query_id": query["id"], "text": format!("now {count}")}),
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_press_control_picks_a_button_and_waits_for_what_the_bot_did() {
    let stand_in = stand_in_with_chat().await;
    let api = Api::new(&stand_in);
    let id = send_counter(&api).await;
    let bot = tokio::spawn(run_counter_bot(api.clone()));

    let (status, answer) = control(
        &stand_in,
        "press",
        json!({"user_id": CHAT, "text": "+1", "wait": true}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["settled"], &answer["message_id"], &answer["data"]),
        (&json!(true), &json!(id), &json!("inc"))
    );
    assert_eq!(answer["edits"][0]["text"], "Count: 1");
    assert_eq!(answer["edits"][0]["reply_markup"], counter_keyboard());
    assert_eq!(answer["answers"][0]["text"], "now 1");
    assert_eq!(
        answer["answers"][0]["callback_query_id"],
        answer["callback_query_id"]
    );
    assert_eq!(answer["messages"], json!([]));

    let (_, answer) = control(
        &stand_in,
        "press",
        json!({"user_id": CHAT, "message_id": id, "index": 2, "wait": true}),
    )
    .await;
    assert_eq!(answer["data"], "dec");
    assert_eq!(answer["edits"][0]["text"], "Count: 0");

    // Without wait it answers at once with the update queued.
    let (status, answer) =
        control(&stand_in, "press", json!({"user_id": CHAT, "data": "inc"})).await;
    assert_eq!(status, 200);
    assert!(
        answer["update_id"].is_i64() && answer.get("settled").is_none(),
        "{answer}"
    );

    for (body, says) in [
        (
            json!({"user_id": CHAT, "text": "Docs"}),
            "not a callback button",
        ),
        (json!({"user_id": CHAT, "index": 9}), "no button number 9"),
        (
            json!({"user_id": CHAT, "data": "x", "text": "+1"}),
            "expected",
        ),
        (
            json!({"user_id": 5, "data": "inc"}),
            "has an inline keyboard",
        ),
        (
            json!({"user_id": CHAT, "message_id": 10, "data": "inc"}),
            "no message 10",
        ),
    ] {
        let (status, refusal) = control(&stand_in, "press", body.clone()).await;
        assert_eq!((status, &refusal["ok"]), (400, &json!(false)), "{body}");
        let description = refusal["description"].as_str().unwrap();
        assert!(description.contains(says), "{body}: {description}");
    }
    bot.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_control_also_answers_the_messages_as_telegram_returned_them() {
    let stand_in = scaled_stand_in().await;
    let receiver = Receiver::start(&stand_in, |_| Verdict::ok().replying("Hi!")).await;
    set_webhook(&stand_in, receiver.url(), &["message"]).await;
    let (status, answer) = control(
        &stand_in,
        "messages",
        json!({"text": "/start", "user_id": CHAT}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["replies"], json!(["Hi!"]));
    assert_eq!(answer["messages"][0]["text"], "Hi!");
    assert_eq!(answer["messages"][0]["chat"]["id"], CHAT);
    assert_eq!(answer["edits"], json!([]));
}
