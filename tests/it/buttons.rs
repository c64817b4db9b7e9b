//! Buttons: presses delivered by the stand-in's webhook to several
//! function instances sharing one DynamoDB table, each press answered once
//! and none lost.

use crate::helpers::{serve_functions, SECRET};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::memory::{Leases, Memory};
use telegram_lambda_bot::store::dynamodb::DynamoDbStore;
use telegram_lambda_bot::telegram::SetWebhook;
use telegram_lambda_bot::webhook::Webhook;
use telegram_stand_in::{Options, StandIn};
use testkit::{texts, until, Moto};

const TABLE: &str = "buttons";
const GROUP: i64 = -100_555_000;

fn webhook(stand_in: &StandIn, moto: &Moto) -> Arc<Webhook> {
    let base_url = stand_in.base_url();
    let vars = [
        ("TELEGRAM_BOT_TOKEN", stand_in.token()),
        ("TELEGRAM_API_BASE_URL", base_url.as_str()),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET),
    ];
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let memory = Memory::new(
        Arc::new(DynamoDbStore::new(&moto.sdk_config(), TABLE)),
        Leases::Shared,
    );
    Arc::new(Webhook::new(&config).unwrap().with_memory(Some(memory)))
}

fn group_command(update_id: i64, text: &str) -> serde_json::Value {
    json!({"update_id": update_id, "message": {
        "message_id": update_id,
        "date": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        "from": {"id": 2_000, "is_bot": false, "first_name": "Ali"},
        "chat": {"id": GROUP, "type": "supergroup", "title": "Counting"},
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": text.len()}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_presses_at_once_on_four_instances_count_exactly_twenty() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    moto.create_table(TABLE).await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let instances: Vec<Arc<Webhook>> = (0..4).map(|_| webhook(&stand_in, &moto)).collect();
    let url = serve_functions(instances).await;
    crate::helpers::api_for(&stand_in)
        .set_webhook(&SetWebhook {
            url,
            secret_token: Some(SECRET.to_owned()),
            allowed_updates: Some(vec!["message".into(), "callback_query".into()]),
            max_connections: Some(40),
            ..SetWebhook::default()
        })
        .await
        .unwrap();
    stand_in.enqueue_update(group_command(3_000, "/counter"));
    until("the counter is shown", 10, || {
        texts(&stand_in.sent_messages()) == ["Count: 0"]
    })
    .await;
    // Twenty people press +1 at the same moment: Telegram queues each
    // user's presses apart and delivers them side by side.
    let presses: Vec<i64> = (1..=20)
        .map(|user| {
            stand_in
                .press_shown_button(10_000 + user, "Presser", GROUP, "+1")
                .unwrap()
                .0
        })
        .collect();
    for press in &presses {
        assert!(stand_in.wait_settled(*press, Duration::from_secs(30)).await);
    }
    // Each press answered once. (A press that lost too many races in a row
    // gets a 5xx and comes again; its second answer is refused by Telegram
    // as already given, and counts as done.)
    let answers = stand_in.callback_answers();
    let queries: std::collections::BTreeSet<&str> = answers
        .iter()
        .map(|a| a.callback_query_id.as_str())
        .collect();
    assert_eq!(queries.len(), 20, "every press answered: {answers:?}");
    for id in queries {
        let accepted = answers
            .iter()
            .filter(|a| a.callback_query_id == id && a.accepted)
            .count();
        assert_eq!(accepted, 1, "{id}: {answers:?}");
    }
    stand_in.enqueue_update(group_command(3_001, "/counter"));
    until("the count shown again", 10, || {
        stand_in.sent_messages().len() == 2
    })
    .await;
    assert_eq!(texts(&stand_in.sent_messages())[1], "Count: 20");
}
