//! A fake outside web service (a weather API) on loopback, for tests of
//! handlers that call an HTTP API: it answers deterministically, counts
//! what it received, and fails, stalls or garbles answers on request, so a
//! test can check the handler's timeouts, retries and error replies.
//!
//! `GET /weather?city=<name>` answers [`weather`]`(name)` as JSON; a
//! missing `city` is a 400 and any other path a 404, both with a JSON
//! error body (`{"error": "..."}`).
#![deny(clippy::unwrap_used, clippy::expect_used)]

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How long a request under [`FakeService::hang_next`] waits before its
/// connection is dropped unanswered, so that a client without a timeout
/// does not keep a task alive for ever.
pub const HANG_LIMIT: Duration = Duration::from_secs(600);

/// What the service sends back for one request.
type Answer = Response<Full<Bytes>>;

/// What the service does to one request instead of (or before) answering.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Fail(StatusCode),
    Slow(Duration),
    Hang,
    BadJson,
}

/// Faults still to apply: the queue in order, then none; `always` wins
/// over the queue (which waits untouched) while it is set.
#[derive(Default)]
struct Faults {
    queue: VecDeque<Fault>,
    always: Option<StatusCode>,
}

/// What the server task and the test share.
struct State {
    calls: watch::Sender<usize>,
    by_city: Mutex<HashMap<String, usize>>,
    faults: Mutex<Faults>,
}

/// A lock that a panicking test thread cannot make unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fake weather API on `127.0.0.1`, serving until dropped.
pub struct FakeService {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl Drop for FakeService {
    /// Stops the server and every connection it holds, hung ones included.
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeService {
    /// Starts the service on a port the OS chooses; a failure to listen on
    /// loopback fails the test.
    pub async fn start() -> FakeService {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(error) => panic!("fake service: cannot listen on loopback: {error}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(error) => panic!("fake service: no local address: {error}"),
        };
        let state = Arc::new(State {
            calls: watch::Sender::new(0),
            by_city: Mutex::default(),
            faults: Mutex::default(),
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        FakeService {
            addr,
            state,
            server,
        }
    }

    /// The URL to give the code under test, such as `http://127.0.0.1:PORT`
    /// (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, whatever its path or answer.
    pub fn calls(&self) -> usize {
        *self.state.calls.borrow()
    }

    /// Requests received so far for `GET /weather?city=<city>` (decoded),
    /// faulted ones included.
    pub fn calls_for(&self, city: &str) -> usize {
        lock(&self.state.by_city).get(city).copied().unwrap_or(0)
    }

    /// Waits until the service has received `n` requests in all; `false`
    /// if `timeout` passed first.
    pub async fn wait_for_calls(&self, n: usize, timeout: Duration) -> bool {
        let mut calls = self.state.calls.subscribe();
        let reached = tokio::time::timeout(timeout, calls.wait_for(|calls| *calls >= n)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// The next `n` requests get `status` with a JSON error body.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.queue(n, Fault::Fail(status_code(status)));
    }

    /// The next `n` requests are answered as usual, after `delay`.
    pub fn slow_next(&self, n: usize, delay: Duration) {
        self.queue(n, Fault::Slow(delay));
    }

    /// The next `n` requests get no answer: the client waits until it gives
    /// up (or for [`HANG_LIMIT`]). Other connections are served meanwhile.
    pub fn hang_next(&self, n: usize) {
        self.queue(n, Fault::Hang);
    }

    /// The next `n` requests get a 200 whose body is not JSON (cut short).
    pub fn bad_json_next(&self, n: usize) {
        self.queue(n, Fault::BadJson);
    }

    /// Every request gets `status` with a JSON error body, as in an outage,
    /// until [`FakeService::heal`]; queued faults wait meanwhile.
    pub fn fail_always(&self, status: u16) {
        lock(&self.state.faults).always = Some(status_code(status));
    }

    /// Back to healthy: ends [`FakeService::fail_always`] and drops any
    /// queued fault.
    pub fn heal(&self) {
        *lock(&self.state.faults) = Faults::default();
    }

    fn queue(&self, n: usize, fault: Fault) {
        lock(&self.state.faults)
            .queue
            .extend(std::iter::repeat_n(fault, n));
    }
}

/// A status the caller asked for; one outside 100..=999 is a test's bug.
fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status)
        .unwrap_or_else(|_| panic!("fake service: {status} is not an HTTP status"))
}

/// The service's answer for `city`: the temperature (-10.0 to 34.9, one
/// decimal) and summary are derived from the name, so tests can predict
/// them.
pub fn weather(city: &str) -> Value {
    const SUMMARIES: [&str; 5] = ["sunny", "cloudy", "rain", "snow", "fog"];
    let seed = city.chars().fold(0u32, |seed, c| {
        seed.wrapping_mul(31).wrapping_add(u32::from(c))
    });
    let temperature_c = (f64::from(seed % 450) - 100.0) / 10.0;
    let summary = SUMMARIES[seed as usize % SUMMARIES.len()];
    json!({ "city": city, "temperature_c": temperature_c, "summary": summary })
}

/// Accepts connections until the task is aborted; each connection is its
/// own task (a hung request holds only its own), and they all end with it.
async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or a connection reset before accept:
                // retry without spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let state = state.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| answer(state.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Counts `request`, applies the next fault, then answers it.
async fn answer(state: Arc<State>, request: Request<Incoming>) -> Result<Answer, std::io::Error> {
    let path = request.uri().path().to_owned();
    let city = request
        .uri()
        .query()
        .and_then(|query| query_param(query, "city"))
        .filter(|city| !city.is_empty() && path == "/weather");
    if let Some(city) = &city {
        *lock(&state.by_city).entry(city.clone()).or_default() += 1;
    }
    state.calls.send_modify(|calls| *calls += 1);
    let fault = {
        let mut faults = lock(&state.faults);
        faults
            .always
            .map(Fault::Fail)
            .or_else(|| faults.queue.pop_front())
    };
    match fault {
        Some(Fault::Fail(status)) => return Ok(error(status, "injected failure")),
        Some(Fault::BadJson) => return Ok(body(StatusCode::OK, "{\"city\": \"".to_owned())),
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Hang) => {
            tokio::time::sleep(HANG_LIMIT).await;
            return Err(std::io::Error::other("fake service: hung up"));
        }
        None => {}
    }
    Ok(match (path.as_str(), city) {
        ("/weather", _) if request.method() != Method::GET => {
            error(StatusCode::METHOD_NOT_ALLOWED, "only GET")
        }
        ("/weather", Some(city)) => body(StatusCode::OK, weather(&city).to_string()),
        ("/weather", None) => error(StatusCode::BAD_REQUEST, "missing query parameter: city"),
        (path, _) => error(StatusCode::NOT_FOUND, &format!("no such path: {path}")),
    })
}

/// The first value of `name` in a query string, percent-decoded (`+` is a
/// space; a malformed escape is kept as it is).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

/// `text` with its `%XX` escapes and `+` decoded; invalid UTF-8 becomes U+FFFD.
fn decode(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        let escaped = tail
            .get(..2)
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        rest = tail;
        match (first, escaped) {
            (b'%', Some(byte)) => {
                bytes.push(byte);
                rest = tail.get(2..).unwrap_or_default();
            }
            (b'+', _) => bytes.push(b' '),
            _ => bytes.push(first),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A JSON error answer: `{"error": message}`.
fn error(status: StatusCode, message: &str) -> Answer {
    body(status, json!({ "error": message }).to_string())
}

/// An answer with `text` as its body, labelled JSON (even when it is not).
fn body(status: StatusCode, text: String) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    /// Status and parsed JSON body (`None` when the body is not JSON).
    async fn get(service: &FakeService, path: &str) -> (u16, Option<Value>) {
        let url = format!("{}{path}", service.base_url());
        let response = client().get(url).send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).ok())
    }

