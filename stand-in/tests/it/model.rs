//! The fake model: an OpenAI-compatible Chat Completions API that streams
//! its answer as OpenAI does, checks the key and the request, and fails on
//! demand.

use serde_json::json;
use std::time::Duration;
use telegram_stand_in::{FakeModel, ModelFault, ModelOptions, FAKE_MODEL_KEY};

async fn ask(model: &FakeModel, key: &str, body: serde_json::Value) -> (u16, String) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .post(format!("{}/chat/completions", model.base_url()))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn question(text: &str) -> serde_json::Value {
    json!({"model": "fake", "stream": true, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn an_answer_streams_as_chunks_a_finish_and_done() {
    let model = FakeModel::start(ModelOptions {
        answer: Some("Two words".into()),
        piece_interval: Duration::from_millis(1),
        ..ModelOptions::default()
    })
    .await
    .unwrap();
    let (status, body) = ask(&model, FAKE_MODEL_KEY, question("Hi?")).await;
    assert_eq!(status, 200);
    let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 5, "{body}");
    assert!(events[1].contains(r#""content":"Two ""#), "{body}");
    assert!(events[3].contains(r#""finish_reason":"stop""#), "{body}");
    assert_eq!(events[4], "data: [DONE]");
    assert_eq!(model.requests()[0]["messages"][0]["content"], "Hi?");
}

#[tokio::test]
async fn a_wrong_key_or_request_is_refused_as_openai_refuses_it() {
    let model = FakeModel::start(ModelOptions::default()).await.unwrap();
    let (status, body) = ask(&model, "sk-wrong", question("Hi?")).await;
    assert_eq!(status, 401);
    assert!(
        body.contains("invalid_api_key") && !body.contains("sk-wrong"),
        "{body}"
    );
    let (status, _) = ask(
        &model,
        FAKE_MODEL_KEY,
        json!({"model": "fake", "messages": []}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = ask(
        &model,
        FAKE_MODEL_KEY,
        json!({"messages": [{"role": "user", "content": "a"}]}),
    )
    .await;
    assert_eq!(status, 400);
    // Refused requests are not answers.
    assert!(model.requests().is_empty());
}

#[tokio::test]
async fn faults_come_in_the_order_they_were_asked_for() {
    let model = FakeModel::start(ModelOptions {
        answer: Some("one two three".into()),
        piece_interval: Duration::from_millis(1),
        ..ModelOptions::default()
    })
    .await
    .unwrap();
    model.fail_next(ModelFault::TooManyRequests { retry_after: 2 });
    model.fail_next(ModelFault::ServerError);
    model.fail_next(ModelFault::CutAfter(1));
    model.fail_next(ModelFault::ErrorAfter(1));
    model.fail_next(ModelFault::FinishWith("length".into()));
    assert_eq!(ask(&model, FAKE_MODEL_KEY, question("a")).await.0, 429);
    assert_eq!(ask(&model, FAKE_MODEL_KEY, question("a")).await.0, 500);
    let (_, cut) = ask(&model, FAKE_MODEL_KEY, question("a")).await;
    assert!(
        cut.contains("one ") && !cut.contains("two") && !cut.contains("[DONE]"),
        "{cut}"
    );
    let (_, error) = ask(&model, FAKE_MODEL_KEY, question("a")).await;
    assert!(
        error.contains(r#""error""#) && !error.contains("[DONE]"),
        "{error}"
    );
    let (_, long) = ask(&model, FAKE_MODEL_KEY, question("a")).await;
    assert!(long.contains(r#""finish_reason":"length""#), "{long}");
    let (_, fine) = ask(&model, FAKE_MODEL_KEY, question("a")).await;
    assert!(fine.contains(r#""finish_reason":"stop""#), "{fine}");
}
