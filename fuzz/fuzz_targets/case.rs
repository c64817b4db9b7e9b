//! The fuzz target's one run, shared with the stable test that replays its
//! seeds and random inputs (tests/it/fuzz_seeds.rs): the request an input
//! describes goes into the real handler, with the Bot API answered by the
//! stand-in on loopback.
//!
//! Input layout: one flags byte, then (for a wrong secret) the secret's
//! bytes up to the first 0x00, then the body.
//!   bit 0: the body is base64-encoded (isBase64Encoded)
//!   bits 1-2: secret header: 0 right, 1 missing, 2 wrong, 3 right twice
//!   bits 3-4: method: 0 POST, 1 GET, 2 PUT, 3 a lowercase "post"
//! Checked: no panic, no hang (each run has a 3 s deadline), a status from
//! the documented set, and no Bot API call for a request without the right
//! secret.

use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::Duration;
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::webhook::{handle_event, Webhook};
use telegram_stand_in::{Options, StandIn};

const SECRET: &str = "local-dev-secret";
const STATUSES: &[u16] = &[200, 400, 401, 405, 413, 500, 502, 503];

/// The stand-in and the webhook, built once and kept for every run.
pub struct World {
    runtime: tokio::runtime::Runtime,
    stand_in: StandIn,
    webhook: Webhook,
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let stand_in = runtime
            .block_on(StandIn::start(Options::default()))
            .expect("the stand-in starts");
        let vars = [
            ("TELEGRAM_BOT_TOKEN", stand_in.token().to_owned()),
            ("TELEGRAM_API_BASE_URL", stand_in.base_url()),
            ("TELEGRAM_WEBHOOK_SECRET", SECRET.to_owned()),
            ("TELEGRAM_BOT_USERNAME", "EchoLambdaBot".to_owned()),
        ];
        let config = Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .expect("a configuration");
        let webhook = Webhook::new(&config).expect("the webhook");
        World {
            runtime,
            stand_in,
            webhook,
        }
    })
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One run: the input's request into the real handler, and the checks.
/// The status it got, if the input made a request.
pub fn check(world: &World, data: &[u8]) -> Option<u16> {
    let (&flags, rest) = data.split_first()?;
    let secret_mode = (flags >> 1) & 3;
    let (wrong_secret, body) = if secret_mode == 2 {
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        (&rest[..end], rest.get(end + 1..).unwrap_or_default())
    } else {
        (&[][..], rest)
    };
    let method = ["POST", "GET", "PUT", "post"][usize::from((flags >> 3) & 3)];
    let base64_encoded = flags & 1 == 1;
    let body_text = if base64_encoded {
        base64(body)
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let mut headers = json!({"content-type": "application/json"});
    match secret_mode {
        0 => headers["x-telegram-bot-api-secret-token"] = json!(SECRET),
        2 => {
            headers["x-telegram-bot-api-secret-token"] =
                json!(String::from_utf8_lossy(wrong_secret))
        }
        3 => headers["x-telegram-bot-api-secret-token"] = json!(format!("{SECRET},{SECRET}")),
        _ => {}
    }
    let authentic = secret_mode == 0 && method == "POST";
    let event = json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": "/webhook", "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": ""},
                           "requestId": "fuzz", "stage": "$default", "timeEpoch": 0},
        "body": body_text,
        "isBase64Encoded": base64_encoded,
    });
    // Let the stand-in know the update's chat, so replies can go out.
    if let Ok(update) = serde_json::from_slice::<Value>(body) {
        world.stand_in.observe_update(&update);
    }
    let calls_before = world.stand_in.calls().len();
    let answer = world.runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        handle_event(&world.webhook, event, deadline).await
    });
    let status = answer.status();
    assert!(STATUSES.contains(&status), "undocumented status {status}");
    if !authentic {
        assert!(
            matches!(status, 401 | 405),
            "{method} with secret mode {secret_mode} got {status}"
        );
        assert_eq!(
            world.stand_in.calls().len(),
            calls_before,
            "the Bot API was called"
        );
    }
    // Keep memory flat over millions of runs.
    if world.stand_in.calls().len() > 10_000 {
        world.stand_in.reset();
    }
    Some(status)
}