    #[tokio::test]
    async fn answers_weather_for_a_decoded_city() {
        let service = FakeService::start().await;
        assert!(service.base_url().starts_with("http://127.0.0.1:"));
        let (status, body) = get(&service, "/weather?city=S%C3%A3o%20Paulo").await;
        assert_eq!(status, 200);
        let body = body.unwrap();
        assert_eq!(body, weather("São Paulo"));
        assert_eq!(body["city"], "São Paulo");
        assert!(body["temperature_c"].is_f64());
        assert!(body["summary"].is_string());
        assert_eq!(
            get(&service, "/weather?city=Oslo").await.1.unwrap(),
            weather("Oslo")
        );
        assert_eq!(
            get(&service, "/weather?city=Oslo").await.1.unwrap(),
            weather("Oslo")
        );
    }

    #[test]
    fn query_decoding_handles_escapes_plus_and_malformed_input() {
        assert_eq!(decode("S%C3%A3o%20Paulo"), "São Paulo");
        assert_eq!(decode("New+York"), "New York");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%+1"), "% 1");
        assert_eq!(decode("%FF"), "\u{FFFD}");
        let query = "units=c&city=Rio%20de%20Janeiro&city=Oslo";
        assert_eq!(
            query_param(query, "city").as_deref(),
            Some("Rio de Janeiro")
        );
        assert_eq!(query_param("city", "city").as_deref(), Some(""));
        assert_eq!(query_param("town=Oslo", "city"), None);
    }

    #[tokio::test]
    async fn unknown_path_is_404_with_json_error() {
        let service = FakeService::start().await;
        let (status, body) = get(&service, "/forecast?city=Oslo").await;
        assert_eq!(status, 404);
        assert!(body.unwrap()["error"].is_string());
    }

