//! The HTTP controls under `/_stand-in/`, as scripts and tests in other
//! processes use them.

use crate::helpers::{
    private_message, scaled_stand_in, set_webhook, stand_in, Api, Receiver, Verdict,
};
use serde_json::{json, Value};
use telegram_stand_in::StandIn;

/// Calls a control: GET without a body, POST with one. Returns the status
/// and the JSON answered.
async fn control(stand_in: &StandIn, endpoint: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}/_stand-in/{endpoint}", stand_in.base_url());
    let http = reqwest::Client::new();
    let request = match body {
        None => http.get(url),
        Some(body) => http.post(url).json(&body),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_can_be_driven_over_http_by_scripts() {
    let stand_in = scaled_stand_in().await;
    let receiver = Receiver::start(&stand_in, |update| {
        let name = update["message"]["from"]["first_name"].as_str().unwrap();
        Verdict::ok().replying(&format!("Hello, {name}!"))
    })
    .await;
    set_webhook(&stand_in, receiver.url(), &["message"]).await;
    let (status, answer) = control(
        &stand_in,
        "messages",
        Some(json!({"text": "/start", "first_name": "Sam"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["settled"], true);
    assert_eq!(answer["replies"], json!(["Hello, Sam!"]));
    assert!(answer["update_id"].is_i64(), "{answer}");
    // From the default user, in their private chat.
    assert_eq!(receiver.accepted_texts(1_000_001), ["/start"]);
    let (status, refusal) = control(&stand_in, "messages", Some(json!({"text": ""}))).await;
    assert_eq!((status, &refusal["ok"]), (400, &json!(false)), "{refusal}");
}

#[tokio::test]
async fn each_control_reads_or_changes_what_the_handle_does() {
    let stand_in = stand_in().await;
    let api = Api::new(&stand_in);
    let ok = (200, json!({"ok": true}));

    assert_eq!(
        control(&stand_in, "observe", Some(private_message(1, 10, 42))).await,
        ok
    );
    api.ok("sendMessage", json!({"chat_id": 42, "text": "hi"}))
        .await;
    let (_, sent) = control(&stand_in, "sent", None).await;
    assert_eq!(sent, json!(stand_in.sent_messages()));
    assert_eq!(sent[0]["text"], "hi");
    api.ok(
        "setMyCommands",
        json!({"commands": [{"command": "start", "description": "Start"}]}),
    )
    .await;
    let (_, commands) = control(&stand_in, "commands", None).await;
    assert_eq!(commands, json!(stand_in.commands()));
    assert_eq!(
        commands,
        json!([{"command": "start", "description": "Start"}])
    );
    let (_, calls) = control(&stand_in, "calls", None).await;
    assert_eq!(calls, json!(stand_in.calls()));
    assert_eq!(calls[0]["method"], "sendMessage");
    assert_eq!(
        (&calls[0]["status"], &calls[0]["performed"]),
        (&json!(200), &json!(true))
    );

    let fault = json!({"method": "SendMessage", "fault": {
        "kind": "error", "status": 500, "description": "Internal Server Error"}});
    assert_eq!(control(&stand_in, "faults", Some(fault.clone())).await, ok);
    let failed = api
        .call("sendMessage", json!({"chat_id": 42, "text": "x"}))
        .await;
    assert_eq!(failed.status, 500);
    let (status, _) = control(&stand_in, "faults", Some(json!({"method": "getMe"}))).await;
    assert_eq!(status, 400);

    let update = private_message(77, 11, 43);
    assert_eq!(
        control(&stand_in, "updates", Some(update.clone())).await,
        ok
    );
    assert_eq!(stand_in.pending_updates(), [update]);
    let (status, _) = control(&stand_in, "updates", Some(json!({"message": {}}))).await;
    assert_eq!(status, 400);

    // A reset forgets calls and faults, and keeps known chats.
    assert_eq!(control(&stand_in, "faults", Some(fault)).await, ok);
    assert_eq!(control(&stand_in, "reset", Some(json!({}))).await, ok);
    assert_eq!(control(&stand_in, "calls", None).await, (200, json!([])));
    api.ok("sendMessage", json!({"chat_id": 43, "text": "still known"}))
        .await;

    assert_eq!(
        control(&stand_in, "nothing-here", None).await,
        (404, json!({"ok": false, "description": "unknown control"}))
    );
}
