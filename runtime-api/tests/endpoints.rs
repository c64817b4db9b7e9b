//! The Runtime API as a function sees it: real HTTP requests on loopback to
//! each endpoint, checking both the answer and what the caller is told.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use lambda_runtime_api::{
    Invocation, Options, QueueError, Report, RuntimeApi, DEFAULT_FUNCTION_ARN,
    DEFAULT_FUNCTION_TIMEOUT, MAX_BODY_BYTES,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const REQUEST_ID: &str = "8f5e1c2a-0000-4000-8000-00000000002a";

fn client() -> reqwest::Client {
    // No proxy from the environment may stand between the test and loopback.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn url(api: &RuntimeApi, path: &str) -> String {
    format!("http://{}/2018-06-01/runtime/{path}", api.addr())
}

/// The next report, failing the test rather than hanging it.
async fn report(api: &mut RuntimeApi) -> Report {
    tokio::time::timeout(Duration::from_secs(5), api.report())
        .await
        .expect("a report in time")
        .expect("the server is running")
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .try_into()
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// Asks `/next` for the event, and checks the two reports that come with it.
async fn take_event(api: &mut RuntimeApi, http: &reqwest::Client) -> reqwest::Response {
    let response = http.get(url(api, "invocation/next")).send().await.unwrap();
    assert!(matches!(report(api).await, Report::NextAsked { .. }));
    match report(api).await {
        Report::HandedOut { request_id, .. } => assert_eq!(request_id, REQUEST_ID),
        other => panic!("expected the hand-out, got {other:?}"),
    }
    response
}

#[tokio::test]
async fn next_returns_the_queued_event_with_lambdas_headers() {
    let mut api = RuntimeApi::start(Options::default()).await.unwrap();
    api.queue(Invocation::new(REQUEST_ID, r#"{"body":"hi"}"#))
        .unwrap();
    let before = epoch_ms();
    let response = take_event(&mut api, &client()).await;
    let after = epoch_ms();

    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "lambda-runtime-aws-request-id"),
        REQUEST_ID
    );
    let deadline: u64 = header(&response, "lambda-runtime-deadline-ms")
        .parse()
        .unwrap();
    let timeout = u64::try_from(DEFAULT_FUNCTION_TIMEOUT.as_millis()).unwrap();
    assert!(
        (before + timeout..=after + timeout).contains(&deadline),
        "deadline {deadline} not 25 s after {before}..={after}"
    );
    assert_eq!(
        header(&response, "lambda-runtime-invoked-function-arn"),
        DEFAULT_FUNCTION_ARN
    );
    let trace = header(&response, "lambda-runtime-trace-id");
    assert!(trace.starts_with("Root=1-"), "{trace}");
    assert!(
        trace.ends_with("-00004000800000000000002a;Sampled=0"),
        "{trace}"
    );
    assert_eq!(header(&response, "content-type"), "application/json");
    assert_eq!(response.text().await.unwrap(), r#"{"body":"hi"}"#);
}

#[tokio::test]
async fn options_set_the_deadline_and_the_arn() {
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:other";
    let options = Options {
        function_timeout: Duration::from_secs(3),
        function_arn: arn.to_owned(),
    };
    let mut api = RuntimeApi::start(options).await.unwrap();
    api.queue(Invocation::new(REQUEST_ID, "{}")).unwrap();
    let before = epoch_ms();
    let response = take_event(&mut api, &client()).await;
    let after = epoch_ms();

    let deadline: u64 = header(&response, "lambda-runtime-deadline-ms")
        .parse()
        .unwrap();
    assert!((before + 3_000..=after + 3_000).contains(&deadline));
    assert_eq!(
        header(&response, "lambda-runtime-invoked-function-arn"),
        arn
    );
}

#[tokio::test]
async fn an_arn_that_is_no_header_value_is_refused_at_start() {
    let options = Options {
        function_arn: "arn\nwith a newline".to_owned(),
        ..Options::default()
    };
    let refused = RuntimeApi::start(options).await;
    assert!(matches!(
        refused,
        Err(lambda_runtime_api::StartError::InvalidFunctionArn(_))
    ));
}

#[tokio::test]
async fn next_waits_until_an_event_is_queued() {
    let mut api = RuntimeApi::start(Options::default()).await.unwrap();
    let http = client();
    let waiting = tokio::spawn(http.get(url(&api, "invocation/next")).send());
    assert!(matches!(report(&mut api).await, Report::NextAsked { .. }));
    // Nothing is handed out while nothing is queued.
    let early = tokio::time::timeout(Duration::from_millis(200), api.report()).await;
    assert!(early.is_err(), "reported {early:?} with nothing queued");
    assert!(!waiting.is_finished());

    api.queue(Invocation::new(REQUEST_ID, "{}")).unwrap();
    assert!(matches!(report(&mut api).await, Report::HandedOut { .. }));
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(
        header(&response, "lambda-runtime-aws-request-id"),
        REQUEST_ID
    );
}

#[tokio::test]
async fn a_response_is_reported_with_its_body() {
    let mut api = RuntimeApi::start(Options::default()).await.unwrap();
    let answer = r#"{"statusCode":200,"body":""}"#;
    let response = client()
        .post(url(&api, &format!("invocation/{REQUEST_ID}/response")))
        .body(answer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), r#"{"status":"OK"}"#);
    match report(&mut api).await {
        Report::Response {
            request_id, body, ..
        } => {
            assert_eq!(request_id, REQUEST_ID);
            assert_eq!(body, answer.as_bytes());
        }
        other => panic!("expected the response, got {other:?}"),
    }
}

#[tokio::test]
async fn an_invocation_error_is_reported_with_its_type_and_body() {
    let mut api = RuntimeApi::start(Options::default()).await.unwrap();
    let response = client()
        .post(url(&api, &format!("invocation/{REQUEST_ID}/error")))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.Panic")
        .body(r#"{"errorMessage":"boom"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(
        report(&mut api).await,
        Report::Error {
            request_id: REQUEST_ID.to_owned(),
            error_type: "Runtime.Panic".to_owned(),
            body: r#"{"errorMessage":"boom"}"#.into(),
        }
    );
}

#[tokio::test]
async fn an_init_error_is_reported_even_without_an_error_type() {
    let mut api = RuntimeApi::start(Options::default()).await.unwrap();
    let response = client()
        .post(url(&api, "init/error"))
        .body("no token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(
        report(&mut api).await,
        Report::InitError {
            error_type: "(none)".to_owned(),
            body: "no token".into(),
        }
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused() {
    let mut api = RuntimeApi::start(Options::default()).await.unwrap();
    let http = client();
    let requests = [
        http.get(url(&api, "invocation/nope")),
        http.post(url(&api, &format!("invocation/{REQUEST_ID}/done"))),
        http.put(url(&api, &format!("invocation/{REQUEST_ID}/response"))),
        http.post(format!("http://{}/2015-03-31/functions", api.addr())),
    ];
    let expected = [
        "GET /2018-06-01/runtime/invocation/nope".to_owned(),
        format!("POST /2018-06-01/runtime/invocation/{REQUEST_ID}/done"),
        format!("PUT /2018-06-01/runtime/invocation/{REQUEST_ID}/response"),
        "POST /2015-03-31/functions".to_owned(),
    ];
    for (request, expected) in requests.into_iter().zip(expected) {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 404, "{expected}");
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"status":"InvalidRequest"}"#
        );
        assert_eq!(
            report(&mut api).await,
            Report::Unexpected { what: expected }
        );
    }
}

#[tokio::test]
async fn a_body_over_lambdas_limit_is_refused() {
    let mut api = RuntimeApi::start(Options::default()).await.unwrap();
    let response = client()
        .post(url(&api, &format!("invocation/{REQUEST_ID}/response")))
        .body(vec![b'x'; MAX_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(matches!(
        report(&mut api).await,
        Report::Unexpected { what } if what.starts_with("a body over")
    ));
}

#[tokio::test]
async fn only_one_event_waits_at_a_time() {
    let api = RuntimeApi::start(Options::default()).await.unwrap();
    api.queue(Invocation::new(REQUEST_ID, "{}")).unwrap();
    let refused = api.queue(Invocation::new("second", "{}")).unwrap_err();
    assert!(matches!(refused, QueueError::Busy(_)));
    assert_eq!(refused.into_invocation().request_id, "second");
}

#[tokio::test]
async fn a_request_id_unfit_for_a_header_or_path_is_refused() {
    let api = RuntimeApi::start(Options::default()).await.unwrap();
    for id in ["", "a/b", "a\nb", "ü"] {
        let refused = api.queue(Invocation::new(id, "{}")).unwrap_err();
        assert!(matches!(refused, QueueError::InvalidRequestId(_)), "{id:?}");
    }
}