    #[tokio::test]
    async fn missing_city_is_400_with_json_error() {
        let service = FakeService::start().await;
        for path in ["/weather", "/weather?town=Oslo", "/weather?city="] {
            let (status, body) = get(&service, path).await;
            assert_eq!(status, 400, "{path}");
            assert!(body.unwrap()["error"].is_string());
        }
    }

    #[tokio::test]
    async fn counts_every_request_and_per_city_including_faults() {
        let service = FakeService::start().await;
        service.fail_next(1, 500);
        assert_eq!(get(&service, "/weather?city=Paris").await.0, 500);
        get(&service, "/weather?city=Paris").await;
        get(&service, "/weather?city=S%C3%A3o+Paulo").await;
        get(&service, "/nowhere").await;
        assert_eq!(service.calls(), 4);
        assert_eq!(service.calls_for("Paris"), 2);
        assert_eq!(service.calls_for("São Paulo"), 1);
        assert_eq!(service.calls_for("Oslo"), 0);
    }

    #[tokio::test]
    async fn fail_next_fails_that_many_then_recovers() {
        let service = FakeService::start().await;
        service.fail_next(2, 503);
        for _ in 0..2 {
            let (status, body) = get(&service, "/weather?city=Oslo").await;
            assert_eq!(status, 503);
            assert!(body.unwrap()["error"].is_string());
        }
        assert_eq!(get(&service, "/weather?city=Oslo").await.0, 200);
    }

    #[tokio::test]
    async fn slow_next_answers_correctly_after_the_delay() {
        let service = FakeService::start().await;
        service.slow_next(1, Duration::from_millis(200));
        let started = Instant::now();
        let (status, body) = get(&service, "/weather?city=Oslo").await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!((status, body.unwrap()), (200, weather("Oslo")));
    }

    #[tokio::test]
    async fn hang_next_never_answers_while_others_are_served() {
        let service = FakeService::start().await;
        service.hang_next(1);
        let url = format!("{}/weather?city=Oslo", service.base_url());
        let hung = tokio::spawn(client().get(url).timeout(Duration::from_millis(500)).send());
        assert!(service.wait_for_calls(1, Duration::from_secs(5)).await);
        assert_eq!(get(&service, "/weather?city=Rome").await.0, 200);
        assert!(!hung.is_finished());
        assert!(hung.await.unwrap().unwrap_err().is_timeout());
    }

    #[tokio::test]
    async fn drop_ends_hung_requests_and_stops_serving() {
        let service = FakeService::start().await;
        let base_url = service.base_url();
        service.hang_next(1);
        let hung = tokio::spawn(
            client()
                .get(format!("{base_url}/weather?city=Oslo"))
                .timeout(Duration::from_secs(30))
                .send(),
        );
        assert!(service.wait_for_calls(1, Duration::from_secs(5)).await);
        let dropped = Instant::now();
        drop(service);
        let error = hung.await.unwrap().unwrap_err();
        assert!(!error.is_timeout(), "{error}");
        assert!(dropped.elapsed() < Duration::from_secs(5));
        assert!(client().get(base_url).send().await.is_err());
    }

    #[tokio::test]
    async fn bad_json_next_is_200_with_a_body_that_is_not_json() {
        let service = FakeService::start().await;
        service.bad_json_next(1);
        assert_eq!(get(&service, "/weather?city=Oslo").await, (200, None));
        assert_eq!(
            get(&service, "/weather?city=Oslo").await.1,
            Some(weather("Oslo"))
        );
    }

    #[tokio::test]
    async fn fail_always_until_heal() {
        let service = FakeService::start().await;
        service.fail_always(502);
        for _ in 0..3 {
            assert_eq!(get(&service, "/weather?city=Oslo").await.0, 502);
        }
        service.heal();
        assert_eq!(get(&service, "/weather?city=Oslo").await.0, 200);
    }

    #[tokio::test]
    async fn faults_apply_in_the_order_queued() {
        let service = FakeService::start().await;
        service.bad_json_next(1);
        service.fail_next(1, 429);
        service.slow_next(1, Duration::from_millis(100));
        assert_eq!(get(&service, "/weather?city=Oslo").await, (200, None));
        assert_eq!(get(&service, "/weather?city=Oslo").await.0, 429);
        let started = Instant::now();
        assert_eq!(get(&service, "/weather?city=Oslo").await.0, 200);
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(get(&service, "/weather?city=Oslo").await.0, 200);
    }

    #[tokio::test]
    async fn wait_for_calls_wakes_on_the_nth_call_or_times_out() {
        let service = FakeService::start().await;
        let url = format!("{}/weather?city=Oslo", service.base_url());
        tokio::spawn(async move {
            for _ in 0..2 {
                let _ = client().get(&url).send().await;
            }
        });
        assert!(service.wait_for_calls(2, Duration::from_secs(5)).await);
        assert!(!service.wait_for_calls(3, Duration::from_millis(50)).await);
        assert_eq!(service.calls(), 2);
    }
}
